"""Writing generated tasks to disk in X-ARES's own format, byte-reproducibly and idempotently.

The task definitions (`harness.demodata.tiny`, `harness.demodata.standins`) only say what each clip
sounds like and what its label is; this module is the one that knows X-ARES 0.1.3's on-disk format
(`xares/task.py`, `xares/audiowebdataset.py`) and the manifest that makes generation idempotent:

* one folder per task, `<env>/<task>/`, holding uncompressed tar shards named so that the task
  config's `audio_tar_name_of_split` globs find them, and the marker `.audio_tar_ready`, without
  which X-ARES tries to download from Zenodo;
* each shard holds, per clip, `<key>.json` (the label) then `<key>.wav` (16-bit PCM mono), adjacent,
  so webdataset groups them into one sample; keys have no dots and are opaque, fixed-width indices;
* tars are byte-reproducible: members in name order, mtime/uid/gid/mode fixed, GNU format, no
  compression;
* `<env>/<task>/.taskgen.json` records the manifest (seed, generator version, espeak-ng version,
  clip counts, sha256 of every shard); a task whose manifest matches and whose shards still hash to
  it is skipped, and a task that is regenerated loses its stale shards and the `embeddings/` and
  `checkpoints/` X-ARES derived from the old data.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import tarfile
from pathlib import Path
from typing import Iterator, Sequence

from harness.demodata.signals import pcm16, wav_bytes
from harness.demodata.specs import ALL_TASKS, Clip, SplitSpec, TaskSpec
from harness.demodata.speech import ESPEAK, INSTALL_HINT, espeak_version
from harness.demodata.standins import STAND_IN_TASKS
from harness.demodata.tiny import TINY_TASKS
from harness.errors import InfraError, UsageError
from harness.safeio import sha256_file, write_atomic

#: bump when any task's bytes change for the same seed; part of every manifest
GENERATOR_VERSION = 2
MANIFEST_NAME = ".taskgen.json"
#: X-ARES's `XaresSettings.audio_ready_filename`
AUDIO_READY_NAME = ".audio_tar_ready"
#: what X-ARES writes into a task folder, derived from the audio (stale once the audio changes)
XARES_DERIVED_DIRS = ("embeddings", "checkpoints")
#: the mode of every written file: read by the sandbox user (uid 10001) through a bind mount
SHARED_MODE = 0o644
#: fixed tar header fields: 2020-01-01T00:00:00Z
TAR_MTIME = 1577836800

#: every task by name: the six demo tasks first, then the stand-ins (the order of the usage error's list)
TASKS: dict[str, TaskSpec] = {**TINY_TASKS, **STAND_IN_TASKS}


def _task_rng(seed: int, task: str, split: str) -> random.Random:
    # str seeds are hashed with SHA-512 by `random`: stable across runs and PYTHONHASHSEED
    return random.Random(f"aecc-taskgen/{GENERATOR_VERSION}/{seed}/{task}/{split}")


def iter_clips(spec: TaskSpec, split: SplitSpec, seed: int) -> Iterator[Clip]:
    rng = _task_rng(seed, spec.name, split.name)
    plan = spec.plan(rng, split)
    for i, entry in enumerate(plan):
        sr, samples, label = spec.make(rng, split, i, entry)
        peak = rng.uniform(0.3, 0.8)
        key = f"{spec.name}-{split.prefix}-{i:04d}".replace(".", "_")
        yield Clip(key=key, sample_rate=sr, pcm=pcm16(samples, peak), label=label)


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = TAR_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    tar.addfile(info, io.BytesIO(data))


def shard_bytes(clips: Sequence[Clip]) -> bytes:
    """An uncompressed GNU tar of `<key>.json` + `<key>.wav` per clip, members in name order."""
    members = []
    for c in clips:
        members.append((f"{c.key}.json", json.dumps(c.label, sort_keys=True).encode("utf-8")))
        members.append((f"{c.key}.wav", wav_bytes(c.pcm, c.sample_rate)))
    members.sort(key=lambda m: m[0])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            _tar_member(tar, name, data)
    return buf.getvalue()


def _identity(spec: TaskSpec, seed: int, tool_versions: dict[str, str]) -> dict:
    return {
        "task": spec.name,
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "tools": {t: tool_versions[t] for t in spec.tools},
    }


def _existing_manifest(task_dir: Path, identity: dict) -> dict | None:
    """The stored manifest if it matches `identity` and every shard still hashes to it."""
    try:
        stored = json.loads((task_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or {k: stored.get(k) for k in identity} != identity:
        return None
    if not (task_dir / AUDIO_READY_NAME).is_file():
        return None
    try:
        for split in stored["splits"].values():
            for name, digest in split["shards"].items():
                if sha256_file(task_dir / name) != digest:
                    return None
    except (OSError, KeyError, AttributeError, TypeError):
        return None
    return stored


def _clear_task_dir(task_dir: Path, spec: TaskSpec) -> None:
    """Remove what a previous generation (or X-ARES, from it) left: marker, manifest, shards, caches."""
    for name in (AUDIO_READY_NAME, MANIFEST_NAME):
        (task_dir / name).unlink(missing_ok=True)
    for split in spec.splits:
        for stale in task_dir.glob(f"{split.prefix}*.tar"):
            stale.unlink()
    for derived in XARES_DERIVED_DIRS:
        d = task_dir / derived
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d)


def generate_task(env_dir: Path, spec: TaskSpec, seed: int, tool_versions: dict[str, str]) -> dict:
    task_dir = Path(env_dir) / spec.name
    identity = _identity(spec, seed, tool_versions)
    stored = _existing_manifest(task_dir, identity)
    if stored is not None:
        return stored
    task_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(task_dir, 0o755)
    _clear_task_dir(task_dir, spec)
    manifest = dict(identity, classes=list(spec.classes), splits={})
    sample_rates: set[int] = set()
    seconds = 0.0
    for split in spec.splits:
        clips = list(iter_clips(spec, split, seed))
        sample_rates.update(c.sample_rate for c in clips)
        seconds += sum(c.seconds for c in clips)
        per = math.ceil(len(clips) / split.shards)
        shards = {}
        for i, name in enumerate(split.shard_names()):
            path = task_dir / name
            write_atomic(path, shard_bytes(clips[i * per : (i + 1) * per]), mode=SHARED_MODE)
            shards[name] = sha256_file(path)
        manifest["splits"][split.name] = {"clips": len(clips), "shards": shards}
    manifest["sample_rates"] = sorted(sample_rates)
    manifest["audio_seconds"] = round(seconds, 3)
    write_atomic(task_dir / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n", mode=SHARED_MODE)
    # last: X-ARES reads the folder only once it is there
    write_atomic(task_dir / AUDIO_READY_NAME, b"", mode=SHARED_MODE)
    return manifest


def _resolve_tasks(tasks: Sequence[str] | None) -> list[TaskSpec]:
    names = list(ALL_TASKS if tasks is None else tasks)
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise UsageError(
            "unknown task name" if unknown else "no task given",
            expected=f"one or more of {', '.join(TASKS)}",
            found=", ".join(unknown) if unknown else "an empty list",
            fix="pick names from the list above, or leave --tasks out for all of them",
        )
    return [TASKS[t] for t in dict.fromkeys(names)]


def _tool_versions(specs: Sequence[TaskSpec]) -> dict[str, str]:
    versions = {}
    for tool in sorted({t for s in specs for t in s.tools}):
        assert tool == ESPEAK, tool
        version = espeak_version()
        if version is None:
            users = ", ".join(s.name for s in specs if tool in s.tools)
            raise InfraError(
                f"{tool} is not installed; task {users} needs it to speak",
                expected=f"`{tool}` on PATH",
                found=f"no `{tool}` in PATH={os.environ.get('PATH', '')}",
                fix=f"{INSTALL_HINT}; or leave {users} out (--tasks)",
            )
        versions[tool] = version
    return versions


def generate(env_dir: Path, tasks: Sequence[str] | None = None, seed: int = 0) -> dict:
    """Generate `tasks` (default: all) under `env_dir`; returns {task: manifest}.

    A manifest holds the task's identity (task, generator version, seed, tool versions), `classes`,
    `splits` ({split: {"clips": n, "shards": {file name: sha256}}}), `sample_rates` and
    `audio_seconds`. Tasks already generated with the same identity are skipped (their shards are
    re-hashed, not rewritten).

    Raises:
        UsageError: an unknown task name or a negative seed.
        InfraError: a host tool (espeak-ng) is missing or fails.
    """
    if not isinstance(seed, int) or seed < 0:
        raise UsageError("seed must be a non-negative integer", expected=">= 0", found=repr(seed))
    specs = _resolve_tasks(tasks)
    tool_versions = _tool_versions(specs)  # fail before writing anything
    env_dir = Path(env_dir)
    env_dir.mkdir(parents=True, exist_ok=True)
    return {spec.name: generate_task(env_dir, spec, seed, tool_versions) for spec in specs}


__all__ = ["AUDIO_READY_NAME", "GENERATOR_VERSION", "MANIFEST_NAME", "TAR_MTIME", "TASKS", "XARES_DERIVED_DIRS",
           "generate", "generate_task", "iter_clips", "shard_bytes"]

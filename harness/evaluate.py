"""`aecc score`: one submission, scored with X-ARES on the given tasks, every stage in a container.

    intake -> build -> fetch -> describe -> per task: prepare (cached) -> encode -> score

- prepare: trusted runtime image, network off, task data mounted read-only; its output is cached
  per (task data fingerprint, sample rate, task module, agent version), so a second submission at
  the same sample rate prepares nothing.
- encode: the submission's image, network off; it sees only `prepared/audio` (padded audio
  batches, no keys, no labels) and one writable directory with a size cap. The host counts the
  embeddings itself against what was prepared: a missing batch is an error, never a skip.
- score: trusted runtime image, network off; X-ARES's own Track A and Track B code on encoded
  shards written in a scratch env that belongs to this submission and task.

A task that fails for the submission (encode OOM, timeout, bad output) is recorded with its reason
and the other tasks still run; an infrastructure failure stops with exit 2. Each finished task is
written to `DIR/<sha256>/tasks/<task>.json` as it completes, and a rerun skips those, so a crash
loses at most the task in flight.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import jsonschema

from harness import __version__, images, paths
from harness import build as build_stage
from harness.errors import InfraError, SubmissionError, UsageError
from harness.intake import Submission, intake
from harness.profiles import SandboxProfile, Stage, load_profile
from harness.runner import Mount, Outcome, RunResult, RunSpec, run_stage
from harness.safeio import read_json
from harness.validate import AGENT_TARGET, SUBMISSION_SRC, ValidateSpec, run_contract_agent

SCHEMAS = Path(__file__).resolve().parent / "schemas"
RESULT_NAME = "result.json"
RESULT_CAP = 16 * 1024**2


class TaskOutcome(str, enum.Enum):
    SCORED = "scored"
    FAILED = "failed"  # the submission's fault: its reason says which stage and limit
    ERROR = "error"  # infrastructure: data, engine, harness
    UNSUPPORTED = "unsupported"


@dataclasses.dataclass(frozen=True)
class TaskRef:
    """A task to score: an X-ARES module (`tasks.esc50_task`) or an organizer's task file."""

    label: str
    module: str  # module name, or the container path of a mounted file
    config_function: str | None
    file: Path | None = None
    task_name: str | None = None  # X-ARES's `name`, where it can be read without running code

    @property
    def digest(self) -> str:
        text = self.file.read_bytes() if self.file else f"{self.module}:{self.config_function}".encode()
        return hashlib.sha256(text).hexdigest()


def resolve_task(arg: str) -> TaskRef:
    """A registry name or an X-ARES-style task module file (checked with ast, never imported here).

    Raises:
        UsageError: neither a known, supported task nor a well-formed task file.
    """
    from harness.registry import TaskSourceKind, resolve_task_argument

    source = resolve_task_argument(arg)
    if source.kind is TaskSourceKind.MODULE:
        path = Path(source.path).resolve()
        return TaskRef(label=source.name, module=f"/tasks/{path.name}", config_function=source.config_function,
                       file=path, task_name=source.name)
    return TaskRef(label=source.name, module=source.module, config_function=source.config_function,
                   task_name=source.name)


@dataclasses.dataclass(frozen=True)
class ScoreSpec:
    source: Path
    data: Path
    tasks: tuple[str, ...]
    out: Path
    encoder: str | None = None
    profile: str = "cpu"
    gpu: str | None = None
    mode: str = "unique"  # unique | xares
    repeats: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("unique", "xares"):
            raise UsageError("unknown --mode", expected="unique or xares", found=self.mode)
        if self.repeats < 1:
            raise UsageError("--repeats must be at least 1", expected=">= 1", found=str(self.repeats))
        if not self.tasks:
            raise UsageError("no tasks given", expected="--tasks NAME_OR_FILE ...", found="none")
        if not Path(self.data).is_dir():
            raise UsageError("--data is not a directory", expected="an X-ARES env dir (<task>/<split>*.tar)",
                             found=str(self.data), fix="point --data at the folder that holds one folder per task")


def fingerprint(directory: Path) -> str:
    """Content hash of a task's data folder, cached by (path, size, mtime) so unchanged data is not reread."""
    cache_file = paths.subdir("cache") / "fingerprints.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    digest = hashlib.sha256()
    # X-ARES run directly on the same env writes embeddings/ and checkpoints/ into it: not data.
    skip = {"embeddings", "checkpoints"}
    for path in sorted(p for p in directory.rglob("*")
                       if p.is_file() and not skip & set(p.relative_to(directory).parts[:1])):
        stat = path.stat()
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in cache:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            cache[key] = h.hexdigest()
        digest.update(f"{path.relative_to(directory)}\0{cache[key]}\n".encode())
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache))
    os.replace(tmp, cache_file)
    return digest.hexdigest()


def _agent_args(attrs: dict) -> list[str]:
    return ["--sampling-rate", str(attrs["sampling_rate"]), "--hop-ms", repr(attrs["hop_size_in_ms"]),
            "--output-dim", str(attrs["output_dim"])]


def _task_mounts(task: TaskRef) -> list[Mount]:
    return [Mount(task.file, task.module)] if task.file else []


def _task_args(task: TaskRef) -> list[str]:
    return ["--task", task.module] + (["--config-function", task.config_function] if task.config_function else [])


class Evaluation:
    """The stages for one submission; each method is one stage and returns what the next needs."""

    def __init__(self, client: Any, spec: ScoreSpec, build_options: images.BuildOptions,
                 progress: Callable[[str], None]):
        self.client = client
        self.spec = spec
        self.build_options = build_options
        self.progress = progress
        self.profile: SandboxProfile = load_profile(spec.profile)
        # Built if missing: after a harness update only the small agent layer is new (seconds).
        self.runtime = images.build(client, images.runtime_layer(), build_options, log=progress)[-1].image
        self.gpu = None
        if self.profile.gpu is not None:
            from harness import gpu as gpu_mod

            self.gpu = gpu_mod.pick_gpu(gpu_mod.list_gpus(), spec.gpu, self.profile.gpu.memory_bytes).uuid

    # -- stages ------------------------------------------------------------------------------

    def describe(self, submission: Submission, image: str, logs: Path) -> dict:
        with tempfile.TemporaryDirectory(prefix="describe-", dir=paths.scratch()) as tmp:
            out = Path(tmp)
            out.chmod(0o777)
            cache = paths.subdir("cache") / submission.sha256
            spec = RunSpec(stage=Stage.CHECK, image=image, workdir=SUBMISSION_SRC,
                           command=("python", "-P", "-m", "checker.describe", "--submission", SUBMISSION_SRC,
                                    "--encoder", submission.encoder.spec, "--out", "/out/describe.json"),
                           mounts=(Mount(images.AGENT_DIR, AGENT_TARGET), Mount(out, "/out", read_only=False),
                                   Mount(cache, "/cache")),
                           env={"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch",
                                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
            result = run_stage(self.client, self.profile, spec, logs / "describe.log")
            self._raise_infra(result)
            if result.outcome is not Outcome.OK:
                raise SubmissionError("the encoder could not be constructed without network",
                                      expected="construction to succeed after the fetch stage",
                                      found=result.log_tail(800).strip() or result.detail, log_path=result.log_path)
            attrs = read_json(out / "describe.json", 64 * 1024)
        ok = (isinstance(attrs.get("sampling_rate"), int) and 1000 <= attrs["sampling_rate"] <= 384000
              and isinstance(attrs.get("output_dim"), int) and 0 < attrs["output_dim"] <= 1 << 20
              and isinstance(attrs.get("hop_size_in_ms"), (int, float)) and 0 < attrs["hop_size_in_ms"] <= 10000)
        if not ok:
            raise SubmissionError("the encoder's attributes are out of range", expected="sampling_rate 1k..384k Hz, "
                                  "output_dim 1..2^20, hop_size_in_ms 0..10000", found=json.dumps(attrs)[:300])
        return attrs

    def prepare(self, task: TaskRef, attrs: dict, logs: Path) -> Path:
        """Label-free batches for (task data, sample rate); cached, so the second submission is free."""
        data_dir = self.spec.data / task.task_name if task.task_name and (self.spec.data / task.task_name).is_dir() \
            else self.spec.data
        key = hashlib.sha256(json.dumps({
            "data": fingerprint(data_dir), "task": task.digest, "sr": attrs["sampling_rate"],
            "hop": attrs["hop_size_in_ms"], "dim": attrs["output_dim"], "runtime": self.runtime,
        }, sort_keys=True).encode()).hexdigest()[:20]
        target = paths.subdir("prepared") / f"{task.label}-{key}"
        if (target / "manifest.json").is_file():
            self.progress(f"  prepare: cached ({target.name})")
            return target
        self.progress(f"  prepare: decoding and resampling to {attrs['sampling_rate']} Hz")
        work = Path(tempfile.mkdtemp(prefix=f".{task.label}-", dir=paths.subdir("prepared")))
        work.chmod(0o777)
        spec = RunSpec(stage=Stage.PREPARE, image=self.runtime,
                       command=("python", "-P", "-m", "checker.prepare", *_task_args(task), "--env", "/env",
                                "--out", "/out", *_agent_args(attrs)),
                       mounts=(Mount(self.spec.data.resolve(), "/env"), Mount(work, "/out", read_only=False),
                               Mount(images.AGENT_DIR, AGENT_TARGET), *_task_mounts(task)))
        result = run_stage(self.client, self.profile, spec, logs / f"{task.label}-prepare.log")
        if result.outcome is not Outcome.OK:
            detail = ""
            if (work / "error.json").is_file():
                detail = read_json(work / "error.json", 64 * 1024).get("error", "")
            shutil.rmtree(work, ignore_errors=True)
            raise InfraError(f"preparing task {task.label} failed ({result.outcome.value})",
                             expected="X-ARES's reader to decode every shard of the task",
                             found=detail or result.log_tail(800).strip() or result.detail,
                             fix="check the task data under --data (a corrupt shard is named above)",
                             log_path=result.log_path)
        manifest = read_json(work / "manifest.json", RESULT_CAP)
        dropped = [s for s in manifest["splits"] if s["dropped_keys"]]
        if dropped:
            shutil.rmtree(work, ignore_errors=True)
            first = dropped[0]
            raise InfraError(f"task {task.label}: X-ARES would silently drop samples",
                             expected="every key in the shards to have audio and a json label",
                             found=f"split {first['split']}: {first['dropped_keys']} of {first['source_keys']} keys "
                                   f"dropped (no json: {first['missing_json'][:3]}, no audio: {first['missing_audio'][:3]})",
                             fix="repair the task data; the harness does not score on silently reduced data",
                             log_path=result.log_path)
        if target.exists():  # another harness prepared it meanwhile
            shutil.rmtree(work, ignore_errors=True)
        else:
            os.replace(work, target)
        return target

    def encode(self, submission: Submission, image: str, task: TaskRef, prepared: Path, run_dir: Path,
               logs: Path) -> tuple[RunResult, Path]:
        embeddings = run_dir / "embeddings"
        shutil.rmtree(embeddings, ignore_errors=True)
        embeddings.mkdir(parents=True)
        embeddings.chmod(0o777)
        manifest = json.loads((prepared / "manifest.json").read_text())
        audio_bytes = sum(p.stat().st_size for p in (prepared / "audio").rglob("*.bin"))
        # Embeddings larger than 64x the audio (or 1 GiB) mean a runaway writer, not an encoder.
        cap = max(64 * audio_bytes, 1024**3)
        self.progress(f"  encode: {sum(s['samples'] for s in manifest['splits'])} samples "
                      f"in {sum(s['batches'] for s in manifest['splits'])} batches (network off)")
        spec = RunSpec(stage=Stage.ENCODE, image=image, workdir=SUBMISSION_SRC, gpu_uuid=self.gpu,
                       command=("python", "-P", "-m", "checker.encode", "--submission", SUBMISSION_SRC,
                                "--encoder", submission.encoder.spec, "--audio", "/audio", "--out", "/out"),
                       mounts=(Mount(prepared / "audio", "/audio"), Mount(embeddings, "/out", read_only=False),
                               Mount(images.AGENT_DIR, AGENT_TARGET),
                               Mount(paths.subdir("cache") / submission.sha256, "/cache")),
                       env={"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch",
                            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        result = run_stage(self.client, self.profile, spec, logs / f"{task.label}-encode.log",
                           output_cap=(embeddings, cap))
        return result, embeddings

    def count_embeddings(self, prepared: Path, embeddings: Path) -> str | None:
        """The host's own count: every prepared batch has an embedding header with the same B."""
        from checker.batchio import BatchFormatError, payload_size, read_header

        manifest = json.loads((prepared / "manifest.json").read_text())
        for split in manifest["splits"]:
            for audio_header in sorted((prepared / "audio" / split["dir"]).glob("*.json")):
                emb = embeddings / split["dir"] / audio_header.name
                try:
                    if emb.is_symlink() or not emb.is_file():
                        return f"split {split['split']}: no embeddings for batch {audio_header.stem}"
                    header = read_header(emb)
                    batch = read_header(audio_header)["shape"][0]
                    data = emb.with_suffix(".bin")
                    if data.is_symlink() or not data.is_file() or data.stat().st_size != payload_size(header):
                        return f"split {split['split']} batch {audio_header.stem}: payload missing or truncated"
                except (BatchFormatError, ValueError, KeyError, OSError) as exc:
                    return f"split {split['split']} batch {audio_header.stem}: unreadable header ({exc})"
                if len(header["shape"]) != 3 or header["shape"][0] != batch:
                    return (f"split {split['split']} batch {audio_header.stem}: expected [{batch}, T', D], "
                            f"got {header['shape']}")
        return None

    def score(self, submission: Submission, task: TaskRef, attrs: dict, prepared: Path, embeddings: Path,
              run_dir: Path, logs: Path) -> dict:
        work = run_dir / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        work.chmod(0o777)
        self.progress(f"  score: X-ARES Track A (x{self.spec.repeats}) and Track B")
        spec = RunSpec(stage=Stage.SCORE, image=self.runtime,
                       command=("python", "-P", "-m", "checker.score", *_task_args(task), "--prepared", "/prepared",
                                "--embeddings", "/embeddings", "--work", "/work", "--encoder-name",
                                f"Submission{submission.sha256[:16]}", *_agent_args(attrs), "--mode", self.spec.mode,
                                "--seed", str(self._seed(submission, task)), "--repeats", str(self.spec.repeats),
                                "--out", "/work/score.json"),
                       mounts=(Mount(prepared, "/prepared"), Mount(embeddings, "/embeddings"),
                               Mount(work, "/work", read_only=False), Mount(images.AGENT_DIR, AGENT_TARGET),
                               *_task_mounts(task)))
        result = run_stage(self.client, self.profile, spec, logs / f"{task.label}-score.log")
        self._raise_infra(result)
        scored = read_json(work / "score.json", RESULT_CAP) if (work / "score.json").is_file() else None
        if result.outcome is Outcome.OK and scored and "error" not in scored:
            bad = {split: c["nonfinite_samples"] for split, c in scored["counts"].items() if c["nonfinite_samples"]}
            if bad:
                # X-ARES would train on them and report a meaningless number; the harness refuses.
                raise SubmissionError(f"task {task.label}: embeddings contain NaN or Inf",
                                      expected="finite embeddings", found=f"samples with NaN/Inf per split: {bad}",
                                      log_path=result.log_path)
            return scored
        if scored and scored.get("error") == "embeddings":
            raise SubmissionError(f"task {task.label}: the embeddings do not match the prepared audio",
                                  found=scored.get("detail"), log_path=result.log_path)
        raise InfraError(f"scoring task {task.label} failed ({result.outcome.value})",
                         expected="X-ARES's probes to finish", found=result.log_tail(1500).strip() or result.detail,
                         log_path=result.log_path)

    # -- helpers -----------------------------------------------------------------------------

    def _seed(self, submission: Submission, task: TaskRef) -> int:
        digest = hashlib.sha256(f"{self.spec.seed}|{submission.sha256}|{task.label}".encode()).digest()
        return int.from_bytes(digest[:4], "big")

    @staticmethod
    def _raise_infra(result: RunResult) -> None:
        if result.outcome.is_infra_failure:
            raise InfraError(f"the {result.stage.value} stage could not run", found=result.detail,
                             log_path=result.log_path)


def _task_entry(task: TaskRef, outcome: TaskOutcome, reason: str = "", scored: dict | None = None,
                timings: dict | None = None) -> dict:
    scored = scored or {}
    track_a = (scored.get("track_a") or {}).get("value")
    return {
        "task": scored.get("task") or task.task_name or task.label,
        "source": str(task.file) if task.file else task.module,
        "metric": scored.get("metric"),
        "track_a": track_a,
        "track_b": scored.get("track_b"),
        "weight": scored.get("eval_weight"),
        "outcome": outcome.value,
        "reason": reason,
        "track_a_detail": scored.get("track_a"),
        "counts": scored.get("counts"),
        "mode": scored.get("mode"),
        "timings": timings or {},
    }


def score_submission(client: Any, spec: ScoreSpec, build_options: images.BuildOptions | None = None, *,
                     progress: Callable[[str], None] = print) -> dict:
    """Score one submission on every task of `spec`; returns the result (schema: result) and writes it."""
    build_options = build_options or images.BuildOptions.from_environment()
    tasks = [resolve_task(t) for t in spec.tasks]  # usage errors before any work
    started = time.monotonic()
    evaluation = Evaluation(client, spec, build_options, progress)
    progress("intake")
    submission = intake(Path(spec.source), paths.subdir("store"), encoder=spec.encoder)
    out_dir = Path(spec.out) / submission.sha256
    (out_dir / "tasks").mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    logs.mkdir(exist_ok=True)
    progress(f"build: submission {submission.sha256[:12]}")
    built = build_stage.build_submission(client, submission, build_options, log=progress)
    progress("fetch: constructing the encoder with network on (weights are cached)")
    cache = paths.subdir("cache") / submission.sha256
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o777)
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=paths.scratch()) as tmp:
        Path(tmp).chmod(0o777)
        fetch, fetch_report, problem = run_contract_agent(client, evaluation.profile, built.image, submission, Stage.FETCH,
                                                  Path(tmp), cache, ValidateSpec(source=spec.source), logs, None,
                                                  build_options)
    Evaluation._raise_infra(fetch)
    if fetch.outcome is not Outcome.OK or problem or not fetch_report or fetch_report["status"] != "passed":
        raise SubmissionError("the encoder did not construct in the fetch stage", found=problem or fetch.detail,
                              fix="run `aecc validate` on the submission", log_path=fetch.log_path)
    attrs = evaluation.describe(submission, built.image, logs)
    progress(f"encoder: {attrs['class_name']} at {attrs['sampling_rate']} Hz, hop {attrs['hop_size_in_ms']:g} ms, "
             f"D={attrs['output_dim']}")

    entries = []
    for task in tasks:
        done = out_dir / "tasks" / f"{task.label}.json"
        if done.is_file():
            entry = json.loads(done.read_text())
            if entry.get("outcome") == TaskOutcome.SCORED.value and entry.get("mode") == spec.mode:
                progress(f"task {task.label}: already scored (resumed)")
                entries.append(entry)
                continue
        progress(f"task {task.label}")
        timings: dict[str, float] = {}
        run_dir = paths.subdir("runs") / submission.sha256 / task.label
        t0 = time.monotonic()
        prepared = evaluation.prepare(task, attrs, logs)  # InfraError propagates: data problems stop the run
        timings["prepare_s"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        result, embeddings = evaluation.encode(submission, built.image, task, prepared, run_dir, logs)
        timings["encode_s"] = round(time.monotonic() - t0, 2)
        Evaluation._raise_infra(result)
        if result.outcome is not Outcome.OK:
            entry = _task_entry(task, TaskOutcome.FAILED, f"encode {result.outcome.value}: {result.detail}",
                                timings=timings)
        elif (problem := evaluation.count_embeddings(prepared, embeddings)) is not None:
            entry = _task_entry(task, TaskOutcome.FAILED, f"encode output incomplete: {problem}", timings=timings)
        else:
            t0 = time.monotonic()
            try:
                scored = evaluation.score(submission, task, attrs, prepared, embeddings, run_dir, logs)
                entry = _task_entry(task, TaskOutcome.SCORED, "", scored, timings)
            except SubmissionError as exc:
                entry = _task_entry(task, TaskOutcome.FAILED, exc.summary + (f": {exc.found}" if exc.found else ""),
                                    timings=timings)
            timings["score_s"] = round(time.monotonic() - t0, 2)
        shutil.rmtree(run_dir / "work" / "env", ignore_errors=True)  # encoded shards: big, and recomputable
        _write_atomic(done, entry)
        progress(f"task {task.label}: {entry['outcome']}"
                 + (f" (track A {entry['track_a']:.4f}" if entry["track_a"] is not None else "")
                 + (f", track B {entry['track_b']:.4f})" if entry["track_b"] is not None else
                    (")" if entry["track_a"] is not None else ""))
                 + (f" - {entry['reason']}" if entry["reason"] else ""))
        entries.append(entry)

    result = {
        "schema_version": 1,
        "status": "complete" if all(e["outcome"] == "scored" for e in entries) else "partial",
        "submission": {"sha256": submission.sha256, "encoder_file": submission.encoder.file,
                       "encoder_class": submission.encoder.class_name, "image": built.image,
                       "torch_version": built.torch_version, **{k: attrs[k] for k in
                                                                ("sampling_rate", "output_dim", "hop_size_in_ms")}},
        "versions": {"harness": __version__, "harness_commit": images.harness_commit(),
                     "xares": images.RUNTIME_VERSIONS["xares"], "runtime_image": evaluation.runtime},
        "settings": {"profile": spec.profile, "mode": spec.mode, "repeats": spec.repeats, "seed": spec.seed},
        "tasks": entries,
        "timings": {"total_s": round(time.monotonic() - started, 2)},
    }
    jsonschema.validate(result, result_schema())
    _write_atomic(out_dir / RESULT_NAME, result)
    return result


def result_schema() -> dict:
    return json.loads((SCHEMAS / "result.schema.json").read_text())


def _write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)



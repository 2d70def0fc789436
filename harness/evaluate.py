"""`aecc score`: one submission, scored with X-ARES on the given tasks, every stage in a container.

    intake -> build -> fetch -> prepare (cached) -> encode -> score

Each stage after fetch runs once for all tasks: one container, one torch import, tasks in turn.
The trusted prepare and score containers start with the run and import torch and X-ARES while
build, fetch and encode go on (`harness.warmstart`); they work only once their inputs are ready.

- prepare: trusted runtime image, network off, task data mounted read-only; its output is cached
  per (task data fingerprint, sample rate, task module, agent version), so a second submission at
  the same sample rate prepares nothing.
- encode: the submission's image, network off; it sees only `prepared/audio` (padded audio
  batches, no keys, no labels) and one writable directory with a size cap. The host counts the
  embeddings itself against what was prepared: a missing batch is an error, never a skip.
- score: trusted runtime image, network off; X-ARES's own Track A and Track B code on encoded
  shards written in a scratch env that belongs to this submission and task.

A task that fails for the submission (encode OOM, timeout, bad output) is recorded with its reason
and the stage reruns for the tasks after it; an infrastructure failure stops with exit 2. Each
task's entry is written to `DIR/<sha256>/tasks/<task>.json` as soon as it is known, verified
embeddings are marked (`runs/<sha>/<task>/encode.ok`, written by the host), and a rerun skips
both, so a crash loses at most the stage in flight.
"""

from __future__ import annotations

import contextlib
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
from harness.runner import (Mount, Outcome, RunResult, RunSpec, directory_size, discard_over_cap, run_stage,
                            size_cap)
from harness.safeio import read_json
from harness.warmstart import WarmStage
from harness.validate import AGENT_TARGET, SUBMISSION_SRC

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
    warm_start: bool = True  # start prepare and score early (harness.warmstart); off: one stage after another

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


def _agent_mount() -> Mount:
    return Mount(images.AGENT_DIR, AGENT_TARGET)


def _task_mounts(task: TaskRef) -> list[Mount]:
    return [Mount(task.file, task.module)] if task.file else []


class Evaluation:
    """The stages for one submission. Each stage runs once for all its tasks (one container, one
    torch import), and a task that breaks a stage fails alone: the stage reruns for the rest."""

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

    # -- fetch -------------------------------------------------------------------------------

    def fetch(self, submission: Submission, image: str, logs: Path) -> dict:
        """Construct the encoder once with network (its downloads land in the submission's cache)
        and read the three attributes the trusted stages need."""
        cache = paths.subdir("cache") / submission.sha256
        cache.mkdir(parents=True, exist_ok=True)
        cache.chmod(0o777)  # written by the sandbox user (uid 10001)
        env = {"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch", "XDG_CACHE_HOME": "/cache/xdg"}
        mounts = [Mount(images.AGENT_DIR, AGENT_TARGET), Mount(cache, "/cache", read_only=False)]
        if self.build_options.ca_bundle is not None:
            mounts.append(Mount(Path(self.build_options.ca_bundle).resolve(), "/run/aecc-ca.pem"))
            env.update({"SSL_CERT_FILE": "/run/aecc-ca.pem", "REQUESTS_CA_BUNDLE": "/run/aecc-ca.pem"})
        with tempfile.TemporaryDirectory(prefix="fetch-", dir=paths.scratch()) as tmp:
            out = Path(tmp)
            out.chmod(0o777)
            mounts.append(Mount(out, "/out", read_only=False))
            spec = RunSpec(stage=Stage.FETCH, image=image, workdir=SUBMISSION_SRC, mounts=tuple(mounts), env=env,
                           command=("python", "-P", "-m", "checker.describe", "--submission", SUBMISSION_SRC,
                                    "--encoder", submission.encoder.spec, "--out", "/out/describe.json"))
            result = run_stage(self.client, self.profile, spec, logs / "fetch.log", output_cap=(out, 1024**2),
                               watch=size_cap(cache, self.profile.disk_cap_bytes, "downloads in the cache"))
            if result.outcome is Outcome.OUTPUT_LIMIT:
                discard_over_cap(cache, self.profile.disk_cap_bytes)
            self._raise_infra(result)
            if result.outcome is not Outcome.OK or not (out / "describe.json").is_file():
                raise SubmissionError("the encoder could not be constructed in the fetch stage",
                                      expected="construction to succeed (network on)",
                                      found=result.log_tail(800).strip() or result.detail,
                                      fix="run `aecc validate` on the submission", log_path=result.log_path)
            attrs = read_json(out / "describe.json", 64 * 1024)
        ok = (isinstance(attrs.get("sampling_rate"), int) and 1000 <= attrs["sampling_rate"] <= 384000
              and isinstance(attrs.get("output_dim"), int) and 0 < attrs["output_dim"] <= 1 << 20
              and isinstance(attrs.get("hop_size_in_ms"), (int, float)) and 0 < attrs["hop_size_in_ms"] <= 10000
              and isinstance(attrs.get("class_name"), str))
        if not ok:
            raise SubmissionError("the encoder's attributes are out of range", expected="sampling_rate 1k..384k Hz, "
                                  "output_dim 1..2^20, hop_size_in_ms 0..10000", found=json.dumps(attrs)[:300])
        return attrs

    # -- prepare -----------------------------------------------------------------------------

    def prepared_dir(self, task: TaskRef, attrs: dict) -> Path:
        data_dir = self.spec.data / task.task_name if task.task_name and (self.spec.data / task.task_name).is_dir() \
            else self.spec.data
        key = hashlib.sha256(json.dumps({
            "data": fingerprint(data_dir), "task": task.digest, "sr": attrs["sampling_rate"],
            "hop": attrs["hop_size_in_ms"], "dim": attrs["output_dim"], "runtime": self.runtime,
        }, sort_keys=True).encode()).hexdigest()[:20]
        return paths.subdir("prepared") / f"{task.label}-{key}"

    def start_prepare(self, tasks: list[TaskRef], logs: Path, max_wait_s: float) -> WarmStage:
        """The prepare container for `tasks`, importing while the stages before it run; its jobs
        (which tasks are not cached at the encoder's rate) come with the go."""
        work = Path(tempfile.mkdtemp(prefix="prepare-", dir=paths.subdir("prepared")))
        work.chmod(0o777)
        mounts = [Mount(self.spec.data.resolve(), "/env"), Mount(work, "/out", read_only=False)]
        for task in tasks:
            mounts += _task_mounts(task)
        stage = WarmStage(self.client, self.profile, stage=Stage.PREPARE, image=self.runtime, agent_mount=_agent_mount(),
                          then="checker.prepare", warm=("torchaudio", "xares.task"), mounts=mounts,
                          log_path=logs / "prepare.log", max_wait_s=max_wait_s, scratch=(work,))
        stage.meta["work"] = work
        return stage.start(self.profile.stage(Stage.PREPARE).wall_clock_s * len(tasks))

    def probably_prepared(self, tasks: list[TaskRef]) -> bool:
        """Every task has been prepared at some sample rate: most submissions run at 16 kHz."""
        root = paths.subdir("prepared")
        return all(any((d / "manifest.json").is_file() for d in root.glob(f"{t.label}-*")) for t in tasks)

    def prepare_all(self, tasks: list[TaskRef], attrs: dict, logs: Path, warm: WarmStage | None = None) -> dict[str, Path]:
        """Label-free batches per (task data, sample rate), cached: a second submission at the same
        rate prepares nothing. Bad task data is an infrastructure error naming the task and shard."""
        targets = {t.label: self.prepared_dir(t, attrs) for t in tasks}
        todo = [t for t in tasks if not (targets[t.label] / "manifest.json").is_file()]
        for t in tasks:
            if t not in todo:
                self.progress(f"prepare {t.label}: cached")
        if not todo:
            if warm is not None:
                warm.cancel()
            return targets
        self.progress(f"prepare: decoding and resampling {len(todo)} task(s) to {attrs['sampling_rate']} Hz "
                      "(trusted runtime, network off)")
        with contextlib.ExitStack() as stack:
            if warm is None:
                warm = stack.enter_context(self.start_prepare(todo, logs, max_wait_s=60))
            work: Path = warm.meta["work"]
            jobs = []
            for i, task in enumerate(todo):
                (work / str(i)).mkdir()
                (work / str(i)).chmod(0o777)
                jobs.append({"task": task.module, "config_function": task.config_function, "out": f"/out/{i}"})
            warm.go(["--jobs", "/ctl/jobs.json", "--env", "/env", *_agent_args(attrs)],
                    limit_s=self.profile.stage(Stage.PREPARE).wall_clock_s * len(todo), files={"jobs.json": jobs})
            result = warm.result()
            self._raise_infra(result)
            for i, task in enumerate(todo):
                out = work / str(i)
                if (out / "error.json").is_file():
                    raise InfraError(f"preparing task {task.label} failed",
                                     expected="X-ARES's reader to decode every shard of the task",
                                     found=read_json(out / "error.json", 64 * 1024).get("error", ""),
                                     fix="repair the task data under --data", log_path=result.log_path)
                if not (out / "manifest.json").is_file():
                    raise InfraError(f"preparing task {task.label} failed ({result.outcome.value})",
                                     expected="the prepare stage to finish",
                                     found=result.log_tail(800).strip() or result.detail, log_path=result.log_path)
                manifest = read_json(out / "manifest.json", RESULT_CAP)
                dropped = [s for s in manifest["splits"] if s["dropped_keys"]]
                if dropped:
                    first = dropped[0]
                    raise InfraError(
                        f"task {task.label}: X-ARES would silently drop samples",
                        expected="every key in the shards to have audio and a json label",
                        found=f"split {first['split']}: {first['dropped_keys']} of {first['source_keys']} keys dropped "
                              f"(no json: {first['missing_json'][:3]}, no audio: {first['missing_audio'][:3]})",
                        fix="repair the task data; the harness does not score on silently reduced data",
                        log_path=result.log_path)
                target = targets[task.label]
                if not target.exists():  # another harness may have prepared it meanwhile
                    os.replace(out, target)
        return targets

    # -- encode ------------------------------------------------------------------------------

    def encode_all(self, submission: Submission, image: str, tasks: list[TaskRef], prepared: dict[str, Path],
                   logs: Path) -> dict[str, tuple[Path | None, str]]:
        """Embeddings per task, or the reason the task failed. The container encodes every task in
        turn; when it dies on one (OOM, timeout, bad output), that task fails and the rest rerun."""
        results: dict[str, tuple[Path | None, str]] = {}
        pending = []
        for task in tasks:
            run_dir = _run_root(submission) / task.label
            if (run_dir / "encode.ok").is_file() and (run_dir / "encode.ok").read_text() == prepared[task.label].name:
                self.progress(f"encode {task.label}: done earlier (resumed)")
                results[task.label] = (run_dir / "embeddings", "")
            else:
                pending.append(task)
        attempt = 0
        while pending:
            attempt += 1
            self.progress(f"encode: {len(pending)} task(s) in the submission's sandbox (network off)")
            outcome_by_task = self._encode_batch(submission, image, pending, prepared, logs, attempt)
            still = []
            blamed = False
            for task in pending:
                verdict = outcome_by_task[task.label]
                if verdict is None:  # not reached before the container ended: try again
                    still.append(task)
                    continue
                results[task.label] = verdict
                if verdict[0] is None:
                    blamed = True
            if still and not blamed:
                # Nothing failed and nothing progressed: the stage itself is broken, not a task.
                raise InfraError("the encode stage ended without encoding anything", log_path=logs / "encode.log")
            pending = still
        return results

    def _encode_batch(self, submission: Submission, image: str, tasks: list[TaskRef], prepared: dict[str, Path],
                      logs: Path, attempt: int) -> dict[str, tuple[Path | None, str] | None]:
        runs = _run_root(submission)
        jobs, mounts = [], [Mount(images.AGENT_DIR, AGENT_TARGET),
                            Mount(paths.subdir("cache") / submission.sha256, "/cache")]
        dirs = []
        for i, task in enumerate(tasks):
            run_dir = runs / task.label
            (run_dir / "encode.ok").unlink(missing_ok=True)
            embeddings = run_dir / "embeddings"
            shutil.rmtree(embeddings, ignore_errors=True)
            embeddings.mkdir(parents=True)
            embeddings.chmod(0o777)
            dirs.append(embeddings)
            mounts += [Mount(prepared[task.label] / "audio", f"/audio/{i}"), Mount(embeddings, f"/out/{i}", read_only=False)]
            jobs.append({"audio": f"/audio/{i}", "out": f"/out/{i}"})
        with tempfile.TemporaryDirectory(prefix="encode-", dir=paths.scratch()) as tmp:
            (Path(tmp) / "jobs.json").write_text(json.dumps(jobs))
            Path(tmp).chmod(0o755)
            mounts.append(Mount(Path(tmp), "/jobs"))
            audio_bytes = sum(p.stat().st_size for t in tasks for p in (prepared[t.label] / "audio").rglob("*.bin"))
            # Embeddings larger than 64x the audio (and 1 GiB) mean a runaway writer, not an encoder.
            cap = max(64 * audio_bytes, 1024**3)
            limit = self.profile.stage(Stage.ENCODE).wall_clock_s
            clock = {"start": time.monotonic(), "done": 0}

            def watch(_container: Any) -> tuple[Outcome, str] | None:
                # Each task gets the stage's wall clock, counted from the end of the one before.
                done = sum((d / ".agent-done").exists() for d in dirs)
                if done != clock["done"]:
                    clock.update(done=done, start=time.monotonic())
                if time.monotonic() - clock["start"] > limit:
                    return Outcome.TIMEOUT, f"killed: a task passed the encode stage's wall clock of {limit:g} s"
                if sum(directory_size(d) for d in dirs) > cap:
                    return Outcome.OUTPUT_LIMIT, f"killed: embeddings passed their cap of {cap} B"
                return None

            spec = RunSpec(stage=Stage.ENCODE, image=image, workdir=SUBMISSION_SRC, gpu_uuid=self.gpu,
                           command=("python", "-P", "-m", "checker.encode", "--submission", SUBMISSION_SRC,
                                    "--encoder", submission.encoder.spec, "--jobs", "/jobs/jobs.json"),
                           mounts=tuple(mounts), wall_clock_s=limit * len(tasks) + 60,
                           env={"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch",
                                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
            result = run_stage(self.client, self.profile, spec, logs / f"encode-{attempt}.log", watch=watch)
        self._raise_infra(result)
        verdicts: dict[str, tuple[Path | None, str] | None] = {}
        failure_assigned = False
        for task, embeddings in zip(tasks, dirs):
            problem = self.count_embeddings(prepared[task.label], embeddings)
            if problem is None:
                (embeddings.parent / "encode.ok").write_text(prepared[task.label].name)
                verdicts[task.label] = (embeddings, "")
                continue
            if failure_assigned:
                verdicts[task.label] = None  # never reached: rerun
                continue
            failure_assigned = True
            if result.outcome is Outcome.OK:
                verdicts[task.label] = (None, f"encode output incomplete: {problem}")
            else:
                tail = result.log_tail(300).strip().splitlines()
                verdicts[task.label] = (None, f"encode {result.outcome.value}: {result.detail}"
                                        + (f" ({tail[-1][:200]})" if tail and result.outcome is Outcome.FAILED else ""))
        return verdicts

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
                    if data.is_symlink() or not data.is_file() or data.stat().st_nlink != 1 \
                            or data.stat().st_size != payload_size(header):
                        return f"split {split['split']} batch {audio_header.stem}: payload missing, linked or truncated"
                except (BatchFormatError, ValueError, KeyError, OSError) as exc:
                    return f"split {split['split']} batch {audio_header.stem}: unreadable header ({exc})"
                if len(header["shape"]) != 3 or header["shape"][0] != batch:
                    return (f"split {split['split']} batch {audio_header.stem}: expected [{batch}, T', D], "
                            f"got {header['shape']}")
        return None

    # -- score -------------------------------------------------------------------------------

    def start_score(self, submission: Submission, tasks: list[TaskRef], logs: Path, max_wait_s: float) -> WarmStage:
        """The score container for `tasks`, importing X-ARES while the stages before it run.

        It sees the prepared cache and the submission's run folder read-only as whole folders (what
        lands in them later is visible; a per-task mount would pin a folder that encode replaces)
        and one fresh writable work folder per task."""
        runs = _run_root(submission)
        runs.mkdir(parents=True, exist_ok=True)
        mounts = [Mount(paths.subdir("prepared"), "/prepared"), Mount(runs, "/runs")]
        for i, task in enumerate(tasks):
            work = runs / task.label / "work"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            work.chmod(0o777)
            mounts += [Mount(work, f"/work/{i}", read_only=False), *_task_mounts(task)]
        stage = WarmStage(self.client, self.profile, stage=Stage.SCORE, image=self.runtime, agent_mount=_agent_mount(),
                          then="checker.score", warm=("xares.task",), mounts=mounts, log_path=logs / "score.log",
                          max_wait_s=max_wait_s)
        stage.meta["slots"] = {task.label: i for i, task in enumerate(tasks)}
        return stage.start(self.profile.stage(Stage.SCORE).wall_clock_s * len(tasks))

    def score_all(self, submission: Submission, tasks: list[TaskRef], attrs: dict, prepared: dict[str, Path],
                  embeddings: dict[str, Path], logs: Path, warm: WarmStage | None = None
                  ) -> dict[str, dict | SubmissionError]:
        """X-ARES's Track A and B per task, in one trusted container; an embeddings problem fails its
        task (the submission's fault), anything else in X-ARES is an infrastructure error."""
        if not tasks:
            if warm is not None:
                warm.cancel()
            return {}
        self.progress(f"score: X-ARES Track A (x{self.spec.repeats}) and Track B for {len(tasks)} task(s)")
        runs = _run_root(submission)
        with contextlib.ExitStack() as stack:
            if warm is None:
                warm = stack.enter_context(self.start_score(submission, tasks, logs, max_wait_s=60))
            slots: dict[str, int] = warm.meta["slots"]
            jobs, works = [], []
            for task in tasks:
                i = slots[task.label]
                works.append(runs / task.label / "work")
                jobs.append({"task": task.module, "config_function": task.config_function,
                             "prepared": f"/prepared/{prepared[task.label].relative_to(paths.subdir('prepared'))}",
                             "embeddings": f"/runs/{embeddings[task.label].relative_to(runs)}",
                             "work": f"/work/{i}", "seed": self._seed(submission, task), "out": f"/work/{i}/score.json"})
            # The jobs file goes beside the go file: the harness alone writes there.
            warm.go(["--jobs", "/ctl/jobs.json", "--encoder-name", f"Submission{submission.sha256[:16]}",
                     *_agent_args(attrs), "--mode", self.spec.mode, "--repeats", str(self.spec.repeats)],
                    limit_s=self.profile.stage(Stage.SCORE).wall_clock_s * len(tasks), files={"jobs.json": jobs})
            result = warm.result()
        self._raise_infra(result)
        scored: dict[str, dict | SubmissionError] = {}
        for task, work in zip(tasks, works):
            data = read_json(work / "score.json", RESULT_CAP) if (work / "score.json").is_file() else None
            if data is None or data.get("error") == "scoring":
                raise InfraError(f"scoring task {task.label} failed ({result.outcome.value})",
                                 expected="X-ARES's probes to finish",
                                 found=(data or {}).get("detail") or result.log_tail(1500).strip() or result.detail,
                                 log_path=result.log_path)
            if data.get("error") == "embeddings":
                scored[task.label] = SubmissionError(f"the embeddings do not match the prepared audio: {data['detail']}")
                continue
            bad = {split: c["nonfinite_samples"] for split, c in data["counts"].items() if c["nonfinite_samples"]}
            if bad:
                # X-ARES would train on them and report a meaningless number; the harness refuses.
                scored[task.label] = SubmissionError(f"embeddings contain NaN or Inf (samples per split: {bad})")
                continue
            scored[task.label] = data
            shutil.rmtree(work / "env", ignore_errors=True)  # encoded shards: big, and recomputable
        return scored

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


def _run_root(submission: Submission) -> Path:
    """Per submission *and* encoder: the same archive scored with another `--encoder` is new work."""
    encoder = hashlib.sha256(submission.encoder.spec.encode()).hexdigest()[:12]
    return paths.subdir("runs") / f"{submission.sha256}-{encoder}"


def score_submission(client: Any, spec: ScoreSpec, build_options: images.BuildOptions | None = None, *,
                     progress: Callable[[str], None] = print) -> dict:
    """Score one submission on every task of `spec`; returns the result (schema: result) and writes it."""
    build_options = dataclasses.replace(build_options or images.BuildOptions.from_environment(),
                                        submission_profile=spec.profile)
    tasks = [resolve_task(t) for t in spec.tasks]  # usage errors before any work
    labels = [t.label for t in tasks]
    if len(set(labels)) != len(labels):
        raise UsageError("a task is named twice", expected="distinct tasks", found=", ".join(labels))
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[f"{name}_s"] = round(time.monotonic() - t0, 2)

    evaluation = Evaluation(client, spec, build_options, progress)
    t0 = time.monotonic()
    progress("intake")
    submission = intake(Path(spec.source), paths.subdir("store"), encoder=spec.encoder)
    lap("intake", t0)
    out_dir = Path(spec.out) / submission.sha256
    (out_dir / "tasks").mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    logs.mkdir(exist_ok=True)
    entries: dict[str, dict] = {}
    for task in tasks:
        done = out_dir / "tasks" / f"{task.label}.json"
        if done.is_file():
            entry = json.loads(done.read_text())
            if (entry.get("outcome") == TaskOutcome.SCORED.value and entry.get("mode") == spec.mode
                    and entry.get("encoder") == submission.encoder.spec):
                progress(f"task {task.label}: already scored (resumed)")
                entries[task.label] = entry
    pending = [t for t in tasks if t.label not in entries]

    with contextlib.ExitStack() as stack:
        warm_prepare = warm_score = None
        if pending and spec.warm_start:
            # Started now, they import torch and X-ARES while build, fetch (and encode) run; each
            # waits at most as long as the stages before it may take.
            limit = {s: evaluation.profile.stage(s).wall_clock_s for s in Stage}
            before_prepare = limit[Stage.BUILD] + limit[Stage.FETCH] + 60
            if not evaluation.probably_prepared(pending):
                # Its import would only slow build and fetch when the cache already holds the
                # tasks (the rate is known only after fetch; a wrong guess costs the cold start).
                warm_prepare = stack.enter_context(evaluation.start_prepare(pending, logs, before_prepare))
            before_score = before_prepare + len(pending) * (limit[Stage.PREPARE] + len(pending) * limit[Stage.ENCODE])
            warm_score = stack.enter_context(evaluation.start_score(submission, pending, logs, before_score))
        t0 = time.monotonic()
        progress(f"build: submission {submission.sha256[:12]}")
        built = build_stage.build_submission(client, submission, build_options, log=progress)
        lap("build", t0)
        t0 = time.monotonic()
        progress("fetch: constructing the encoder with network on (downloads are cached)")
        attrs = evaluation.fetch(submission, built.image, logs)
        lap("fetch", t0)
        progress(f"encoder: {attrs['class_name']} at {attrs['sampling_rate']} Hz, hop {attrs['hop_size_in_ms']:g} ms, "
                 f"D={attrs['output_dim']}")
        if pending:
            t0 = time.monotonic()
            prepared = evaluation.prepare_all(pending, attrs, logs, warm=warm_prepare)  # InfraError: bad data stops
            lap("prepare", t0)
            t0 = time.monotonic()
            encoded = evaluation.encode_all(submission, built.image, pending, prepared, logs)
            lap("encode", t0)
            for task in pending:
                path, reason = encoded[task.label]
                if path is None:
                    entries[task.label] = _task_entry(task, TaskOutcome.FAILED, reason)
                    _finish(progress, out_dir, task, entries[task.label], submission.encoder.spec)
            to_score = [t for t in pending if encoded[t.label][0] is not None]
            t0 = time.monotonic()
            scored = evaluation.score_all(submission, to_score, attrs, prepared,
                                          {t.label: encoded[t.label][0] for t in to_score}, logs, warm=warm_score)
            lap("score", t0)
            for task in to_score:
                value = scored[task.label]
                if isinstance(value, SubmissionError):
                    entries[task.label] = _task_entry(task, TaskOutcome.FAILED, value.summary)
                else:
                    entries[task.label] = _task_entry(task, TaskOutcome.SCORED, "", value)
                _finish(progress, out_dir, task, entries[task.label], submission.encoder.spec)

    ordered = [entries[t.label] for t in tasks]
    timings["total_s"] = round(time.monotonic() - started, 2)
    result = {
        "schema_version": 1,
        "status": "complete" if all(e["outcome"] == "scored" for e in ordered) else "partial",
        "submission": {"sha256": submission.sha256, "encoder_file": submission.encoder.file,
                       "encoder_class": submission.encoder.class_name, "image": built.image,
                       "torch_version": built.torch_version, **{k: attrs[k] for k in
                                                                ("sampling_rate", "output_dim", "hop_size_in_ms")}},
        "versions": {"harness": __version__, "harness_commit": images.harness_commit(),
                     "xares": images.RUNTIME_VERSIONS["xares"], "runtime_image": evaluation.runtime},
        "settings": {"profile": spec.profile, "mode": spec.mode, "repeats": spec.repeats, "seed": spec.seed},
        "tasks": ordered,
        "timings": timings,
    }
    jsonschema.validate(result, result_schema())
    _write_atomic(out_dir / RESULT_NAME, result)
    return result


def _finish(progress: Callable[[str], None], out_dir: Path, task: TaskRef, entry: dict, encoder: str) -> None:
    """Persist a task's entry as soon as it is known, so a crash later loses nothing of it."""
    entry["encoder"] = encoder  # a rerun with another --encoder must not resume this entry
    _write_atomic(out_dir / "tasks" / f"{task.label}.json", entry)
    numbers = ""
    if entry["track_a"] is not None:
        numbers = f" (track A {entry['track_a']:.4f}" + (
            f", track B {entry['track_b']:.4f})" if entry["track_b"] is not None else ")")
    progress(f"task {task.label}: {entry['outcome']}{numbers}" + (f" - {entry['reason']}" if entry["reason"] else ""))


def result_schema() -> dict:
    return json.loads((SCHEMAS / "result.schema.json").read_text())


def _write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)



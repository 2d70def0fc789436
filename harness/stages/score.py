"""Score stage (trusted runtime image, network off): embeddings + labels -> X-ARES's Track A and B.

`checker.score` joins the untrusted embeddings with the trusted per-sample meta by position,
writes the encoded shards X-ARES's own `make_encoded_tar` would have written into a scratch env
that belongs to this submission and task, and calls X-ARES's `run_mlp` (Track A) and `run_knn`
(Track B). The harness does not re-implement the probes.

An embeddings problem (shape, count, NaN/Inf) fails its task: the submission's fault. X-ARES failing
on a task is an infrastructure error. The container can start warm (`start`): it imports X-ARES
while build, fetch and encode run and sees the prepared cache and the submission's run folder
read-only as whole folders (what lands in them later is visible; a per-task mount would pin a
folder that encode replaces), with one fresh writable work folder per task.

Pretrained dependencies (librispeech's Qwen2.5, clotho's BERT tokenizer) come from the offline model
store (`harness.tasks.models`): verified against its manifest before the container starts, mounted
read-only at /models in this container only, with the Hugging Face libraries forced offline.

Per-clip outputs (`checker.capture`, `checker.clips`): the agent leaves each task's `clips.npz` in
its work folder, beside `score.json`; `gather_clips` merges those of the scored tasks into the one
file beside result.json, keeping only runs whose numbers are the result's own. Work folders are
mounted in this trusted container only, never in a submission's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

from checker import clips as clips_file
from checker.jobs import (
    EncoderAttributes,
    ScoreFailure,
    ScoreFailureKind,
    ScoreJob,
    ScoreRequest,
    job_rows,
)
from harness.errors import InfraError
from harness.results import TaskOutcome
from harness.safeio import read_json, sha256_file
from harness.sandbox.agent import agent_mount
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage
from harness.sandbox.spec import Mount, RunResult
from harness.sandbox.warm import WarmStage
from harness.stages import prepare as prepare_stage
from harness.tasks.arguments import TaskRef

ANSWER_CAP = 16 * 1024**2


@dataclasses.dataclass(frozen=True)
class ScoreSpec:
    tasks: tuple[TaskRef, ...]
    runs: Path  # the submission's run folder: <runs>/<task>/{embeddings,work}
    encoder_name: str  # the stand-in class X-ARES keys its caches by: unique per submission
    runtime: str
    profile: SandboxProfile
    log_dir: Path
    # task label -> how it is scored (repeats, seed, mode): every task `score` scores needs one
    requests: Mapping[str, ScoreRequest] = dataclasses.field(default_factory=dict)
    gpu: str | None = None  # the GPU X-ARES trains its probes on (trusted code; one stage per GPU)
    models: Path | None = None  # the offline model store (harness.tasks.models), mounted read-only at /models


@dataclasses.dataclass
class ScoreContainer:
    """A score container started ahead of its jobs, and which work folder each task has."""

    stage: WarmStage
    slots: dict[str, int]


@dataclasses.dataclass(frozen=True)
class Scored:
    """One task's answer: X-ARES's numbers, or why the submission failed it."""

    score: dict[str, Any] | None
    failure: str = ""
    run: RunResult | None = None  # the container that scored it (its peaks, measured from the host)
    clips: Path | None = None  # its per-clip outputs (`checker.clips`), where the agent kept any

    @property
    def ok(self) -> bool:
        return self.score is not None


def work_dir(runs: Path, task: TaskRef) -> Path:
    return runs / task.label / "work"


def check_models(spec: ScoreSpec) -> Any:
    """The verified model store, after checking that it holds what every task of `spec` loads.

    Runs before the container starts, so a store that does not match its manifest, or lacks a
    model a task needs, stops the run before any work; so does the real bf16 Qwen on a profile
    without a GPU (with transformers 5 X-ARES cannot train it on a CPU).

    Raises:
        InfraError: a file that does not match the manifest (named), a missing model, a CPU-only profile
            for a bf16 model.
    """
    from harness.tasks import models

    store = models.verify_store(spec.models) if spec.models is not None else None
    for task in spec.tasks:
        needed = models.task_dependencies(task)
        reason = models.no_model_reason(needed, store, spec.models)
        if reason is not None:
            raise InfraError(f"task {task.label} cannot be scored: {reason}",
                             expected="a model store holding " + ", ".join(models.dependency(n).describe
                                                                          for n in needed),
                             found=str(spec.models) if spec.models else "no --models",
                             fix="`aecc models fetch --out DIR` on a machine with hub access, then --models DIR")
        problem = models.cpu_problem(needed, store) if spec.profile.gpu is None else None
        if problem is not None:
            raise InfraError(f"task {task.label} cannot be scored with profile {spec.profile.name}: {problem}",
                             expected="a GPU profile (t4) for this task", found=f"profile {spec.profile.name}",
                             fix="score it on a GPU machine (--profile t4)")
    return store


def start(client: Any, spec: ScoreSpec, *, max_wait_s: float) -> ScoreContainer:
    """The score container for `spec.tasks`, importing X-ARES while the stages before it run.

    Raises:
        InfraError: the model store (`spec.models`) is refused or lacks what a task loads (`check_models`).
    """
    from harness.sandbox.agent import OFFLINE_ENV
    from harness.tasks.models import MOUNT_TARGET

    check_models(spec)
    spec.runs.mkdir(parents=True, exist_ok=True)
    mounts = [Mount(prepare_stage.cache_root(), "/prepared"), Mount(spec.runs, "/runs")]
    if spec.models is not None:
        # trusted container only: the submission's build, fetch, check and encode never mount it
        mounts.append(Mount(Path(spec.models).expanduser().resolve(), MOUNT_TARGET, read_only=True))
    for i, task in enumerate(spec.tasks):
        work = work_dir(spec.runs, task)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        work.chmod(0o777)
        mounts += [Mount(work, f"/work/{i}", read_only=False), *task.mounts()]
    # Offline from the start: the Hugging Face libraries read these when X-ARES imports them (warm)
    env = {**OFFLINE_ENV, "HF_HUB_DISABLE_TELEMETRY": "1"}
    stage = WarmStage(client, spec.profile, stage=Stage.SCORE, image=spec.runtime, agent_mount=agent_mount(),
                      then="checker.score", warm=("xares.task",), mounts=mounts, log_path=spec.log_dir / "score.log",
                      max_wait_s=max_wait_s, gpu_uuid=spec.gpu, env=env)
    stage.start(spec.profile.stage(Stage.SCORE).wall_clock_s * len(spec.tasks))
    return ScoreContainer(stage, {task.label: i for i, task in enumerate(spec.tasks)})


def score(client: Any, spec: ScoreSpec, attributes: EncoderAttributes, prepared: dict[str, Path],
          embeddings: dict[str, Path], *, warm: ScoreContainer | None = None,
          progress: Callable[[str], None] = print) -> dict[str, Scored]:
    """X-ARES's Track A and B for every task of `spec` that has embeddings.

    Raises:
        InfraError: the engine failed, or X-ARES failed on a task (its traceback is in the log).
    """
    tasks = [t for t in spec.tasks if t.label in embeddings]
    unasked = [t.label for t in tasks if t.label not in spec.requests]
    if unasked:
        raise ValueError(f"no ScoreRequest for task(s) {', '.join(unasked)}: the caller decides how each is scored")
    if not tasks:
        if warm is not None:
            warm.stage.cancel()
        return {}
    repeats = "/".join(str(n) for n in sorted({spec.requests[t.label].repeats for t in tasks}))
    progress(f"score: X-ARES Track A (x{repeats}) and Track B for {len(tasks)} task(s)")
    limit = spec.profile.stage(Stage.SCORE).wall_clock_s * len(tasks)
    with contextlib.ExitStack() as stack:
        if warm is None:
            warm = start(client, dataclasses.replace(spec, tasks=tuple(tasks)), max_wait_s=60)
            stack.enter_context(warm.stage)
        jobs = []
        for task in tasks:
            i = warm.slots[task.label]
            jobs.append(ScoreJob(
                task=task.module, config_function=task.config_function,
                prepared=f"/prepared/{prepared[task.label].relative_to(prepare_stage.cache_root())}",
                embeddings=f"/runs/{embeddings[task.label].relative_to(spec.runs)}",
                work=f"/work/{i}", request=spec.requests[task.label], out=f"/work/{i}/score.json"))
        # The jobs file goes beside the go file: the harness alone writes there.
        from harness.tasks.models import MOUNT_TARGET

        models = ["--models", MOUNT_TARGET] if spec.models is not None else []
        warm.stage.go(["--jobs", "/ctl/jobs.json", "--encoder-name", spec.encoder_name, *attributes.to_args(), *models],
                      limit_s=limit, files={"jobs.json": job_rows(jobs)})
        result = warm.stage.result()
    result.raise_for_infra()
    scored: dict[str, Scored] = {}
    for task in tasks:
        work = work_dir(spec.runs, task)
        data = read_json(work / "score.json", ANSWER_CAP) if (work / "score.json").is_file() else None
        failure = ScoreFailure.from_dict(data) if data is not None else None
        if data is None or (failure is not None and failure.kind is ScoreFailureKind.SCORING):
            raise InfraError(f"scoring task {task.label} failed ({result.outcome.value})",
                             expected="X-ARES's probes to finish",
                             found=(failure.detail if failure else "") or result.log_tail(1500).strip() or result.detail,
                             log_path=result.log_path)
        if failure is not None:
            scored[task.label] = Scored(None, f"the embeddings do not match the prepared audio: {failure.detail}",
                                        result)
            continue
        bad = {split: c["nonfinite_samples"] for split, c in data["counts"].items() if c["nonfinite_samples"]}
        if bad:
            # X-ARES would train on them and report a meaningless number; the harness refuses.
            scored[task.label] = Scored(None, f"embeddings contain NaN or Inf (samples per split: {bad})", result)
            continue
        kept = work / clips_file.CLIPS_NAME
        has_clips = bool((data.get("clips") or {}).get("file")) and kept.is_file() and not kept.is_symlink()
        scored[task.label] = Scored(data, run=result, clips=kept if has_clips else None)
        shutil.rmtree(work / "env", ignore_errors=True)  # encoded shards: big, and recomputable
    return scored


def task_clips(runs: Path, task: TaskRef) -> Path:
    """Where the score agent keeps `task`'s per-clip outputs (in its work folder, beside score.json)."""
    return work_dir(runs, task) / clips_file.CLIPS_NAME


def _expected_runs(entry: Any) -> dict[tuple[str, int], tuple[float, int | None]]:
    """(track, run) -> (value, seed) of a scored task result: what its clip runs must report."""
    expected: dict[tuple[str, int], tuple[float, int | None]] = {}
    detail = entry.track_a_detail
    if detail is not None:
        for i, value in enumerate(detail.values):
            expected[("A", i)] = (value, detail.seeds[i] if i < len(detail.seeds) else None)
    if entry.track_b is not None:
        expected[("B", 0)] = (entry.track_b, None)
    return expected


def gather_clips(runs: Path, tasks: tuple[TaskRef, ...], entries: Mapping[str, Any], out: Path) -> dict | None:
    """Merge the per-clip outputs of the scored tasks into `out` (clips.npz beside result.json).

    A run is kept only when it is one the result reports: same task, track, repeat, seed and value
    (a file left from an older scoring of the task cannot slip in). Returns result.json's `clips`
    entry (file, sha256, runs, and per task and run why none was kept), or None when no task has
    any, in which case no clips file is left at `out`.
    """
    kept: list[clips_file.ClipRun] = []
    skipped: list[dict[str, Any]] = []
    for task in tasks:
        entry = entries.get(task.label)
        if entry is None or entry.outcome is not TaskOutcome.SCORED:
            continue
        expected = _expected_runs(entry)
        path = task_clips(runs, task)
        reasons = _skip_reasons(work_dir(runs, task))
        found: dict[tuple[str, int], clips_file.ClipRun] = {}
        if path.is_file() and not path.is_symlink():
            try:
                for run in clips_file.read_clips(path):
                    found[(run.track, run.run)] = run
            except clips_file.ClipsError as exc:
                reasons = {key: f"the task's clips file is unreadable: {exc}" for key in expected}
        for key, (value, seed) in sorted(expected.items()):
            run = found.get(key)
            if run is None:
                reason = reasons.get(key, "no per-clip outputs were kept for it (scored before they were, "
                                          "or the agent kept none)")
            elif run.task != entry.task or run.seed != seed or abs(run.reported - value) > 1e-12:
                reason = (f"the clips file holds another scoring (task {run.task}, seed {run.seed}, value "
                          f"{run.reported}) than the result ({entry.task}, seed {seed}, value {value})")
            else:
                kept.append(run)
                continue
            skipped.append({"task": entry.task, "track": key[0], "run": key[1], "reason": reason})
    out.unlink(missing_ok=True)
    if not kept:
        return None
    clips_file.write_clips(out, kept)
    return {"file": out.name, "sha256": sha256_file(out), "runs": len(kept), "skipped": skipped}


def _skip_reasons(work: Path) -> dict[tuple[str, int], str]:
    """Why the agent kept no clips for some run of a task, from its answer (score.json)."""
    answer = work / "score.json"
    try:
        data = read_json(answer, ANSWER_CAP) if answer.is_file() else None
    except Exception:  # noqa: BLE001 (only the wording of a reason depends on it)
        return {}
    listed = ((data or {}).get("clips") or {}).get("skipped") or []
    return {(str(s.get("track")), int(s.get("run", 0))): str(s.get("reason")) for s in listed if isinstance(s, dict)}

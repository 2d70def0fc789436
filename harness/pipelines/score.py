"""Score one submission: the stages in order, each recorded in the journal and skipped when the
journal says it is done under the same key.

    build -> fetch -> check -> prepare (shared, cached) -> encode -> score -> result.json (-> signed)

The check stage runs first and its verdict (`checker.verdict`, the same words `aecc validate` and
the CI gate print) is recorded; scoring proceeds unless a `rule` check failed or could not be
established (`checker.jobs.CHECK_LEVELS`): what X-ARES's own checker enforces, which the rules
require: the encoder found and built, its attributes present (and usable: the one definition in
`checker.jobs.ATTRIBUTE_RANGES`), a 3-D output of the right batch and `D == output_dim`. The
`scoring` and `advice` checks (long input, NaN, determinism, hop, T4 pitfalls...) never exclude a
submission that passes the official checker: they travel with the result for the organizers, and
`--block-on ID|LEVEL...` makes more of them blocking (`--block-on scoring`: a whole level).

Each stage after fetch runs once for all tasks (one container, one torch import). A task that fails
for the submission (encode OOM, timeout, bad output) is recorded with its reason and the others go
on; an infrastructure failure raises `InfraError`, which the batch retries (`harness.bulk.run`).

Track A's seeds come from the run's seed and the task only, never from the submission: the same
encoder packaged twice gets the same seeds and so the same scores, and re-zipping a model cannot
draw a luckier seed (issue 16).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import enum
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from checker.jobs import (
    CHECK_LEVELS,
    DEFAULT_MAX_SECONDS,
    DEFAULT_MODE,
    DEFAULT_REPEATS,
    DEFAULT_SEED,
    EncoderAttributes,
    Level,
    Mode,
    ScoreRequest,
    derive_seed,
)
from checker.clips import CLIPS_NAME
from checker.verdict import Item
from harness import __version__, paths
from harness.attest import Signer
from harness.errors import BuildFailed, SubmissionError, UsageError
from harness.journal import Journal, StageState, SubmissionState
from harness.layers.model import AGENT_DIR, XARES_VERSION, harness_commit, tree_hash
from harness.layers.options import BuildOptions
from harness.results import CheckStatus, ScoreResult, TaskOutcome, TaskResult, summarise_checks
from harness.safeio import write_atomic
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage
from harness.sandbox.spec import RunResult
from harness.slots import Slots
from harness.stages import encode as encode_stage
from harness.stages import prepare as prepare_stage
from harness.stages import score as score_stage
from harness.stages.build import SubmissionImage, build_submission
from harness.stages.check import DECISION_WAIT_S, CheckSpec, check, check_then_encode
from harness.pipelines.runner import StageRunner
from harness.stages.contract_run import ContractRun, RunVerdict
from harness.stages.fetch import FetchSpec, fetch
from harness.stages.intake import Submission
from harness.tasks.arguments import TaskRef

RESULT_NAME = "result.json"
ARCHIVE_NAME = "submission.zip"
CHECK_REPORT = "check.json"
LOCK_NAME = "requirements.lock"



@dataclasses.dataclass(frozen=True)
class ScoreSettings:
    """What every submission of a run is scored with. Plain data field by field (`to_dict`,
    `from_dict`): a cluster node reads the very settings the submit host was given."""

    data: Path
    tasks: tuple[TaskRef, ...]
    mode: Mode = DEFAULT_MODE
    repeats: int = DEFAULT_REPEATS
    seed: int = DEFAULT_SEED
    warm_start: bool = True
    block_on: frozenset[str] = frozenset()
    rescore: bool = False
    max_seconds: float = DEFAULT_MAX_SECONDS
    models: Path | None = None  # the offline model store (`aecc models fetch`), for the score stage only

    def __post_init__(self) -> None:
        # One normalisation for every way in: the CLI's values and `from_dict`'s plain data.
        try:
            object.__setattr__(self, "mode", Mode(self.mode))
        except ValueError:
            raise UsageError("unknown --mode", expected="unique or xares", found=str(self.mode)) from None
        object.__setattr__(self, "block_on", frozenset(self.block_on))
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "models", Path(self.models) if self.models is not None else None)
        object.__setattr__(self, "tasks", tuple(t if isinstance(t, TaskRef) else TaskRef.from_dict(t)
                                                for t in self.tasks))
        if self.repeats < 1:
            raise UsageError("--repeats must be at least 1", expected=">= 1", found=str(self.repeats))
        if not self.tasks:
            raise UsageError("no tasks given", expected="--tasks NAME_OR_FILE ...", found="none")
        if not Path(self.data).is_dir():
            raise UsageError("--data is not a directory", expected="an X-ARES env dir (<task>/<split>*.tar)",
                             found=str(self.data), fix="point --data at the folder that holds one folder per task")
        unknown = sorted(self.block_on - set(CHECK_LEVELS) - {lvl.value for lvl in Level})
        if unknown:
            raise UsageError("--block-on names unknown checks or levels",
                             expected="a level (scoring, advice) or check ids: " + ", ".join(CHECK_LEVELS),
                             found=", ".join(unknown))

    def request(self, task: TaskRef) -> ScoreRequest:
        """How `task` is scored: what its score job carries to the agent."""
        return ScoreRequest(seed=task_seed(self.seed, task), repeats=self.repeats, mode=self.mode)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON data (paths absolute, sets sorted, enums by value)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreSettings:
        """The settings `to_dict` wrote. A missing or unknown field fails loudly: it is another version's."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            raise ValueError(f"settings fields differ: missing {sorted(names - set(data))}, "
                             f"unknown {sorted(set(data) - names)}")
        return cls(**data)

    def blocks(self, item: Item) -> bool:
        """Whether a check that did not pass excludes the submission: a rule check always (failed,
        or never run); another when `--block-on` names it or its level and it failed."""
        if item.level is Level.RULE:
            return item.status in ("failed", "skipped")
        return item.status == "failed" and (item.id in self.block_on or item.level.value in self.block_on)


def _plain(value: Any) -> Any:
    """`value` as JSON data: the conversions `ScoreSettings.to_dict` needs, and no more."""
    if isinstance(value, Path):
        return str(value.absolute())
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


@dataclasses.dataclass
class Context:
    """What the submissions of one run share."""

    client: Any
    settings: ScoreSettings
    profile: SandboxProfile
    runtime: str
    runtime_id: str | None
    build_options: BuildOptions
    journal: Journal
    slots: Slots
    results: Path
    progress: Callable[[str, str], None] = lambda sha, message: None  # (sha256, message)
    signer: Signer | None = None  # signs each result.json as it is written; None: results unsigned
    warm_score: bool = True  # False with GPUs: a warm container would pin a GPU before it may have one

    @property
    def agent_hash(self) -> str:
        return _agent_hash()


class SubmissionExcluded(SubmissionError):
    """Raised inside `score_one` when a stage refuses the submission: recorded, never retried."""

    def __init__(self, stage: str, summary: str, **kw: Any):
        self.stage = stage
        super().__init__(summary, **kw)


_AGENT_HASH: list[str] = []


def _agent_hash() -> str:
    if not _AGENT_HASH:
        _AGENT_HASH.append(tree_hash(AGENT_DIR))
    return _AGENT_HASH[0]


def key_of(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def task_seed(base: int, task: TaskRef) -> int:
    """Track A's base seed for a task: the run's seed and the task only, never the submission."""
    return derive_seed(base, "task", task.label)


def models_digest(settings: ScoreSettings) -> str | None:
    """The sha256 of the model store's manifest (verified against its files), or None without a store."""
    if settings.models is None:
        return None
    from harness.tasks import models

    return models.verify_store(settings.models).digest


def models_part(settings: ScoreSettings, task: TaskRef) -> dict[str, str | None]:
    """What a task's score key adds for the pretrained models it loads (ASR's LM, Clotho's text
    encoder): another store is another score. Tasks that load none keep their keys unchanged."""
    from harness.tasks import models

    return {"models": models_digest(settings)} if models.task_dependencies(task) else {}


def run_root(submission: Submission) -> Path:
    """Per submission *and* encoder: the same archive scored with another `--encoder` is new work."""
    encoder = hashlib.sha256(submission.encoder.spec.encode()).hexdigest()[:12]
    return paths.subdir("runs") / f"{submission.sha256}-{encoder}"


def _resources(run: RunResult | None) -> dict:
    if run is None:
        return {}
    return {"peak_host_memory_bytes": run.peak_memory_bytes, "peak_gpu_memory_bytes": run.peak_gpu_bytes,
            "duration_s": run.duration_s}


def _link_or_copy(source: Path, target: Path) -> None:
    import shutil

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.link(source, tmp)
    except OSError:  # another file system (RESULTS on a share): a copy
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=1))


_STAGE_ORDER = ("fetch", "check", "prepare", "encode", "score")
_PEAK_KEYS = ("peak_host_memory_bytes", "peak_gpu_memory_bytes", "duration_s")


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.resources: dict[str, dict] = {}  # stages that ran in this attempt (empty: nothing ran)
        self.resumed: dict[str, dict] = {}  # peaks of stages an earlier attempt ran, from the journal

    def all_resources(self) -> dict[str, dict]:
        """Every stage's peaks, in pipeline order whichever attempt ran it."""
        merged = {**self.resumed, **self.resources}
        return {stage: merged[stage] for stage in _STAGE_ORDER if stage in merged} \
            | {stage: peaks for stage, peaks in merged.items() if stage not in _STAGE_ORDER}

    def add(self, name: str, seconds: float) -> None:
        self.timings[f"{name}_s"] = round(self.timings.get(f"{name}_s", 0.0) + seconds, 2)

    @contextlib.contextmanager
    def lap(self, name: str):
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[f"{name}_s"] = round(self.timings.get(f"{name}_s", 0.0) + time.monotonic() - t0, 2)


def score_one(ctx: Context, submission: Submission, arrivals: list[dict]) -> ScoreResult:
    """Every stage of one submission, resuming from the journal.

    Raises:
        SubmissionExcluded: intake was fine but build, fetch or a blocking check refused it.
        InfraError: the engine, the data or the harness failed (the batch retries).
    """
    sha = submission.sha256
    settings, journal = ctx.settings, ctx.journal
    out_dir = ctx.results / sha
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timer = _Timer()
    started = time.monotonic()

    def say(message: str) -> None:
        ctx.progress(sha, message)

    state = journal.state().submissions.get(sha)
    with contextlib.ExitStack() as stack:
        warm = None
        if ctx.warm_score and settings.warm_start and not all(
                state and state.done("score", task=t.label) for t in settings.tasks):
            # Started now, it imports X-ARES while build, fetch, check and encode run; it waits at
            # most as long as those stages may take, and is killed if the submission is refused.
            limit = {s: ctx.profile.stage(s).wall_clock_s for s in Stage}
            n = len(settings.tasks)
            wait = limit[Stage.BUILD] + limit[Stage.FETCH] + limit[Stage.CHECK] + n * (limit[Stage.PREPARE]
                                                                                    + limit[Stage.ENCODE]) + 120
            warm = score_stage.start(ctx.client, _score_spec(ctx, submission, settings.tasks), max_wait_s=wait)
            stack.enter_context(warm.stage)
        return _score_one(ctx, submission, arrivals, state, warm, timer, started, logs, out_dir, say)


def _score_spec(ctx: Context, submission: Submission, tasks: tuple[TaskRef, ...], gpu: str | None = None
                ) -> score_stage.ScoreSpec:
    settings = ctx.settings
    logs = ctx.results / submission.sha256 / "logs"
    return score_stage.ScoreSpec(tasks, run_root(submission), f"Submission{submission.sha256[:16]}", ctx.runtime,
                                 ctx.profile, logs, {t.label: settings.request(t) for t in tasks}, gpu=gpu,
                                 models=settings.models)


def _score_one(ctx: Context, submission: Submission, arrivals: list[dict], state: Any, warm: Any, timer: _Timer,
               started: float, logs: Path, out_dir: Path, say: Callable[[str], None]) -> ScoreResult:
    sha = submission.sha256
    settings, journal = ctx.settings, ctx.journal
    runner = StageRunner(journal, sha)

    # -- build --------------------------------------------------------------------------------------
    runner.enter(SubmissionState.BUILDING)
    with ctx.slots.light(), timer.lap("build"):
        say("build")
        runner.running(Stage.BUILD)
        try:
            built = build_submission(ctx.client, submission, ctx.build_options, log=lambda m: None)
        except (BuildFailed, SubmissionError) as exc:
            runner.failed(Stage.BUILD, reason=exc.summary,
                          log=str(exc.log_path) if exc.log_path else None)
            raise SubmissionExcluded("build", exc.summary, expected=exc.expected, found=exc.found, fix=exc.fix,
                                     log_path=exc.log_path) from None
    image_id = _image_id(ctx.client, built.image)
    runner.done(Stage.BUILD, key=built.image, image=built.image, image_id=image_id,
                  cached=built.cached, lock_sha256=built.lock_digest, lock_source=built.lock.lock_source.value)
    if built.lock_path is not None:
        write_atomic(out_dir / LOCK_NAME, built.lock_path.read_text())

    # -- fetch --------------------------------------------------------------------------------------
    fetch_key = key_of(image=built.image, agent=ctx.agent_hash, max_seconds=settings.max_seconds)
    done = state.done("fetch", key=fetch_key) if state else None
    if done is not None and done.data.get("attributes"):
        attributes = EncoderAttributes.from_dict(done.data["attributes"])
        timer.resumed["fetch"] = {k: done.data[k] for k in _PEAK_KEYS if k in done.data}
        say("fetch: done earlier (resumed)")
    else:
        runner.enter(SubmissionState.FETCHING)
        with ctx.slots.light(), timer.lap("fetch"):
            say("fetch: constructing the encoder with network on")
            runner.running(Stage.FETCH, key=fetch_key)
            fetched = fetch(ctx.client, FetchSpec(submission, built.image, ctx.profile, logs, ctx.build_options.ca_bundle,
                                                  settings.max_seconds))
        timer.resources["fetch"] = _resources(fetched.run)
        attributes = _attributes_or_exclude(runner, fetch_key, fetched)
        runner.done(Stage.FETCH, key=fetch_key, attributes=attributes.to_dict(),
                      log=str(fetched.run.log_path), **timer.resources["fetch"])
    say(f"encoder: {attributes.class_name} at {attributes.sampling_rate} Hz, hop {attributes.hop_size_in_ms:g} ms, "
        f"D={attributes.output_dim}")

    # -- the tasks: which are done already, and where each one's prepared data is -------------------------
    runs = run_root(submission)
    tasks = settings.tasks
    prepare_spec = prepare_stage.PrepareSpec(Path(settings.data), tasks, ctx.runtime, ctx.profile, logs)
    entries: dict[str, TaskResult] = {}
    score_keys: dict[str, str] = {}
    encode_keys: dict[str, str] = {}
    # Where each task's batches are (or will be) is known without preparing: the keys of encode and
    # score follow from it, so a task scored earlier needs no preparation at all.
    prepared = {t.label: prepare_stage.prepared_dir(prepare_spec, t, attributes) for t in tasks}
    for task in tasks:
        encode_keys[task.label] = key_of(image=built.image, agent=ctx.agent_hash, prepared=prepared[task.label].name)
        request = settings.request(task)
        score_keys[task.label] = key_of(encode=encode_keys[task.label], runtime=ctx.runtime, mode=request.mode.value,
                                        repeats=request.repeats, seed=request.seed,
                                        xares=XARES_VERSION, harness=__version__, **models_part(settings, task))
        done = state.done("score", task=task.label, key=score_keys[task.label]) if state else None
        failed = state.stages.get(("encode", task.label)) if state else None
        if done is not None and not settings.rescore:
            entries[task.label] = TaskResult.from_dict(done.data["result"])
            say(f"task {task.label}: already scored (resumed)")
        elif failed is not None and failed.state is StageState.FAILED and failed.key == encode_keys[task.label]:
            # The submission failed this task earlier (OOM, timeout, bad output) under the same
            # image and data: its own outcome, final, not something to run again.
            entries[task.label] = TaskResult(task.task_name or task.label, _source(task), TaskOutcome.FAILED,
                                             str(failed.data.get("reason") or ""), encoder=submission.encoder.spec,
                                             log=failed.data.get("log"))
            say(f"task {task.label}: failed earlier (resumed): {entries[task.label].reason}")
    pending = tuple(t for t in tasks if t.label not in entries)
    encoded: dict[str, encode_stage.Encoded] = {}
    is_prepared = False

    def prepare_pending(hold_slot: bool = True) -> None:
        with ctx.slots.heavy() if hold_slot else contextlib.nullcontext(), timer.lap("prepare"):
            if hold_slot:  # else the caller holds the slot and says which state the submission is in
                runner.enter(SubmissionState.PREPARING)
            pending_spec = dataclasses.replace(prepare_spec, tasks=pending)
            with contextlib.ExitStack() as stack:
                warm_prepare = None
                if settings.warm_start and not prepare_stage.probably_prepared(pending):
                    warm_prepare = prepare_stage.start(ctx.client, pending_spec, max_wait_s=120)
                    stack.enter_context(warm_prepare.stage)
                prepared.update(prepare_stage.prepare(ctx.client, pending_spec, attributes, warm=warm_prepare,
                                                      progress=say))

    def reuse_encodes() -> None:
        """Embeddings an earlier run left under the same keys, where their prepared data is there."""
        for task in pending:
            embeddings = encode_stage.embeddings_dir(runs, task)
            done = state.done("encode", task=task.label) if state else None
            reusable = done is not None and (done.key == encode_keys[task.label] or settings.rescore)
            if reusable and prepare_stage.is_prepared(prepared[task.label]) \
                    and encode_stage.count_embeddings(prepared[task.label], embeddings) is None:
                encoded[task.label] = encode_stage.Encoded(embeddings)
                say(f"encode {task.label}: done earlier (resumed)")

    def encode_spec(todo: tuple[TaskRef, ...], gpu: str | None) -> encode_stage.EncodeSpec:
        return encode_stage.EncodeSpec(submission, built.image, todo, prepared, runs, ctx.profile, logs, gpu)

    def record_encoded(results: Mapping[str, encode_stage.Encoded | None]) -> None:
        for label, result in results.items():
            if result is None:
                continue  # not reached: encoded in a container of its own below
            encoded[label] = result
            _peak(timer, "encode", result.run)
            runner.ended(Stage.ENCODE, result.ok, task=label, key=encode_keys[label], reason=result.reason,
                         log=str(result.log) if result.log else None)

    # -- check, then (in the same sandbox, after the host's decision) encode --------------------------
    check_key = key_of(image=built.image, agent=ctx.agent_hash, max_seconds=settings.max_seconds,
                       profile=ctx.profile.name)
    done = state.done("check", key=check_key) if state else None
    if done is not None:
        checks_summary = done.data["checks"]
        timer.resumed["check"] = {k: done.data[k] for k in _PEAK_KEYS if k in done.data}
        say("check: done earlier (resumed)")
    else:
        reuse_encodes()
        todo = tuple(t for t in pending if t.label not in encoded)
        with contextlib.ExitStack() as stack:
            # Prepare runs beside the check when a second heavy slot is free, else before it (and
            # before the GPU is taken): either way it is done before the go, when the prepared audio
            # is linked into the check's container (the checks never see it).
            stack.enter_context(ctx.slots.heavy())
            beside = bool(pending) and stack.enter_context(ctx.slots.spare_heavy())
            if pending and not beside:
                runner.enter(SubmissionState.PREPARING)
                prepare_pending(hold_slot=False)
            runner.enter(SubmissionState.CHECKING)
            gpu = stack.enter_context(ctx.slots.gpu())
            preparing = None
            if beside:
                pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prepare"))
                preparing = pool.submit(prepare_pending, False)
            is_prepared = bool(pending)
            say("check: the contract checker, network off")
            runner.running(Stage.CHECK, key=check_key, gpu=gpu)
            spec = CheckSpec(submission, built.image, ctx.profile, logs, gpu, settings.max_seconds)
            decided: dict[str, Any] = {}

            def decide(checked: ContractRun) -> bool:
                """The check recorded as it stood at its report; the go when nothing in it blocks."""
                decided["summary"] = _record_check(ctx, runner, out_dir, check_key, checked, gpu, timer)
                decided["at"] = time.monotonic()
                if decided["summary"]["blocking"]:
                    return False
                if preparing is not None:
                    preparing.result()  # the audio the go links in; its failure is raised here
                decided["go"] = time.monotonic()
                runner.enter(SubmissionState.ENCODING)
                for task in todo:
                    runner.running(Stage.ENCODE, task=task.label, key=encode_keys[task.label], gpu=gpu)
                say(f"encode: {len(todo)} task(s) in the check's sandbox (network off), after its go")
                return True

            t0 = time.monotonic()
            if todo:
                # The agent waits for the decision as long as a prepare beside it may take.
                wait = DECISION_WAIT_S + (ctx.profile.stage(Stage.PREPARE).wall_clock_s if preparing else 0)
                both = check_then_encode(ctx.client, spec, encode_spec(todo, gpu), decide, decision_wait_s=wait)
                checked = both.checked
                if both.went_on:
                    timer.add("encode", time.monotonic() - decided["go"])
                    record_encoded(both.encoded)
            else:
                checked = check(ctx.client, spec)
            timer.add("check", (decided.get("at") or time.monotonic()) - t0)
            if preparing is not None:
                preparing.result()
        checks_summary = decided.get("summary") or _record_check(ctx, runner, out_dir, check_key, checked, gpu, timer)
    say(f"check: {checks_summary['summary']['headline']}" if checks_summary.get("summary") else "check: done")
    if checks_summary["blocking"]:
        first = checks_summary["blocking"][0]
        headline = (checks_summary.get("summary") or {}).get("headline", "")
        raise SubmissionExcluded("check", headline if headline.startswith("will be excluded")
                                 else f"excluded by --block-on: {first}",
                                 expected="the checks X-ARES's own checker enforces (and --block-on) to pass",
                                 found="; ".join(checks_summary["blocking"]),
                                 fix="run `aecc validate` on the submission", log_path=logs / "check.log")

    # -- prepare (when the check was done earlier), encode what is left, score: per task ---------------
    if pending:
        if not is_prepared:
            prepare_pending()
            reuse_encodes()
        todo = tuple(t for t in pending if t.label not in encoded)
        if todo:
            runner.enter(SubmissionState.ENCODING)
            with ctx.slots.heavy(), ctx.slots.gpu() as gpu, timer.lap("encode"):
                for task in todo:
                    runner.running(Stage.ENCODE, task=task.label, key=encode_keys[task.label], gpu=gpu)
                record_encoded(encode_stage.encode(ctx.client, encode_spec(todo, gpu), progress=say))
        for task in pending:
            if not encoded[task.label].ok:
                failed = encoded[task.label]
                entries[task.label] = TaskResult(task.task_name or task.label, _source(task), TaskOutcome.FAILED,
                                                 failed.reason, encoder=submission.encoder.spec,
                                                 log=str(failed.log) if failed.log else None)
                _announce(say, task, entries[task.label])
        to_score = tuple(t for t in pending if encoded[t.label].ok)
        if to_score:
            runner.enter(SubmissionState.SCORING)
            with ctx.slots.heavy(), ctx.slots.gpu() as gpu, timer.lap("score"):
                for task in to_score:
                    runner.running(Stage.SCORE, task=task.label, key=score_keys[task.label])
                scored = score_stage.score(ctx.client, _score_spec(ctx, submission, to_score, gpu), attributes,
                                           prepared, {t.label: encoded[t.label].embeddings for t in to_score},
                                           warm=warm, progress=say)
            for task in to_score:
                answer = scored[task.label]
                _peak(timer, "score", answer.run)
                entry = (TaskResult.scored(task.task_name or task.label, _source(task), answer.score,
                                           encoder=submission.encoder.spec) if answer.ok
                         else TaskResult(task.task_name or task.label, _source(task), TaskOutcome.FAILED, answer.failure,
                                         encoder=submission.encoder.spec))
                entries[task.label] = entry
                runner.done(Stage.SCORE, task=task.label, key=score_keys[task.label],
                              result=entry.to_dict(), runtime=ctx.runtime, harness=__version__, xares=XARES_VERSION)
                _announce(say, task, entry)

    existing = out_dir / RESULT_NAME
    if not timer.resources and "encode_s" not in timer.timings and "score_s" not in timer.timings \
            and existing.is_file():
        # Nothing ran: every stage was done under the current keys. The result on disk stands as
        # written (and signed); rewriting it would only change its timings and its signature.
        say("result: unchanged (every stage done earlier)")
        return ScoreResult.from_dict(json.loads(existing.read_text()))
    timer.timings["total_s"] = round(time.monotonic() - started, 2)
    # The per-clip outputs beside the result, named with their digest in it: the signature covers them.
    clips = score_stage.gather_clips(runs, tasks, entries, out_dir / CLIPS_NAME)
    result = _assemble(ctx, submission, arrivals, built, image_id, attributes, checks_summary,
                       tuple(entries[t.label] for t in tasks), timer, clips)
    data = result.to_dict()
    if submission.archive is not None and not (out_dir / ARCHIVE_NAME).exists():
        # The ZIP beside its result, so that `aecc verify` checks the signed subject against it.
        _link_or_copy(submission.archive, out_dir / ARCHIVE_NAME)
    _write_json(out_dir / RESULT_NAME, data)
    if ctx.signer is not None:
        ctx.signer.sign(out_dir, data, zip_sha256=submission.sha256, image_digest=image_id)
    return result


def _record_check(ctx: Context, runner: StageRunner, out_dir: Path, key: str, checked: ContractRun, gpu: str | None,
                  timer: _Timer) -> dict:
    """The check's verdict, recorded: its report beside the result, its summary in the journal.

    Raises:
        InfraError: the engine or the checker itself failed (never the submission's failure).
    """
    checked.raise_for_infra()
    timer.resources["check"] = _resources(checked.run)
    summary = _check_summary(checked, ctx.profile, ctx.settings)
    if checked.report is not None:
        _write_json(out_dir / CHECK_REPORT, checked.report)
    runner.ended(Stage.CHECK, not summary["blocking"], key=key, checks=summary, log=str(checked.run.log_path),
                 gpu=gpu, **timer.resources["check"])
    return summary


def _peak(timer: _Timer, stage: str, run: RunResult | None) -> None:
    """The stage's peaks over its containers (a stage that reruns for the tasks it never reached has several)."""
    if run is None:
        return
    now = timer.resources.setdefault(stage, {"peak_host_memory_bytes": None, "peak_gpu_memory_bytes": None,
                                             "duration_s": 0.0})
    for key, value in (("peak_host_memory_bytes", run.peak_memory_bytes), ("peak_gpu_memory_bytes", run.peak_gpu_bytes)):
        if value is not None:
            now[key] = max(now[key] or 0, value)


def _image_id(client: Any, ref: str) -> str | None:
    try:
        return client.images.get(ref).id
    except Exception:  # noqa: BLE001 (a missing id is recorded as null, never guessed)
        return None


def _attributes_or_exclude(runner: StageRunner, key: str, fetched: ContractRun) -> EncoderAttributes:
    """The attributes, or the submission excluded with what went wrong at construction."""
    fetched.raise_for_infra()
    if fetched.verdict is RunVerdict.OK and fetched.attributes is not None:
        return fetched.attributes
    found = fetched.failure()
    runner.failed(Stage.FETCH, key=key, reason=found, log=str(fetched.run.log_path))
    raise SubmissionExcluded("fetch", "the encoder could not be constructed in the fetch stage",
                             expected="construction to succeed (network on) with attributes in range", found=found,
                             fix="run `aecc validate` on the submission", log_path=fetched.run.log_path)


def _check_summary(checked: ContractRun, profile: SandboxProfile, settings: ScoreSettings) -> dict:
    """The verdict (`checker.verdict`), the failures that exclude, and the rest that did not pass."""
    report = checked.report
    checks = checked.lines(profile)  # the same lines `aecc validate` shows
    summary = summarise_checks(checks, expect_rule_checks=True)
    blocking_items = [i for i in summary.items if settings.blocks(i)]
    blocking_ids = {i.id for i in blocking_items}
    warnings = [c.to_dict() for c in checks if c.status in (CheckStatus.FAILED, CheckStatus.WARNING)
                and c.id not in blocking_ids]
    verdict = "error" if report is None else ("passed" if summary.ok else "failed")
    return {"verdict": verdict, "blocking": [f"{i.id}: {i.message}" for i in blocking_items], "warnings": warnings,
            "report": CHECK_REPORT, "summary": summary.to_dict()}


def _source(task: TaskRef) -> str:
    return str(task.file) if task.file else task.module


def _announce(say: Callable[[str], None], task: TaskRef, entry: TaskResult) -> None:
    numbers = ""
    if entry.track_a is not None:
        numbers = f" (track A {entry.track_a:.4f}" + (
            f", track B {entry.track_b:.4f})" if entry.track_b is not None else ")")
    say(f"task {task.label}: {entry.outcome.value}{numbers}" + (f" - {entry.reason}" if entry.reason else ""))


def display_name(submission: Submission, arrivals: list[dict]) -> str:
    for arrival in arrivals:
        if arrival.get("sender"):
            return str(arrival["sender"])
    for arrival in arrivals:
        if arrival.get("file_name"):
            return Path(str(arrival["file_name"])).stem
    return f"{submission.encoder.class_name} ({submission.sha256[:8]})"


def _assemble(ctx: Context, submission: Submission, arrivals: list[dict], built: SubmissionImage, image_id: str | None,
              attributes: EncoderAttributes, checks: dict, tasks: tuple[TaskResult, ...], timer: _Timer,
              clips: dict | None = None) -> ScoreResult:
    settings = ctx.settings
    info = {"sha256": submission.sha256, "encoder_file": submission.encoder.file,
            "encoder_class": submission.encoder.class_name, "image": built.image,
            "torch_version": built.torch_version, "sampling_rate": attributes.sampling_rate,
            "output_dim": attributes.output_dim, "hop_size_in_ms": attributes.hop_size_in_ms}
    if built.lock_digest:
        info["lock_sha256"] = built.lock_digest
    report = next(({"file_name": a["report"]["file_name"], "pages": a["report"].get("pages"),
                    "sha256": a["report"].get("sha256")} for a in arrivals if a.get("report")), None)
    extra = {
        "name": display_name(submission, arrivals),
        "arrivals": [{k: a.get(k) for k in ("source", "kind", "file_name", "sender", "sender_address", "date",
                                            "subject", "message_id")}
                     | {"report_pages": (a.get("report") or {}).get("pages"), "warnings": list(a.get("warnings", ()))}
                     for a in arrivals],
        "report": report,
        "checks": checks,
        "images": {"submission": built.image, "submission_id": image_id, "runtime": ctx.runtime,
                   "runtime_id": ctx.runtime_id},
        "environment": {"profile": ctx.profile.name, "gpu_uuid": ",".join(ctx.slots.capacity.gpus) or None,
                        "host": socket.gethostname(), "models_manifest_sha256": models_digest(settings)},
        "resources": {stage: {**peaks, "duration_s": peaks.get("duration_s") or timer.timings.get(f"{stage}_s")}
                      for stage, peaks in timer.all_resources().items()},
        "clips": clips,
    }
    return ScoreResult(
        submission=info,
        versions={"harness": __version__, "harness_commit": harness_commit(), "xares": XARES_VERSION,
                  "runtime_image": ctx.runtime},
        settings={"profile": ctx.profile.name, "mode": settings.mode.value, "repeats": settings.repeats,
                  "seed": settings.seed},
        tasks=tasks,
        timings=timer.timings,
        extra=extra,
    )


"""The organizers' night: an inbox of submissions scored in one resumable run.

    inbox -> intake (each ZIP) -> duplicates and resends -> per submission, concurrently within the
    host's limits: build -> fetch -> check -> prepare -> encode -> score -> result.json -> signed

- Identical ZIPs (one sha256) are one submission, scored once; every file name, sender and date is
  kept as an alias. With `--latest-per-sender` a later ZIP from the same address supersedes the
  earlier one; both stay on disk and the superseded one is marked.
- A submission's failure (intake, build, a blocking check, a task's OOM...) is recorded and the
  batch goes on. An infrastructure failure (engine gone, disk full, harness bug) is retried with
  backoff (`--retries`), and when the retries are spent the submission is left `error`: never
  recorded as failed, never ranked as a zero, picked up again by the next run.
- Everything is in the journal (`harness.journal`): SIGKILL at any moment and the same command
  redoes no completed stage, writes no duplicate, and removes the containers the killed run left.
- Two processes on one RESULTS cooperate: each submission is leased by the process working on it.
- Ctrl-C or SIGTERM stops every running stage (`harness.sandbox.run.STOP`), removes its containers,
  releases the leases and leaves the journal consistent.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading
from pathlib import Path
from typing import Any, Callable

from harness import __version__, paths
from harness.attest import Signer
from harness.bulk import inbox as inbox_mod
from harness.errors import HarnessError, InfraError, SubmissionError, UsageError
from harness.journal import EventKind, Journal, Leases, SubmissionState
from harness.layers.build import build_chain
from harness.layers.model import XARES_VERSION, runtime_layer
from harness.layers.options import BuildOptions, require_upload_times
from harness.mailbox.config import MailOptions, is_mail_url
from harness.pipelines.runner import StageRunner
from harness.pipelines.score import (
    Context,
    ScoreSettings,
    SubmissionExcluded,
    score_one,
)
from harness.results import ScoreResult
from harness.sandbox.profiles import SandboxProfile, load_profile
from harness.slots import Capacity, Slots, plan
from harness.stages.intake import Submission, intake
from harness.stages.rejection import escape_name

ATTACHMENTS = "inbox"


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    inputs: tuple[Path | str, ...]  # paths, and IMAP addresses (str: imaps://USER@HOST/FOLDER)
    out: Path
    settings: ScoreSettings
    profile: str = "cpu"
    encoder: str | None = None
    gpu: str | None = None
    jobs: int | None = None
    retries: int = 2
    backoff_s: float = 10.0
    latest_per_sender: bool = False
    key: Path | None = None  # the Ed25519 private key results are signed with
    mail: MailOptions | None = None  # IMAP and answers (harness.mailbox); None: neither

    def to_dict(self) -> dict:
        """Plain data a cluster job reads back (`from_dict`): the same settings on every node."""
        return {"inputs": [p if is_mail_url(p) else str(Path(p).absolute()) for p in self.inputs],
                "mail": self.mail.to_dict() if self.mail is not None else None,
                "out": str(Path(self.out).absolute()),
                "profile": self.profile, "encoder": self.encoder, "gpu": self.gpu, "jobs": self.jobs,
                "retries": self.retries, "backoff_s": self.backoff_s, "latest_per_sender": self.latest_per_sender,
                "key": str(self.key) if self.key else None, "settings": self.settings.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "BatchSpec":
        settings = ScoreSettings.from_dict(data["settings"])
        return cls(inputs=tuple(p if is_mail_url(p) else Path(p) for p in data["inputs"]), out=Path(data["out"]),
                   settings=settings,
                   mail=MailOptions.from_dict(data["mail"]) if data.get("mail") else None,
                   profile=data["profile"], encoder=data["encoder"], gpu=data["gpu"], jobs=data["jobs"],
                   retries=data["retries"], backoff_s=data["backoff_s"], latest_per_sender=data["latest_per_sender"],
                   key=Path(data["key"]) if data["key"] else None)

    def signer(self) -> Signer | None:
        """The Signer for `key`, loaded now (a bad key is a usage error before any work), or None:
        results unsigned (the CLI says so once)."""
        return Signer.from_key_file(self.key) if self.key is not None else None

    def __post_init__(self) -> None:
        if not self.inputs:
            raise UsageError("nothing to score", expected="one or more ZIPs, folders, .eml, mbox or Maildir paths",
                             found="none")
        if self.retries < 0:
            raise UsageError("--retries must be >= 0", found=str(self.retries))


@dataclasses.dataclass
class Planned:
    """One submission of the batch and every arrival that was it."""

    submission: Submission
    arrivals: list[dict]
    superseded_by: str | None = None


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    results: dict[str, ScoreResult]  # sha256 -> result, for submissions scored (now or earlier)
    states: dict[str, SubmissionState]
    unusable: int
    refused: int  # arrivals refused at intake
    capacity: Capacity
    errors: dict[str, Exception] = dataclasses.field(default_factory=dict)  # sha256 -> why it was excluded or left

    @property
    def exit_code(self) -> int:
        """0 when every submission is final and scored; 1 when any was excluded or has a failed task;
        2 when any was left with an infrastructure error."""
        if any(s is SubmissionState.ERROR for s in self.states.values()):
            return 2
        if any(s is SubmissionState.EXCLUDED for s in self.states.values()) or self.refused:
            return 1
        if any(r.status.value != "complete" for r in self.results.values()):
            return 1
        return 0


def arrival_record(arrival: Any) -> dict:
    """An inbox arrival as the journal and result.json keep it (plain data)."""
    report = arrival.report
    return {"source": arrival.source, "kind": arrival.kind.value, "path": str(Path(arrival.path).absolute()),
            "file_name": arrival.file_name,
            "sender": arrival.sender, "sender_address": arrival.sender_address, "date": arrival.date,
            "subject": arrival.subject, "message_id": arrival.message_id, "warnings": list(arrival.warnings),
            "received": arrival.received, "no_reply": arrival.no_reply, "references": arrival.references,
            "report": None if report is None else {"file_name": report.file_name, "pages": report.pages,
                                                   "sha256": report.sha256, "problem": report.problem}}


def run_batch(client: Any, spec: BatchSpec, build_options: BuildOptions | None = None, *,
              progress: Callable[[str, str], None] = lambda sha, message: print(sha[:12], message),
              on_plan: Callable[[list[Planned], Capacity], None] | None = None,
              on_checked: Callable[[str], None] | None = None) -> BatchOutcome:
    """Score every submission of `spec.inputs` on this host; resumable; returns what became of each.

    `on_checked(sha256)` is called, in the submission's worker, when its check stage has ended
    (now or in an earlier run): the mail loop answers the sender then, before scoring.

    Raises:
        UsageError: bad arguments or inputs, before any work.
        InfraError: the engine or the runtime image cannot be had at all.
    """
    build_options = options_for(spec, build_options)
    signer = spec.signer()
    from harness.sandbox.cleanup import cleanup

    cleanup(client)  # what a killed run left behind (only containers of dead harness processes)
    if on_checked is not None:
        progress = _tap_check(progress, on_checked)
    planned, refused, unusable, errors = plan_batch(spec, progress=progress)
    worker = Worker(client, spec, build_options, progress=progress, signer=signer)
    try:
        if on_plan is not None:
            on_plan(planned, worker.capacity)
        results = worker.work(planned, errors)
        state = worker.journal.state()
        states = {p.submission.sha256: state.submissions[p.submission.sha256].state
                  for p in planned if p.submission.sha256 in state.submissions}
        return BatchOutcome(results, states, unusable, refused, worker.capacity, errors)
    finally:
        worker.close()


def options_for(spec: BatchSpec, build_options: BuildOptions | None) -> BuildOptions:
    """The build options of `spec`'s run: the submission profile set, upload times required when asked."""
    build_options = dataclasses.replace(build_options or BuildOptions.from_environment(),
                                        submission_profile=spec.profile)
    if build_options.resolve_before:
        require_upload_times(build_options)
    return build_options


def plan_batch(spec: BatchSpec, *, progress: Callable[[str, str], None] = lambda sha, message: None
               ) -> tuple[list[Planned], int, int, dict[str, Exception]]:
    """The inbox read, every ZIP through intake, duplicates merged, resends superseded; all in the
    journal. Needs no engine: a cluster's submit host may have none.

    Returns:
        (the submissions, how many arrivals intake refused, how many mails were unusable, errors)
    """
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out)
    try:
        if spec.mail is not None or any(is_mail_url(p) for p in spec.inputs):
            from harness.bulk.mail_source import read_inbox

            inbox = read_inbox(spec, journal, out / ATTACHMENTS, say=lambda m: progress("-" * 64, m))
        else:
            inbox = inbox_mod.read_inbox(list(spec.inputs), out / ATTACHMENTS)
        errors: dict[str, Exception] = {}
        planned, refused = _plan(journal, inbox, spec, progress, errors)
        return planned, refused, len(inbox.unusable), errors
    finally:
        journal.close()


class Worker:
    """Works on submissions of a RESULTS folder on this host: the engine, the runtime image, the
    host's capacity, a journal writer and leases of its own. The local backend runs one for the
    whole batch; a cluster job runs one for its submission."""

    def __init__(self, client: Any, spec: BatchSpec, build_options: BuildOptions, *,
                 progress: Callable[[str, str], None] = lambda sha, message: None,
                 signer: Signer | None = None,
                 in_flight: int | None = None, lease_ttl_s: float = 120.0):
        self.spec = spec
        profile = load_profile(spec.profile)
        self.journal = Journal(Path(spec.out))
        self.leases = Leases(Path(spec.out), self.journal.writer.id, ttl_s=lease_ttl_s)
        try:
            runtime = build_chain(client, runtime_layer(), build_options, log=lambda m: None)[-1].image
            runtime_id = client.images.get(runtime).id
            gpus = _gpus(profile, spec.gpu)
            jobs = spec.jobs if in_flight is None else min(in_flight, spec.jobs or in_flight)
            self.capacity = plan(memory_bytes=profile.memory_bytes, cpus=profile.cpus,
                                 host_memory_bytes=_host_memory(), host_cpus=os.cpu_count() or 1, gpus=gpus, jobs=jobs)
        except BaseException:
            self.journal.close()
            raise
        self.journal.append(EventKind.RUN, state="started",
                            data={"harness": __version__, "xares": XARES_VERSION, "runtime": runtime,
                                  "runtime_id": runtime_id, "profile": profile.name, "pid": os.getpid(),
                                  "capacity": dataclasses.asdict(self.capacity)})
        self.ctx = Context(client=client, settings=spec.settings, profile=profile, runtime=runtime,
                           runtime_id=runtime_id, build_options=build_options, journal=self.journal,
                           slots=Slots(self.capacity), results=Path(spec.out), progress=progress, signer=signer,
                           warm_score=not gpus)
        self.leases.start_heartbeat()

    def work(self, planned: list[Planned], errors: dict[str, Exception] | None = None) -> dict[str, ScoreResult]:
        return _work(self.ctx, planned, self.leases, self.spec, errors if errors is not None else {})

    def close(self) -> None:
        self.leases.stop()
        self.journal.append(EventKind.RUN, state="ended", data={"pid": os.getpid()})
        self.journal.close()


def planned_from_journal(spec: BatchSpec, sha256: str) -> Planned:
    """One planned submission, as `plan_batch` recorded it, for a cluster job that works on it alone:
    its ZIP is read again from where the arrival left it (mail attachments are kept in RESULTS/inbox;
    loose ZIPs and folders must be on a file system the nodes share) and must hash the same.

    Raises:
        UsageError: the journal knows no such submission, or none of its files can be read again.
    """
    from harness.journal import read_events, reduce

    state = reduce(read_events(Path(spec.out))).submissions.get(sha256)
    if state is None or not state.arrivals:
        raise UsageError(f"submission {sha256[:12]} is not in the journal of {spec.out}",
                         expected="a submission planned by `aecc score`", found="none",
                         fix="plan the batch again (the same command), then resubmit")
    problems = []
    for arrival in state.arrivals:
        path = Path(str(arrival.get("path") or ""))
        try:
            submission = intake(path, paths.subdir("store"), encoder=spec.encoder)
        except (SubmissionError, UsageError) as exc:
            problems.append(f"{path}: {exc.summary}")
            continue
        if submission.sha256 == sha256:
            planned = Planned(submission, [dict(a) for a in state.arrivals])
            if state.state is SubmissionState.SUPERSEDED:
                planned.superseded_by = str(state.detail.get("superseded_by"))
            return planned
        problems.append(f"{path}: now sha256 {submission.sha256[:12]}")
    raise UsageError(f"submission {sha256[:12]} cannot be read again on this node",
                     expected="its ZIP or folder where it arrived, unchanged, on a file system this node shares",
                     found="; ".join(problems) or "no path recorded",
                     fix="put the inbox and RESULTS on the cluster's shared file system")


def _gpus(profile: SandboxProfile, wanted: str | None) -> list[str]:
    if profile.gpu is None:
        return []
    from harness.sandbox.gpu import list_gpus, pick_gpu

    gpus = list_gpus()
    if wanted:
        return [pick_gpu(gpus, wanted, profile.gpu.memory_bytes).uuid]
    usable = [g.uuid for g in gpus if g.memory_total_bytes >= profile.gpu.memory_bytes]
    if not usable:
        pick_gpu(gpus, None, profile.gpu.memory_bytes)  # raises GpuUnavailable naming what was found
    return usable


def _host_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _plan(journal: Journal, inbox: Any, spec: BatchSpec, progress: Callable[[str, str], None],
          errors: dict[str, Exception]) -> tuple[list[Planned], int]:
    """Intake every arrival, merge identical ZIPs, mark superseded resends; record all in the journal."""
    known = journal.state()
    recorded_unusable = {u.get("source") for u in known.unusable}
    for item in inbox.unusable:
        if item.source not in recorded_unusable:
            journal.append(EventKind.UNUSABLE, data={
                "source": item.source, "reason": item.reason.value, "detail": item.detail, "sender": item.sender,
                "sender_address": item.sender_address, "date": item.date, "subject": item.subject,
                "message_id": item.message_id, "received": item.received, "no_reply": item.no_reply,
                "references": item.references})
    by_sha: dict[str, Planned] = {}
    refused = 0
    if spec.encoder and len(inbox.arrivals) != 1:
        raise UsageError("--encoder names one submission's class", expected="exactly one ZIP or folder",
                         found=f"{len(inbox.arrivals)} arrivals", fix="use an aecc.json manifest in each ZIP instead")
    store = paths.subdir("store")
    for arrival in inbox.arrivals:
        record = arrival_record(arrival)
        try:
            submission = intake(arrival.path, store, encoder=spec.encoder)
        except SubmissionError as exc:
            refused += 1
            sha = arrival.sha256
            errors[sha or arrival.source] = exc
            progress(sha or "-" * 64, f"intake: {escape_name(arrival.file_name)} refused: {exc.summary}")
            if sha:
                journal.append(EventKind.ARRIVAL, sha256=sha, data=record)
                StageRunner(journal, sha).excluded("intake", exc)
            else:
                journal.append(EventKind.UNUSABLE, data={**record, "reason": "intake_refused", "detail": exc.render()})
            continue
        planned = by_sha.setdefault(submission.sha256, Planned(submission, []))
        planned.arrivals.append(record)
        progress(submission.sha256, f"intake: {escape_name(arrival.file_name)}: {submission.file_count} files, "
                                    f"encoder {submission.encoder.spec}"
                                    + (" (the same ZIP as an earlier arrival)" if len(planned.arrivals) > 1 else ""))
        if not any(a.get("source") == record["source"] for a in
                   (known.submissions.get(submission.sha256).arrivals if submission.sha256 in known.submissions else [])):
            journal.append(EventKind.ARRIVAL, sha256=submission.sha256, data=record)
    planned = list(by_sha.values())
    if spec.latest_per_sender:
        latest: dict[str, Planned] = {}
        for p in planned:
            for a in p.arrivals:
                sender = a.get("sender_address")
                if not sender:
                    continue
                current = latest.get(sender)
                if current is None or (a.get("date") or "") > _latest_date(current, sender):
                    latest[sender] = p
        for p in planned:
            senders = {a.get("sender_address") for a in p.arrivals if a.get("sender_address")}
            winners = {latest[s].submission.sha256 for s in senders}
            if senders and p.submission.sha256 not in winners:
                p.superseded_by = sorted(winners)[0]
                StageRunner(journal, p.submission.sha256).superseded(p.superseded_by)
    return planned, refused


def _tap_check(progress: Callable[[str, str], None], on_checked: Callable[[str], None]
               ) -> Callable[[str, str], None]:
    """`progress`, also calling `on_checked` on the check stage's messages (the pipeline says
    "check: ..." when it starts, ends or resumes it; `on_checked` reads the journal to tell)."""
    def tapped(sha: str, message: str) -> None:
        progress(sha, message)
        if message.startswith("check: ") and not message.startswith("check: the contract checker"):
            on_checked(sha)

    return tapped


def _latest_date(planned: Planned, sender: str) -> str:
    return max((a.get("date") or "") for a in planned.arrivals if a.get("sender_address") == sender)


def _work(ctx: Context, planned: list[Planned], leases: Leases, spec: BatchSpec,
          errors: dict[str, Exception]) -> dict[str, ScoreResult]:
    """Run the submissions that still need work, `capacity.in_flight` at a time."""
    from harness.sandbox.run import STOP

    todo = [p for p in planned if p.superseded_by is None]
    results: dict[str, ScoreResult] = {}
    lock = threading.Lock()

    def one(p: Planned) -> None:
        sha = p.submission.sha256
        if STOP.is_set():
            return
        earlier = ctx.journal.state().submissions.get(sha)
        if earlier is not None and earlier.state is SubmissionState.EXCLUDED:
            # Refused for what it is (build, construction, a blocking check): final, like a score.
            ctx.progress(sha, f"excluded earlier at {earlier.detail.get('stage')}: {earlier.detail.get('reason')}")
            return
        if not leases.acquire(sha):
            holder = leases.holder(sha) or {}
            ctx.progress(sha, f"held by another process ({holder.get('host')} pid {holder.get('pid')}): skipped")
            return
        try:
            result = _with_retries(ctx, p, spec, errors)
            if result is not None:
                with lock:
                    results[sha] = result
        finally:
            leases.release(sha)

    STOP.clear()
    with concurrent.futures.ThreadPoolExecutor(max_workers=ctx.slots.capacity.in_flight,
                                               thread_name_prefix="submission") as pool:
        futures = [pool.submit(one, p) for p in todo]
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()
        except BaseException:
            # Ctrl-C, SIGTERM or a harness bug: every running stage is killed at its next watch and
            # its container removed; queued submissions never start.
            STOP.set()
            for future in futures:
                future.cancel()
            raise
    return results


def _with_retries(ctx: Context, p: Planned, spec: BatchSpec, errors: dict[str, Exception]) -> ScoreResult | None:
    sha = p.submission.sha256
    runner = StageRunner(ctx.journal, sha)
    for attempt in range(spec.retries + 1):
        try:
            result = _score_one_typed(ctx, p)
        except SubmissionExcluded as exc:
            errors[sha] = exc
            runner.excluded(exc.stage, exc)
            ctx.progress(sha, f"excluded at {exc.stage}: {exc.summary}")
            return None
        except InfraError as exc:
            from harness.sandbox.run import STOP

            errors[sha] = exc
            if STOP.is_set():
                raise KeyboardInterrupt("stopped") from None
            runner.errored(exc, attempt=attempt + 1)
            if attempt == spec.retries:
                ctx.progress(sha, f"infrastructure error, retries spent: {exc.summary} (not the submission's failure)")
                return None
            wait = spec.backoff_s * (2 ** attempt)
            ctx.progress(sha, f"infrastructure error: {exc.summary}; retrying in {wait:g} s "
                              f"({attempt + 1} of {spec.retries})")
            if STOP.wait(wait):
                raise KeyboardInterrupt("stopped") from None
            continue
        except SubmissionError as exc:  # anything else the submission did (e.g. an intake-level refusal)
            errors[sha] = exc
            runner.excluded("score", exc)
            return None
        runner.finished(result.status.value)
        errors.pop(sha, None)
        return result
    return None


def _score_one_typed(ctx: Context, p: Planned) -> ScoreResult:
    """`score_one`, with whatever escaped the stages' own typing (a raw engine or connection error,
    a harness bug) made an infrastructure error: retried, never the submission's, never the end of
    the batch. The traceback goes to a log of its own."""
    try:
        return score_one(ctx, p.submission, p.arrivals)
    except (HarnessError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 (typed here, at the boundary of one submission)
        import traceback

        log = paths.logs() / f"harness-error-{p.submission.sha256[:12]}-{os.getpid()}.log"
        with open(log, "a") as fh:
            fh.write(traceback.format_exc() + "\n")
        raise InfraError(f"harness error while scoring: {type(exc).__name__}: {exc}",
                         expected="the stages to finish or fail with a typed error",
                         found=f"{type(exc).__name__} (traceback in the log)",
                         fix="rerun the same command (it resumes); if it repeats, report it with the log",
                         log_path=log) from exc


def describe_plan(planned: list[Planned], capacity: Capacity) -> list[str]:
    """What the run is about to do, for the console."""
    lines = [f"{len(planned)} submission(s); concurrency: {capacity.in_flight} in flight "
             f"({capacity.heavy} heavy, {capacity.light} light, {len(capacity.gpus)} GPU) - "
             + "; ".join(capacity.reasons)]
    for p in planned:
        names = ", ".join(escape_name(str(a.get("file_name"))) for a in p.arrivals)
        note = f" (superseded by {p.superseded_by[:12]})" if p.superseded_by else ""
        lines.append(f"  {p.submission.sha256[:12]} {names}{note}")
    return lines




def score_path(client: Any, source: Path, *, settings: ScoreSettings, out: Path, encoder: str | None = None,
               profile: str = "cpu", build_options: BuildOptions | None = None,
               progress: Callable[[str, str], None] = lambda sha, message: None) -> ScoreResult:
    """One submission (a ZIP or a folder) scored through the batch, for callers of the Python API.

    Raises:
        SubmissionError: it was refused (intake, build, a blocking check).
        InfraError: the infrastructure failed (no retries here: the caller decides).
    """
    spec = BatchSpec(inputs=(Path(source),), out=Path(out), settings=settings, profile=profile, encoder=encoder,
                     retries=0)
    outcome = run_batch(client, spec, build_options, progress=progress)
    if outcome.results:
        return next(iter(outcome.results.values()))
    if outcome.errors:
        raise next(iter(outcome.errors.values()))
    raise SubmissionError("the submission was not scored", expected="a ZIP or folder that passes intake",
                          found=str(source), fix=f"see `aecc status {out}`")

"""Check stage: the contract checker's full run, network off, in the T4-shaped sandbox.

Attributes, output shape and dtype, `T'` against `duration / hop_size_in_ms` from 0.5 s to 10
minutes, finiteness, determinism, batch independence, CUDA where a GPU is pinned, memory and
throughput (`checker.contract` lists every check). The weights fetched earlier are mounted
read-only; libraries are told to stay offline. Peak memory is measured from the host (the cgroup),
never taken from the checker's own report.

`check_then_encode` (what `aecc score` runs): the same container goes on to encode once the host has
read the report and decided, so torch and the submission's code are imported once, not twice. The
container is started with the encode's folders mounted, but the test audio is linked into them only
at the go: the checks never see it. The decision is the host's alone, written to a control folder
the container reads and cannot write (`checker.gate`'s go file): a cancel when a check excludes the
submission, a go with the encode's arguments otherwise. The report is read once, when the agent says
it is final, and a copy is what counts: anything the submission's code writes there afterwards is
never read. A container that does not end after a cancel is killed. When the container ends before
the decision (a limit, a crash, the watchdog), the check is judged on its own, exactly as `check`
judges it, and the encode runs in its own container (`harness.stages.encode`).
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from checker.jobs import DEFAULT_MAX_SECONDS, REPORT_FINAL_SUFFIX, Cancel, Go, write_jobs

from harness import paths
from harness.sandbox.agent import (
    CACHE_ENV,
    OFFLINE_ENV,
    REPORT_CAP,
    SUBMISSION_SRC,
    agent_command,
    agent_mount,
    read_check_report,
    run_contract,
)
from harness.sandbox import warm
from harness.sandbox.profiles import SandboxProfile
from harness.sandbox.run import run_stage
from harness.sandbox.spec import Mount, Outcome, RunResult, RunSpec
from harness.sandbox.watch import directory_size, memory_peak_files, read_memory_peak
from harness.stage_names import Stage
from harness.stages import encode as encode_stage
from harness.stages.contract_run import ContractRun, RunVerdict
from harness.stages.fetch import cache_dir
from harness.stages.intake import Submission

#: how long the agent waits for the host's decision after its report (the host decides in
#: milliseconds; this bounds a container whose harness died)
DECISION_WAIT_S = 300.0
#: the control folder in the container: the go file (`warm.GO_TARGET`) and the encode's jobs
CTL = str(Path(warm.GO_TARGET).parent)
#: how long a cancelled container may take to exit before it is killed (its own threads may hold it)
CANCEL_GRACE_S = 15.0


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    submission: Submission
    image: str
    profile: SandboxProfile
    log_dir: Path
    gpu: str | None = None
    max_seconds: float = DEFAULT_MAX_SECONDS


def check(client: Any, spec: CheckSpec) -> ContractRun:
    """Run every contract check; the submission's failures are in the result, never raised."""
    with tempfile.TemporaryDirectory(prefix="check-", dir=paths.scratch()) as tmp:
        out = Path(tmp)
        out.chmod(0o777)
        run, report, problem = run_contract(
            client, spec.profile, image=spec.image, encoder=spec.submission.encoder.spec, phase="check", out=out,
            cache=cache_dir(spec.submission), log_path=spec.log_dir / "check.log", max_seconds=spec.max_seconds,
            gpu=spec.gpu)
    return ContractRun(Stage.CHECK, run, report, problem)


@dataclasses.dataclass(frozen=True)
class CheckedAndEncoded:
    """The check as the host judged it at its decision, and what the same container encoded."""

    checked: ContractRun
    went_on: bool  # the host gave the go
    encoded: dict[str, encode_stage.Encoded | None]  # per task; None: not reached (encode it on its own)


def check_then_encode(client: Any, spec: CheckSpec, encode: encode_stage.EncodeSpec,
                      decide: Callable[[ContractRun], bool], *,
                      decision_wait_s: float = DECISION_WAIT_S) -> CheckedAndEncoded:
    """Check, ask `decide` (True: encode), and encode `encode.tasks` in the same container.

    `decide` runs on this thread once the report is final, and may take up to `decision_wait_s`
    (it may record the check, or wait for the prepared audio); what it raises stops the container
    and is raised here. The submission's failures are in the result, never raised; an engine
    failure is in the runs' outcomes (`raise_for_infra`). The encode's folders are laid out when
    `decide` has returned True, so `encode.prepared` may be filled until then."""
    tasks = list(encode.tasks)
    layout = encode_stage.Layout.make(encode, tasks, staged=True)
    clock = encode_stage.Clock(encode, tasks, layout.dirs)
    check_limit = spec.profile.stage(Stage.CHECK).wall_clock_s
    with tempfile.TemporaryDirectory(prefix="check-", dir=paths.scratch()) as tmp:
        report_dir, ctl = Path(tmp) / "report", Path(tmp) / "ctl"
        report_dir.mkdir()
        report_dir.chmod(0o777)
        ctl.mkdir()
        ctl.chmod(0o755)  # read by the sandbox user, written by the harness alone
        write_jobs(ctl / "jobs.json", layout.jobs)
        mounts = (agent_mount(), Mount(report_dir, "/report", read_only=False), Mount(cache_dir(spec.submission), "/cache"),
                  Mount(ctl, CTL), *layout.mounts)
        command = agent_command("contract", "--submission", SUBMISSION_SRC, "--encoder", spec.submission.encoder.spec,
                                "--report", "/report/check.json", "--phase", "check",
                                "--max-seconds", f"{spec.max_seconds:g}",
                                "--then-encode", warm.GO_TARGET, "--max-wait", f"{decision_wait_s:g}")
        run = RunSpec(stage=Stage.CHECK, image=spec.image, command=command, mounts=mounts,
                      env={**CACHE_ENV, **OFFLINE_ENV}, gpu_uuid=spec.gpu, workdir=SUBMISSION_SRC,
                      wall_clock_s=check_limit + decision_wait_s + clock.limit * len(tasks) + 60)
        state = _Decision(report_dir / "check.json", check_limit, clock)
        log_path = spec.log_dir / "check.log"
        box: dict[str, Any] = {}

        def runner() -> None:
            try:
                box["result"] = run_stage(client, spec.profile, run, log_path, watch=state.watch)
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc
            finally:
                state.ended.set()
                state.wake.set()

        thread = threading.Thread(target=runner, name="check-encode", daemon=True)
        thread.start()
        try:
            state.wake.wait()
            checked = None
            went_on = False
            if state.final.is_set() and not state.ended.is_set():
                snapshot = state.snapshot(spec, run, log_path)
                report, problem = read_check_report(state.report)  # read once: later writes never count
                checked = ContractRun(Stage.CHECK, snapshot, report, problem)
                went_on = checked.verdict is RunVerdict.OK and bool(decide(checked))
                if went_on:
                    layout.stage_audio(encode, tasks)
                    clock.measure(encode, tasks)
                    clock.begin()
                    warm.signal(ctl, Go(encode_stage.encode_args(encode, f"{CTL}/jobs.json")))
                else:
                    state.cancelled_at = time.monotonic()
                    warm.signal(ctl, Cancel())
            thread.join()
        except BaseException:
            state.abort.set()
            thread.join()
            raise
        finally:
            layout.unstage()
        if "error" in box:
            raise box["error"]
        result: RunResult = box["result"]
        if checked is None:  # ended before the report was final: judged as the check stage alone judges it
            report, problem = (None, None) if result.outcome.is_infra_failure else read_check_report(state.report)
            return CheckedAndEncoded(ContractRun(Stage.CHECK, result, report, problem), False,
                                     {t.label: None for t in tasks})
    if not went_on:
        return CheckedAndEncoded(checked, False, {t.label: None for t in tasks})
    ran = dataclasses.replace(result, stage=Stage.ENCODE)
    if ran.outcome.is_infra_failure:
        return CheckedAndEncoded(checked, True, {t.label: None for t in tasks})
    return CheckedAndEncoded(checked, True, encode_stage.verdicts(encode, tasks, layout.dirs, ran))


class _Decision:
    """The container's watch, by phase: the check stage's wall clock until the report is final, the
    encode's clock after the go, a short grace after a cancel; and the report's size cap throughout."""

    def __init__(self, report: Path, check_limit: float, clock: encode_stage.Clock):
        self.report = report
        self.check_limit = check_limit
        self.clock = clock
        self.started = time.monotonic()
        self.final = threading.Event()  # the agent said its report is final
        self.ended = threading.Event()  # the container's run is over
        self.wake = threading.Event()  # either: the waiting thread goes on
        self.abort = threading.Event()
        self.cancelled_at: float | None = None
        self.container: Any = None
        self.final_at: float | None = None

    def watch(self, container: Any) -> tuple[Outcome, str] | None:
        self.container = container
        if self.abort.is_set():
            return Outcome.INFRA_ERROR, "stopped: the harness stopped before the check stage finished"
        if directory_size(self.report.parent) > 16 * REPORT_CAP:
            return Outcome.OUTPUT_LIMIT, f"killed: output in {self.report.parent.name} passed its cap"
        if not self.final.is_set():
            if Path(str(self.report) + REPORT_FINAL_SUFFIX).exists():
                self.final_at = time.monotonic()
                self.final.set()
                self.wake.set()
            elif time.monotonic() - self.started > self.check_limit:
                return Outcome.TIMEOUT, f"killed after the check stage's wall-clock limit of {self.check_limit:g} s"
            return None
        if self.cancelled_at is not None:
            if time.monotonic() - self.cancelled_at > CANCEL_GRACE_S:
                return Outcome.OK, f"killed {CANCEL_GRACE_S:g} s after the host's cancel: the process did not exit"
            return None
        return self.clock.watch(container)

    def snapshot(self, spec: CheckSpec, run: RunSpec, log_path: Path) -> RunResult:
        """The check phase's run as it stood when the report was final: it ran to its report."""
        peak = read_memory_peak(memory_peak_files(self.container.id)) if self.container is not None else None
        try:
            size = log_path.stat().st_size
        except OSError:
            size = 0
        return RunResult(stage=Stage.CHECK, image=spec.image, container_name=getattr(self.container, "name", ""),
                         outcome=Outcome.OK, exit_code=None, oom_killed=False,
                         duration_s=round((self.final_at or time.monotonic()) - self.started, 3), log_path=log_path,
                         log_bytes=size, log_bytes_dropped=0, gpu_uuid=spec.gpu, peak_memory_bytes=peak)

"""What the contract checker's modules share: check ids and their order, prerequisites, limits,
the line between submission code and checker code, and the bookkeeping every check uses.

Standard library only at module level (torch is imported by the functions that need it).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import resource
import sys
import time
import traceback
from typing import Any, Callable

from checker.report import CheckReport, CheckResult, CheckStatus, Phase, clip_text
from checker.jobs import DEFAULT_MAX_SECONDS
from checker.watchdog import Call, Watchdog

P, F, W, S = CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.WARNING, CheckStatus.SKIPPED

CHECK_IDS: tuple[str, ...] = (
    "import",
    "class_found",
    "class_name",
    "constructible",
    "nn_module",
    "attr_sampling_rate",
    "attr_output_dim",
    "attr_hop_size",
    "forward_basic",
    "output_type",
    "output_dtype",
    "output_rank",
    "output_batch",
    "output_dim_match",
    "forward_lengths",
    "long_input",
    "forward_timeout",
    "output_frames_positive",
    "frames_track_hop",
    "finite",
    "deterministic",
    "batch_independence",
    "padding_sensitivity",
    "cuda",
    "memory",
    "throughput",
    "t4_pitfalls",
)
FETCH_CHECK_IDS: tuple[str, ...] = ("import", "class_found", "class_name", "constructible", "nn_module",
                                     "attr_sampling_rate", "attr_output_dim", "attr_hop_size")

#: a check runs only when each of these passed (a warning counts as passed)
DEPENDS: dict[str, tuple[str, ...]] = {
    "import": (),
    "class_found": ("import",),
    "class_name": ("class_found",),
    "constructible": ("class_found",),
    "nn_module": ("constructible",),
    "attr_sampling_rate": ("constructible",),
    "attr_output_dim": ("constructible",),
    "attr_hop_size": ("constructible",),
    "forward_basic": ("nn_module", "attr_sampling_rate"),
    "output_type": ("forward_basic",),
    "output_dtype": ("output_type",),
    "output_rank": ("forward_basic",),
    "output_batch": ("output_rank",),
    "output_dim_match": ("output_rank", "attr_output_dim"),
    "forward_lengths": ("forward_basic",),
    "long_input": ("forward_lengths",),
    "forward_timeout": (),
    "output_frames_positive": ("output_rank", "forward_lengths"),
    "frames_track_hop": ("output_rank", "attr_hop_size", "forward_lengths"),
    "finite": ("forward_basic",),
    "deterministic": ("forward_basic",),
    "batch_independence": ("output_rank", "output_batch", "deterministic"),
    "padding_sensitivity": ("batch_independence",),
    "cuda": ("nn_module", "attr_sampling_rate"),
    "memory": (),
    "throughput": ("forward_basic",),
    "t4_pitfalls": (),
}

LENGTHS_S: tuple[float, ...] = (0.5, 1.0, 3.0, 10.0, 60.0)
LONG_INPUT_S = 600.0
COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
FRAME_TOLERANCE_ABS = 2
FRAME_TOLERANCE_REL = 0.05
#: two forwards of one input on one device; loose enough for cuDNN's non-deterministic kernels
DETERMINISM_RTOL, DETERMINISM_ATOL = 1e-4, 1e-5
#: batch of 1 vs batch of 2 may take different BLAS paths; relative to the output's scale
BATCH_RTOL, BATCH_ATOL_REL = 1e-3, 1e-3
THROUGHPUT_REFERENCE_HOURS = 100.0
SEED = 0
DIED_MESSAGE = (
    "the process ended while this check was running: killed at the memory limit, stopped at the "
    "time limit, or the encoder ended the process (os._exit, a crash in native code)"
)
TRACEBACK_LINES = 25
REPORT_NAME_CLASS_HINTS = 10


class SubmissionCodeError(Exception):
    """An exception raised by submission code; the submission's fault, never the checker's."""

    def __init__(self, where: str, exc: BaseException):
        self.where = where
        self.exc = exc
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.full_traceback = "".join(lines)
        self.tail = clip_text("".join(lines[-TRACEBACK_LINES:]))
        super().__init__(f"{where}: {type(exc).__name__}: {exc}")

    @property
    def summary(self) -> str:
        return clip_text(f"{type(self.exc).__name__}: {self.exc}", 500)

    def details(self) -> dict:
        return {"exception": type(self.exc).__name__, "traceback": self.tail}


class CheckerUsageError(Exception):
    """The host asked for something impossible; the report becomes `error`."""


def call_submission(where: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call into submission code; whatever it raises becomes a SubmissionCodeError.

    SystemExit is included: `sys.exit()` in an encoder is the encoder's failure, not a clean exit.
    """
    try:
        return fn(*args, **kwargs)
    except (Exception, SystemExit) as exc:
        raise SubmissionCodeError(where, exc) from exc


@dataclasses.dataclass(frozen=True)
class Options:
    submission: str
    encoder_file: str
    encoder_class: str
    report_path: str
    phase: Phase = Phase.CHECK
    max_seconds: float = DEFAULT_MAX_SECONDS
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise CheckerUsageError(f"--device must be auto, cpu or cuda, not {self.device!r}")
        if not self.max_seconds > 0:
            raise CheckerUsageError(f"--max-seconds must be positive, not {self.max_seconds!r}")


def parse_encoder_spec(text: str) -> tuple[str, str]:
    """'path/to/file.py:ClassName' -> ('path/to/file.py', 'ClassName').

    Raises:
        CheckerUsageError: not of that form (the host builds this string; a bad one is its bug).
    """
    file, sep, cls = text.rpartition(":")
    if not sep or not file.endswith(".py") or not cls.isidentifier():
        raise CheckerUsageError(f"--encoder must look like FILE.py:ClassName, got {text!r}")
    return file, cls


def cpu_budget() -> int:
    """CPUs this process may use: affinity, capped by the cgroup CPU quota (docker --cpus)."""
    count = len(os.sched_getaffinity(0))
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def memory_limit_bytes() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
            return None if text == "max" else int(text)
        except (OSError, ValueError):
            continue
    return None


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def setup() -> int:
    """Threads and seeds, once, before any submission code runs. Returns the thread count."""
    import torch

    threads = cpu_budget()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only settable before the first parallel op; harmless if it was
        pass
    seed_everything()
    return threads


def seed_everything() -> None:
    import torch

    random.seed(SEED)
    torch.manual_seed(SEED)
    try:
        import numpy

        numpy.random.seed(SEED)
    except ImportError:
        pass


def describe_value(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:200]


class CheckerBase:
    """State and bookkeeping shared by every check: results, prerequisites, progressive saves."""

    def __init__(self, options: Options):
        self.o = options
        self.report = CheckReport(
            encoder_file=options.encoder_file, encoder_class=options.encoder_class, phase=options.phase
        )
        self.t0 = time.monotonic()
        self.module: Any = None
        self.cls: Any = None
        self.encoder: Any = None
        self.device = "cpu"
        self.sr = 16000
        self.outputs: dict[str, Any] = {}  # label -> float64 CPU copy of an output, for `finite`
        self.lengths: list[dict] = []  # one row per length tried (forward_lengths + long_input)
        self.basic_input: Any = None
        self.watchdog = Watchdog(self.on_forward_timeout)

    # --- a forward call past its budget (runs in the watchdog's thread; the process then exits) ----

    def on_forward_timeout(self, call: Call) -> int:
        """Record the hang as the in-progress check's failure and `forward_timeout`'s, mark what
        never ran, and write the complete report. Returns the process's exit status (0: a report
        was written, as `checker.contract` promises)."""
        self.record_forward_timeout(call)
        self.save()
        print(f"aecc-checker: forward_timeout: {call.describe()}", file=sys.stderr, flush=True)
        return 0

    def record_forward_timeout(self, call: Call) -> None:
        check_id = self.report.in_progress or "forward_basic"
        fix = ("make forward return: look for an endless loop, a wait on a lock, a queue or the network (the "
               "evaluation is offline), or a long input processed in one piece that needs chunking")
        self.add(check_id, F, f"forward did not return: {call.describe()}", expected=f"within {call.budget_s:.0f} s",
                 found=f"still running after {time.monotonic() - call.started:.0f} s; stopped", fix=fix,
                 details=call.to_dict())
        self.add("forward_timeout", F, call.describe(), expected="every forward call returns within its budget",
                 found=f"{call.label} still running after {time.monotonic() - call.started:.0f} s", fix=fix,
                 details={**call.to_dict(), "budget": self.watchdog.budget.to_dict()})
        for other in CHECK_IDS:
            if other not in FETCH_CHECK_IDS and self.report.get(other) is None:
                self.add(other, S, "not run: the process was stopped at a forward call that did not return "
                         "(forward_timeout)", details={"blocked_by": ["forward_timeout"]})
        self.report.in_progress = None
        self.report.complete = True

    # --- bookkeeping --------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def save(self) -> None:
        self.report.resources["peak_rss_bytes"] = peak_rss_bytes()
        self.report.timings["total_s"] = round(self.elapsed(), 3)
        self.report.checks.sort(key=lambda c: CHECK_IDS.index(c.id) if c.id in CHECK_IDS else len(CHECK_IDS))
        self.report.write(self.o.report_path)

    def begin(self, check_id: str, **details: Any) -> None:
        """Mark `check_id` as running and persist, so a kill mid-check names the culprit.

        The copy on disk carries a `failed` placeholder for the check: if the process dies now
        (memory cap, wall clock, `os._exit` or a segfault in the encoder) the report already says
        which clause it died in. Every path through a check replaces the placeholder.
        """
        self.report.in_progress = check_id
        self.add(check_id, F, DIED_MESSAGE, details={"placeholder": True, **details})
        self.save()

    def add(self, check_id: str, status: CheckStatus, message: str, **kw: Any) -> CheckResult:
        return self.report.add(CheckResult(check_id, status, message, **kw))

    def passed(self, check_id: str) -> bool:
        result = self.report.get(check_id)
        return result is not None and result.status in (P, W)

    def blocked(self, check_id: str) -> bool:
        """Record `check_id` as skipped if a prerequisite did not pass; True when it was."""
        missing = [d for d in DEPENDS.get(check_id, ()) if not self.passed(d)]
        if missing:
            self.add(check_id, S, f"not run: {', '.join(missing)} did not pass", details={"blocked_by": missing})
        return bool(missing)

    def fail_submission(self, check_id: str, err: SubmissionCodeError, message: str, **kw: Any) -> None:
        """Record the submission's exception: its type and message in the report (the message says
        what raised, `found` says `Type: message`), its whole traceback in the stage log."""
        details = dict(kw.pop("details", {}))
        details.update(err.details())
        print(f"aecc-checker: {check_id}: {message}: {err.summary}\n{err.full_traceback}", file=sys.stderr, flush=True)
        self.add(check_id, F, f"{message}: {err.summary}", found=kw.pop("found", err.summary), details=details, **kw)

    def _block_rest(self, ids: tuple[str, ...]) -> None:
        for check_id in ids:
            if self.report.get(check_id) is None:
                self.blocked(check_id)

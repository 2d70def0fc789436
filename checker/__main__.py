"""`python -m checker PATH[:Class]`: the contract checks in this Python, without Docker or a sandbox.

    python -m checker PATH[:Class] [--encoder FILE.py:Class] [--json-out F] [--junit-out F]
                      [--max-seconds S] [--device auto|cpu|cuda]

Why: participants work on Google Colab, where there is no Docker, and the evaluation runs on a
Colab T4. On a T4 runtime this run measures the real thing: the move to CUDA, the GPU memory the
encoder peaks at (`torch.cuda.max_memory_allocated`), its throughput and the projected evaluation
time. It runs the same checks as `aecc validate` (`checker.contract.Checker`, the fetch phase —
import, class, construction, attributes, with network — then the check phase, in one process)
and writes the same report (harness/schemas/validation-report.schema.json) with the same verdict
(`checker.verdict`) and exit codes: 0 when no rule or scoring check failed (`--strict`: no advisory
either), 1 otherwise, 2 usage or infrastructure (torch missing, `--device cuda` without a GPU, the
checker's own failure). A forward call that never returns is stopped by the watchdog
(`checker.watchdog`), which finishes the report and exits.

What it does NOT give, and says so in its output and its report (`isolation`, and a `sandbox`
check with status warning): a sandbox. The encoder runs in this Python process with the caller's
rights, files and network; no memory, GPU-memory or time limit is enforced from outside, and the
network is never cut, so an encoder that quietly downloads during `forward` passes here and fails
in the evaluation. Memory figures are measured in-process (`resources.measured_by`).

PATH is a submission folder (the encoder found exactly as intake finds it: `checker.discover`,
the manifest `aecc.json`, else the X-ARES rule with the template rule), `FOLDER:Class` (that class,
wherever it is defined at the top level), `FILE.py` (its one name ending in `Encoder`) or
`FILE.py:Class` (that class; the checker's `class_found` reports a wrong name).
`--encoder FILE.py:Class` names a file relative to a folder PATH, as `aecc validate --encoder` does.

Imports: the standard library and this package at module level, torch inside `run_checks`, never
`harness` (whose modules pull docker, jsonschema and rich, which a Colab runtime need not have).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from checker import discover
from checker.junit import junit_xml
from checker.jobs import DEFAULT_MAX_SECONDS, level_of
from checker.report import CheckReport, CheckResult, CheckStatus, Phase, clip_text
from checker.verdict import Outcome, Summary, summarise

PROFILE = "in-place"
#: `schema_version` of validation reports: harness.schemas.SCHEMA_VERSION (tests keep them equal)
REPORT_SCHEMA_VERSION = 1
#: the t4 profile's budgets (sandbox_profiles/t4.json `memory` and `gpu.memory`; tests keep them equal)
T4_HOST_MEMORY_BYTES = 12 * 2**30
T4_GPU_MEMORY_BYTES = 15 * 2**30
T4_CAPABILITY = "7.5"
GPU_LIMIT_ENV = "AECC_GPU_MEMORY_LIMIT_BYTES"  # read by the checker's `memory` check
EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
USAGE_PREFIX, INTERRUPTED = "usage: ", "interrupted"
#: this module's own lines for a run that could not judge the submission (never checker check ids)
ERROR_CHECK_IDS = ("usage", "infrastructure", "check")

NO_SANDBOX = (
    "in-place run: NO SANDBOX and NO NETWORK CUT. The encoder runs in this Python process with your "
    "rights, your files and your network; no memory, GPU-memory or time limit is enforced from "
    "outside. `aecc validate` runs the same checks in the T4-shaped sandbox with the network off."
)
ISOLATION = {"sandbox": False, "network_cut": False, "limits_enforced": False, "note": NO_SANDBOX}

P, F, W = CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.WARNING


class UsageProblem(Exception):
    """The command line asks for something impossible, or this Python cannot run the checks: exit 2."""

    def __init__(self, message: str, check_id: str = "usage", fix: str | None = None) -> None:
        super().__init__(message)
        self.check_id = check_id
        self.fix = fix


@dataclasses.dataclass(frozen=True)
class Target:
    """The encoder to check: its folder (becomes the import root and working directory), its file
    relative to it, its class, and how it was chosen."""

    root: str
    encoder_file: str
    encoder_class: str
    source: discover.EncoderSource
    set_aside: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.encoder_file}:{self.encoder_class}"


# ------------------------------------------------------------------ what to check


def split_path(text: str) -> tuple[str, str | None]:
    """`PATH` or `PATH:Class` -> (PATH, Class or None); PATH must exist.

    Raises:
        UsageProblem: neither `text` nor its part before the last ':' exists.
    """
    if os.path.exists(text):
        return text, None
    head, sep, tail = text.rpartition(":")
    if sep and head and tail.isidentifier() and os.path.exists(head):
        return head, tail
    raise UsageProblem(f"{text} does not exist", fix="give a submission folder, a FILE.py, or either followed by :ClassName")


def resolve_target(path: str, cls: str | None, encoder: str | None) -> Target:
    """Decide which class to check (`path`, `cls` as `split_path` returns them), without importing
    anything of the submission.

    Raises:
        UsageProblem: a malformed or contradictory choice (exit 2).
        discover.DiscoveryError: the submission does not name one encoder (exit 1).
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        if encoder is not None and cls is not None:
            raise UsageProblem("give the class either as PATH:Class or with --encoder, not both")
        try:
            found = discover.discover(Path(path), encoder, class_name=cls)
        except discover.DiscoveryError as err:
            if err.reason is discover.Reason.INVALID_SPEC:
                raise UsageProblem(err.detail, fix=err.fix) from None
            raise
        return Target(path, found.file, found.class_name, found.source, found.set_aside)
    if not path.endswith(".py") or not os.path.isfile(path):
        raise UsageProblem(f"{path} is neither a folder nor a .py file")
    if encoder is not None:
        raise UsageProblem("--encoder names a file inside a folder PATH; PATH is already a file")
    root, name = os.path.split(path)
    if cls is not None:  # the checker's import and class_found say what is wrong with an explicit choice
        return Target(root, name, cls, discover.EncoderSource.OVERRIDE)
    found = discover.by_rule(Path(root), [name])
    return Target(root, found.file, found.class_name, found.source, found.set_aside)


# ------------------------------------------------------------------ running the checks


def _print_to(stream: Any) -> Callable[[str], None]:
    def emit(line: str) -> None:
        print(line, file=stream, flush=True)

    return emit


def _checker_class() -> type:
    """`checker.contract.Checker`, telling the terminal which check runs: a run killed for memory
    (Colab restarts the runtime) leaves the name of the check it died in on the screen."""
    from checker.common import FETCH_CHECK_IDS
    from checker.contract import Checker

    class InPlaceChecker(Checker):
        progress: Callable[[str], None] = staticmethod(_print_to(sys.stderr))
        _phase_shown: str | None = None
        #: finishes the whole in-place run (report files, terminal) when a forward call hangs
        on_stopped: Callable[[CheckReport], int] | None = None

        def on_forward_timeout(self, call: Any) -> int:
            self.record_forward_timeout(call)
            self.progress(f"aecc: forward_timeout: {call.describe()}; stopping")
            if self.on_stopped is None:
                return EXIT_FAILED
            return self.on_stopped(self.report)

        def begin(self, check_id: str, **details: Any) -> None:
            phase = "fetch" if check_id in FETCH_CHECK_IDS else "check"
            if phase != self._phase_shown:
                self._phase_shown = phase
                self.progress("aecc: fetch phase (import, construct; network allowed)" if phase == "fetch"
                              else "aecc: check phase (forwards on the inputs X-ARES sends)")
            seconds = details.get("running_seconds")
            self.progress(f"aecc:   {check_id}" + (f" ({seconds:g} s input)" if seconds else ""))
            super().begin(check_id, **details)

    return InPlaceChecker


@contextlib.contextmanager
def _in_place_environment() -> Iterator[None]:
    """The checker changes the working directory and sys.path as X-ARES does; give both back, and
    the T4's GPU budget to the `memory` check for the run only."""
    cwd, path = os.getcwd(), list(sys.path)
    had_limit = GPU_LIMIT_ENV in os.environ
    os.environ.setdefault(GPU_LIMIT_ENV, str(T4_GPU_MEMORY_BYTES))
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        if not had_limit:
            os.environ.pop(GPU_LIMIT_ENV, None)


def run_checks(target: Target, max_seconds: float, device: str,
               on_stopped: Callable[[CheckReport], int] | None = None) -> CheckReport:
    """Every check of both phases on `target`, in this process; the report says what happened.

    `on_stopped(report)` finishes the run when a forward call outlives its budget (the watchdog's
    thread calls it with the main thread still stuck in the encoder; the process then exits with
    what it returns).

    Raises:
        UsageProblem: torch is not importable here (exit 2).
    """
    try:
        import torch  # noqa: F401  (the checks need it; say so before anything else runs)
    except Exception as exc:  # ImportError, or a torch build whose native libraries do not load
        raise UsageProblem(f"torch cannot be imported in this Python ({exc})", check_id="infrastructure",
                           fix="pip install torch (Colab has it already)") from None
    from checker.common import CheckerUsageError, Options, SubmissionCodeError, setup

    report = CheckReport(encoder_file=target.encoder_file, encoder_class=target.encoder_class)
    with tempfile.TemporaryDirectory(prefix="aecc-in-place-") as tmp, _in_place_environment():
        try:
            options = Options(submission=target.root, encoder_file=target.encoder_file,
                              encoder_class=target.encoder_class, report_path=os.path.join(tmp, "report.json"),
                              phase=Phase.CHECK, max_seconds=max_seconds, device=device)
            setup()
            checker = _checker_class()(options)
            checker.on_stopped = on_stopped
            report = checker.report
            checker.run()
        except SubmissionCodeError as err:  # a submission call escaped a check: still the submission's fault
            report.add(CheckResult(report.in_progress or "import", F, f"submission code raised: {err.summary}",
                                   details=err.details()))
        except CheckerUsageError as exc:
            report.checks = [c for c in report.checks if not c.details.get("placeholder")]
            report.error = f"{USAGE_PREFIX}{exc}"
        except BaseException as exc:  # the checker's own failure or Ctrl-C: never the submission's
            report.checks = [c for c in report.checks if not c.details.get("placeholder")]
            report.error = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else clip_text(
                "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    report.in_progress = None
    report.complete = True
    return report


# ------------------------------------------------------------------ the report


def _check(check_id: str, status: CheckStatus, message: str, **kw: Any) -> dict:
    return {k: v for k, v in {"id": check_id, "status": status.value, "message": message, **kw,
                              "level": _level(check_id)}.items() if v is not None}


def _from_checker(data: dict) -> dict:
    """One check of the checker's report as a validation report check (as `Check.from_agent`)."""
    out = {k: data.get(k) for k in ("id", "status", "message", "expected", "found", "fix")}
    if data.get("details"):
        out["details"] = data["details"]
    out["level"] = _level(data["id"])
    return {k: v for k, v in out.items() if v is not None}


def _level(check_id: str) -> str | None:
    level = level_of(check_id)
    return None if level is None else level.value


def _error_check(error: str) -> dict:
    """The line that says why a run is `error`: a usage problem, Ctrl-C, or the checker's own bug."""
    if error.startswith(USAGE_PREFIX):
        return _check("usage", F, error.removeprefix(USAGE_PREFIX))
    if error == INTERRUPTED:
        return _check("check", F, "interrupted (Ctrl-C) before the checks finished")
    return _check("check", F, "the contract checker itself failed (not the submission's fault)", found=error)


def _discover_check(target: Target) -> dict:
    how = {discover.EncoderSource.OVERRIDE: "named on the command line",
           discover.EncoderSource.MANIFEST: f"named by {discover.MANIFEST_NAME}",
           discover.EncoderSource.XARES_RULE: "found by the X-ARES rule"}[target.source]
    message = f"encoder {target.spec} ({how})"
    if target.set_aside:
        message += "; set aside: " + "; ".join(target.set_aside)
    return _check("discover", P, message, details={"root": target.root, "set_aside": list(target.set_aside)})


def _sandbox_check() -> dict:
    return _check("sandbox", W, "no sandbox: the encoder runs in this Python process with your rights, files and "
                  "network, and no memory, GPU-memory or time limit is enforced from outside",
                  expected="the T4-shaped sandbox with the network off (aecc validate, and the organizers' run)",
                  found="this Python process, network on, no outside limits",
                  fix="where Docker is available, run `aecc validate` for the sandboxed verdict; make sure the "
                      "encoder downloads nothing after it is constructed (the evaluation is offline)")


def _host_memory_limit() -> int | None:
    """The memory this process may use: the cgroup limit, else the machine's RAM (cgroup v1 writes
    "no limit" as a number near 2**63, which is no limit either)."""
    from checker.common import memory_limit_bytes

    physical = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = memory_limit_bytes()
    if limit is None or (physical is not None and limit > physical):
        return physical
    return limit


def t4_summary(data: dict) -> dict:
    """What the run says about the Colab T4: the device it measured on and the budgets it checked."""
    env, thr, res = data.get("environment") or {}, data.get("throughput") or {}, data.get("resources") or {}
    gpus = env.get("gpus") or []
    on_cuda = thr.get("device") == "cuda" or res.get("peak_cuda_bytes") is not None
    gpu = gpus[0] if gpus and on_cuda else None
    peak_gpu, peak_rss = res.get("peak_cuda_bytes"), res.get("peak_rss_bytes")
    return {
        "device": gpu["name"] if gpu else "cpu",
        "capability": gpu["capability"] if gpu else None,
        "is_t4_class": bool(gpu and gpu["capability"] == T4_CAPABILITY),
        "projected_seconds": thr.get("projected_seconds"),
        "reference_hours": thr.get("reference_hours"),
        "audio_seconds_per_second": thr.get("audio_seconds_per_second"),
        "gpu_budget_bytes": T4_GPU_MEMORY_BYTES,
        "host_budget_bytes": T4_HOST_MEMORY_BYTES,
        "gpu_peak_fraction": round(peak_gpu / T4_GPU_MEMORY_BYTES, 4) if isinstance(peak_gpu, int) else None,
        "host_peak_fraction": round(peak_rss / T4_HOST_MEMORY_BYTES, 4) if isinstance(peak_rss, int) else None,
    }


def build_report(source: str, target: Target | None, checks: list[dict], checker_report: CheckReport | None,
                 timings: dict[str, float], verdict: Summary) -> dict:
    """The validation report (harness/schemas/validation-report.schema.json) of an in-place run."""
    submission: dict[str, Any] = {"source": source}
    if target is not None:
        submission.update(encoder_file=target.encoder_file, encoder_class=target.encoder_class,
                          encoder_source=target.source.value)
    resources: dict[str, Any] = {"measured_by": "in-process"}
    checker: dict[str, Any] | None = None
    if checker_report is not None:
        data = checker_report.to_dict()
        res = data["resources"]
        resources.update(peak_host_memory_bytes=res.get("peak_rss_bytes"),
                         peak_gpu_memory_bytes=res.get("peak_cuda_bytes"))
        host_limit = _host_memory_limit()
        if host_limit is not None:
            resources["host_memory_limit_bytes"] = host_limit
        if res.get("peak_cuda_bytes") is not None:
            import torch

            resources["peak_gpu_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
            resources["gpu_memory_limit_bytes"] = int(torch.cuda.get_device_properties(0).total_memory)
        checker = {k: data.get(k) for k in ("environment", "throughput", "timings", "resources", "attributes")}
        checker["phases"] = "fetch then check, in one process, network on throughout"
        checker["t4"] = t4_summary(data)
        if data.get("error"):
            checker["error"] = data["error"]
    status = "error" if verdict.outcome is Outcome.ERROR else ("passed" if verdict.ok else "failed")
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "status": status,
        "submission": submission,
        "profile": PROFILE,
        "checks": checks,
        "resources": resources,
        "timings": timings,
        "logs": {},
        "isolation": dict(ISOLATION),
        "verdict": verdict.to_dict(),
    }
    if checker is not None:
        report["checker"] = checker
    return report


# ------------------------------------------------------------------ the terminal


def render(report: dict, out: Callable[[str], None]) -> None:
    """Every check (expected, found and fix under failures and warnings), the device figures and
    the verdict, in plain text."""
    sub = report["submission"]
    out(f"aecc in-place check: {sub.get('encoder_file', '?')}:{sub.get('encoder_class', '?')} in {sub['source']}")
    counts: dict[str, int] = {}
    for c in report["checks"]:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
        out(f"  {c['status'].upper():8} {c.get('level') or '-':8} {c['id']:24} {c['message']}")
    t4 = (report.get("checker") or {}).get("t4")
    if t4:
        if t4["projected_seconds"] is not None:
            out(f"throughput on {t4['device']}: {t4['audio_seconds_per_second']} s of audio per second; "
                f"{t4['reference_hours']:g} h of audio would take about {t4['projected_seconds'] / 3600:.2f} h here")
        if t4["is_t4_class"]:
            out("this GPU is T4-class (sm_75): the figures above hold for the Colab T4 evaluation")
        elif t4["capability"]:
            out(f"this GPU is {t4['device']} (sm_{t4['capability'].replace('.', '')}), not a T4: the T4 will differ")
        else:
            out("measured on the CPU: not a T4 projection; run this on a Colab T4 runtime for the real figures")
        res = report["resources"]
        line = f"peak memory (in-process): host {(res.get('peak_host_memory_bytes') or 0) / 2**30:.2f} GiB " \
               f"(Colab T4 RAM {T4_HOST_MEMORY_BYTES / 2**30:g} GiB)"
        if res.get("peak_gpu_memory_bytes") is not None:
            line += f", GPU {res['peak_gpu_memory_bytes'] / 2**30:.2f} GiB allocated " \
                    f"(T4 about {T4_GPU_MEMORY_BYTES / 2**30:g} GiB usable)"
        out(line)
    out("NOTE: " + NO_SANDBOX)
    for line in Summary.from_dict(report["verdict"]).lines():
        out(line)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    out(f"exit {report['verdict']['exit_code']} ({summary}; {report['timings'].get('total_s', 0):.1f} s)")


# ------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m checker",
        description="Check an audio encoder against the X-ARES contract in this Python (no Docker, NO sandbox) "
                    "and write the same report as `aecc validate`.",
        epilog="examples:\n  python -m checker my-fork/\n  python -m checker my-fork/my_encoder.py:MyEncoder "
               "--json-out report.json --junit-out junit.xml\n\nexit status: 0 no rule or scoring check failed "
               "(advisories allowed; --strict: none), 1 otherwise, 2 usage or infrastructure",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", metavar="PATH[:Class]", help="a submission folder or FILE.py, optionally :ClassName")
    parser.add_argument("--encoder", help="FILE.py:ClassName relative to a folder PATH (as aecc validate --encoder)")
    parser.add_argument("--json-out", help="write the JSON report (schema: validation-report.schema.json)")
    parser.add_argument("--junit-out", help="write a JUnit XML report (one test case per check)")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="time budget of the checks; lengths that would exceed it are skipped "
                             f"(default {DEFAULT_MAX_SECONDS:g})")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CUDA when a GPU is visible (default)")
    parser.add_argument("--strict", action="store_true",
                        help="advisories fail too (exit 1); by default only rule and scoring failures do")
    return parser


def _write(path: str | None, data: bytes) -> None:
    if path:
        with open(path, "wb") as fh:
            fh.write(data)


@dataclasses.dataclass
class Run:
    """What one invocation found, in the order it found it; `build_report` turns it into the report."""

    source: str
    checks: list[dict] = dataclasses.field(default_factory=list)
    target: Target | None = None
    checker_report: CheckReport | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    strict: bool = False
    started: float = dataclasses.field(default_factory=time.monotonic)

    def verdict(self) -> Summary:
        error = next((c["message"] for c in self.checks if c["id"] in ERROR_CHECK_IDS and c["status"] == "failed"), None)
        if error is None and self.checker_report is not None and self.checker_report.error is not None:
            error = "the contract checker itself failed"
        return summarise(self.checks, error=error, strict=self.strict)


def check_in_place(args: argparse.Namespace, run: Run) -> None:
    """Discovery, then both phases of the checks; everything lands in `run`.

    Raises:
        UsageProblem: exit 2, nothing of the submission has run (or torch is missing).
    """
    started = time.monotonic()
    if not args.max_seconds > 0:
        raise UsageProblem(f"--max-seconds must be positive, not {args.max_seconds:g}")
    path, cls = split_path(args.path)
    run.source = os.path.abspath(path)
    try:
        run.target = resolve_target(path, cls, args.encoder)
    except discover.DiscoveryError as err:
        run.checks.append(_check("discover", F, str(err), expected=err.expected, found=err.detail, fix=err.advice,
                                 details={"candidates": [c.spec for c in err.candidates]} if err.candidates else None))
        return
    finally:
        run.timings["discover_s"] = round(time.monotonic() - started, 3)
    run.checks += [_discover_check(run.target), _sandbox_check()]
    started = time.monotonic()

    def stopped(report: CheckReport) -> int:
        """A forward call hung: finish the run from the watchdog's thread."""
        collect(report)
        run.timings["total_s"] = round(time.monotonic() - run.started, 3)
        return finish(run, args)

    def collect(report: CheckReport) -> None:
        run.checker_report = report
        run.timings["check_s"] = round(time.monotonic() - started, 3)
        run.checks += [_from_checker(c) for c in report.to_dict()["checks"]]
        if report.error is not None:
            run.checks.append(_error_check(report.error))

    collect(run_checks(run.target, args.max_seconds, args.device, on_stopped=stopped))


def main(argv: list[str] | None = None) -> int:
    """Run once per process (the encoder's module stays imported). Returns the exit status."""
    args = build_parser().parse_args(argv)
    # before the checker's chdir
    args.json_out = os.path.abspath(args.json_out) if args.json_out else None
    args.junit_out = os.path.abspath(args.junit_out) if args.junit_out else None
    run = Run(source=args.path, strict=args.strict)
    print("aecc: " + NO_SANDBOX, file=sys.stderr, flush=True)
    try:
        check_in_place(args, run)
    except UsageProblem as exc:
        run.checks.append(_check(exc.check_id, F, str(exc), fix=exc.fix))
    except Exception as exc:  # a bug of this module, or a file it could not read: never the submission's fault
        run.checks.append(_check("check", F, "the in-place checker itself failed (not the submission's fault)",
                                 found=clip_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))))
    run.timings["total_s"] = round(time.monotonic() - run.started, 3)
    return finish(run, args)


def finish(run: Run, args: argparse.Namespace) -> int:
    """Write the report files, print the verdict; returns the exit status (the verdict's)."""
    verdict = run.verdict()
    report = build_report(run.source, run.target, run.checks, run.checker_report, run.timings, verdict)
    try:
        _write(args.json_out, (json.dumps(report, indent=2, allow_nan=False) + "\n").encode("utf-8"))
        _write(args.junit_out, junit_xml(report, suite_name="aecc-in-place"))
    except OSError as exc:
        print(f"aecc: cannot write the report: {exc}", file=sys.stderr)
        return EXIT_ERROR
    render(report, _print_to(sys.stdout))
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())

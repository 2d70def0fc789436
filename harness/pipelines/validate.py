"""`aecc validate`: will this ZIP be accepted, and will it run on a T4?

    intake (host) -> build (sandbox, network) -> fetch (sandbox, network) -> check (sandbox, no network)

Every step ends in the report: the harness's own steps (`intake`, `build`, `fetch`, `sandbox`)
and then every check of the in-container contract checker, each with a stable id and a level
(`checker.jobs.CHECK_LEVELS`). The verdict (`checker.verdict`) says "will be excluded", "will be
scored, but: ..." or "passes (N advisories)"; the status is `passed` (exit 0: no rule or scoring
check failed; with `strict`, no advisory either), `failed` (exit 1) or `error` (the machine's or
the harness's: exit 2): an engine or harness failure is never reported as the participant's.

The checker's report is written by a process that also runs the participant's code, so the host
reads it as untrusted data (capped, no links, schema-checked); the numbers the host can measure
itself (peak memory from the cgroup, the sandbox's outcome) come from the host.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

from checker.jobs import DEFAULT_MAX_SECONDS
from checker.report import CheckStatus
from harness import paths
from harness.errors import BuildFailed, SubmissionError, UsageError
from harness.layers.options import BuildOptions, require_upload_times
from harness.results import Check, ValidationReport, Verdict
from harness.sandbox.gpu import pin_gpu
from harness.sandbox.profiles import load_profile
from harness.stages.build import build_submission
from harness.stages.check import CheckSpec, check
from harness.stages.contract_run import RunVerdict
from harness.stages.fetch import FetchSpec, fetch
from harness.stages.intake import intake

P, F = CheckStatus.PASSED, CheckStatus.FAILED


@dataclasses.dataclass(frozen=True)
class ValidateSpec:
    source: Path
    encoder: str | None = None
    profile: str = "cpu"
    gpu: str | None = None
    max_seconds: float = DEFAULT_MAX_SECONDS
    strict: bool = False  # advisories fail the run too

    def __post_init__(self) -> None:
        if not self.max_seconds > 0:
            raise UsageError("--max-seconds must be positive", expected="> 0", found=str(self.max_seconds))


def validate(client: Any, spec: ValidateSpec, build_options: BuildOptions | None = None, *,
             progress: Callable[[str], None] = print) -> ValidationReport:
    """Run intake, build, fetch and check; return the report (never raises for the submission's faults).

    Raises:
        InfraError: the engine or a trusted layer failed (the CLI still writes an `error` report).
    """
    build_options = dataclasses.replace(build_options or BuildOptions.from_environment(),
                                        submission_profile=spec.profile)
    if build_options.resolve_before:
        require_upload_times(build_options)
    started = time.monotonic()
    timings: dict[str, float] = {}
    checks: list[Check] = []
    submission_info: dict[str, Any] = {"source": str(spec.source)}
    logs: dict[str, Any] = {}
    resources: dict[str, Any] = {}

    def finish(verdict: Verdict, checker: dict | None = None) -> ValidationReport:
        """`verdict` only says ERROR or not: otherwise the report's status follows its checks' levels."""
        timings["total_s"] = round(time.monotonic() - started, 2)
        return ValidationReport(verdict, submission_info, spec.profile, tuple(checks), resources, timings, logs,
                                checker, strict=spec.strict)

    def timed(name: str, t0: float) -> None:
        timings[f"{name}_s"] = round(time.monotonic() - t0, 2)

    profile = load_profile(spec.profile)
    gpu = pin_gpu(profile, spec.gpu)

    t0 = time.monotonic()
    progress("intake: checking the archive")
    try:
        submission = intake(Path(spec.source), paths.subdir("store"), encoder=spec.encoder)
    except SubmissionError as exc:
        checks.append(Check.from_error("intake", exc))
        timed("intake", t0)
        return finish(Verdict.FAILED)
    timed("intake", t0)
    submission_info.update(
        sha256=submission.sha256, encoder_file=submission.encoder.file, encoder_class=submission.encoder.class_name,
        encoder_source=submission.encoder.source.value, files=submission.file_count, bytes=submission.total_bytes)
    checks.append(Check("intake", P, f"{submission.file_count} files, encoder {submission.encoder.spec} "
                                     f"({submission.encoder.source.value})"))

    t0 = time.monotonic()
    progress(f"build: image for submission {submission.sha256[:12]} "
             "(made once per ZIP: installs its requirements, then cached)")
    try:
        built = build_submission(client, submission, build_options, log=progress)
    except BuildFailed as exc:
        checks.append(Check.from_error("build", exc))
        logs["build"] = str(exc.log_path) if exc.log_path else None
        timed("build", t0)
        return finish(Verdict.FAILED)
    except SubmissionError as exc:  # a torch range or companion the harness cannot build
        checks.append(Check.from_error("build", exc))
        timed("build", t0)
        return finish(Verdict.FAILED)
    timed("build", t0)
    submission_info.update(image=built.image, torch_version=built.torch_version, torch_flavour=built.torch_flavour)
    if built.lock_digest:
        submission_info["lock"] = {"sha256": built.lock_digest, "path": str(built.lock_path),
                                   "source": built.lock.lock_source.value}
    checks.append(Check("build", P, f"torch {built.torch_version} ({built.torch_flavour}); image {built.image}"
                        + (" (cached)" if built.cached else "")
                        + (f"; lock {built.lock_digest[:12]} ({built.lock.lock_source.value})" if built.lock_digest else "")))

    log_dir = paths.logs() / f"validate-{submission.sha256[:12]}-{int(time.time())}"
    log_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    progress(f"fetch: running the contract checker in the sandbox ({profile.name} profile, network on)")
    fetched = fetch(client, FetchSpec(submission, built.image, profile, log_dir, build_options.ca_bundle,
                                      spec.max_seconds))
    timed("fetch", t0)
    logs["fetch"] = str(fetched.run.log_path)
    checks.extend(fetched.lines(profile))
    if fetched.verdict is not RunVerdict.OK:
        return finish(Verdict.ERROR if fetched.verdict is RunVerdict.INFRA_FAILURE else Verdict.FAILED)

    t0 = time.monotonic()
    progress(f"check: running the contract checker in the sandbox ({profile.name} profile, network off)")
    checked = check(client, CheckSpec(submission, built.image, profile, log_dir, gpu, spec.max_seconds))
    timed("check", t0)
    run = checked.run
    logs["check"] = str(run.log_path)
    checks.extend(checked.lines(profile))
    if checked.verdict is RunVerdict.INFRA_FAILURE:
        return finish(Verdict.ERROR)
    resources.update(peak_host_memory_bytes=run.peak_memory_bytes, host_memory_limit_bytes=profile.memory_bytes,
                     peak_gpu_memory_bytes=run.peak_gpu_bytes,
                     gpu_memory_limit_bytes=profile.gpu.memory_bytes if profile.gpu else None)
    if checked.verdict is RunVerdict.SUBMISSION_FAILURE:
        # Every check the progressive report holds counts: those that passed before the limit, too.
        return finish(Verdict.FAILED)
    checker = {k: checked.report.get(k) for k in ("environment", "throughput", "timings", "resources")}
    return finish(Verdict.PASSED, checker)

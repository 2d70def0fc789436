"""`aecc validate`: will this ZIP be accepted, and will it run on a T4?

    intake (host) -> build (sandbox, network) -> fetch (sandbox, network) -> check (sandbox, no network)

Every step ends in the report: the harness's own steps (`intake`, `build`, `fetch`, `sandbox`)
and then every check of the in-container contract checker, each with a stable id. The verdict is
`passed`, `failed` (the participant's to fix: exit 1) or `error` (the machine's or the harness's:
exit 2) — an engine or harness failure is never reported as the participant's.

The checker's report is written by a process that also runs the participant's code, so the host
reads it as untrusted data (capped, no links, schema-checked); the numbers the host can measure
itself (peak memory from the cgroup, the sandbox's outcome) come from the host.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import jsonschema

from harness import build as build_stage
from harness import images, paths
from harness.errors import HarnessError, SubmissionError
from harness.intake import Submission, intake
from harness.profiles import SandboxProfile, Stage, load_profile
from harness.runner import Mount, Outcome, RunResult, RunSpec, discard_over_cap, run_stage, size_cap
from harness.safeio import UnsafeOutput, read_json

SCHEMAS = Path(__file__).resolve().parent / "schemas"
REPORT_CAP = 4 * 1024**2
OUT_CAP = 16 * REPORT_CAP  # the agent writes one report there; anything more is a runaway writer
AGENT_TARGET = "/opt/aecc/checker"
SUBMISSION_SRC = "/opt/submission/src"


class Verdict(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        return {Verdict.PASSED: 0, Verdict.FAILED: 1, Verdict.ERROR: 2}[self]


@dataclasses.dataclass(frozen=True)
class ValidateSpec:
    source: Path
    encoder: str | None = None
    profile: str = "cpu"
    gpu: str | None = None
    max_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.max_seconds <= 0:
            raise ValueError("max_seconds must be positive")


def _check(id_: str, status: str, message: str, **extra: Any) -> dict:
    return {"id": id_, "status": status, "message": message, **{k: v for k, v in extra.items() if v is not None}}


def _error_check(id_: str, exc: HarnessError) -> dict:
    return _check(id_, "failed", exc.summary, expected=exc.expected, found=exc.found, fix=exc.fix,
                  log=str(exc.log_path) if exc.log_path else None)


def _agent_mount() -> Mount:
    return Mount(images.AGENT_DIR, AGENT_TARGET)


def _sandbox_failure(step: str, result: RunResult, profile: SandboxProfile) -> dict:
    """A sandbox run that ended badly, as a failed check naming the limit that was hit."""
    fixes = {
        Outcome.OOM: f"keep host memory under {profile.memory_bytes / 2**30:g} GiB (Colab T4: 12 GB RAM)",
        Outcome.GPU_OOM: "keep GPU memory under the T4's 15 GiB",
        Outcome.TIMEOUT: f"make the {step} stage finish within {profile.stage(Stage(step)).wall_clock_s:g} s",
        Outcome.FAILED: "read the log; run the same command locally",
    }
    return _check(step, "failed", f"the {step} stage ended with {result.outcome.value}: {result.detail}",
                  fix=fixes.get(result.outcome), log=str(result.log_path), found=result.log_tail(600).strip() or None)


def run_contract_agent(client: Any, profile: SandboxProfile, image: str, submission: Submission, stage: Stage,
               out: Path, cache: Path, spec: ValidateSpec, log_dir: Path, gpu: str | None,
               build_options: images.BuildOptions) -> tuple[RunResult, dict | None, str | None]:
    phase = "fetch" if stage is Stage.FETCH else "check"
    # -P: the working directory is the submission's, and `-m` would put it first on sys.path, letting
    # a submission's own `checker.py` stand in for the agent.
    command = ("python", "-P", "-m", "checker.contract", "--submission", SUBMISSION_SRC, "--encoder",
               submission.encoder.spec, "--report", f"/out/{phase}.json", "--phase", phase,
               "--max-seconds", f"{spec.max_seconds:g}")
    env = {"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch", "XDG_CACHE_HOME": "/cache/xdg"}
    mounts = [_agent_mount(), Mount(out, "/out", read_only=False)]
    if stage is Stage.FETCH:
        mounts.append(Mount(cache, "/cache", read_only=False))
        if build_options.ca_bundle is not None:
            # Downloads of weights go through the same TLS path as builds; the bundle is public data.
            mounts.append(Mount(Path(build_options.ca_bundle).resolve(), "/run/aecc-ca.pem"))
            env.update({"SSL_CERT_FILE": "/run/aecc-ca.pem", "REQUESTS_CA_BUNDLE": "/run/aecc-ca.pem"})
    else:
        mounts.append(Mount(cache, "/cache"))
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    run = RunSpec(stage=stage, image=image, command=command, mounts=tuple(mounts), env=env,
                  gpu_uuid=gpu if stage is not Stage.FETCH else None, workdir=SUBMISSION_SRC)
    # Writable host folders are capped: the report folder tightly, the download cache by the profile.
    watch = size_cap(cache, profile.disk_cap_bytes, "downloads in the cache") if stage is Stage.FETCH else None
    result = run_stage(client, profile, run, log_dir / f"{phase}.log", output_cap=(out, OUT_CAP), watch=watch)
    if stage is Stage.FETCH and result.outcome is Outcome.OUTPUT_LIMIT:
        discard_over_cap(cache, profile.disk_cap_bytes)
    report, problem = None, None
    if not result.outcome.is_infra_failure:
        try:
            report = read_json(out / f"{phase}.json", REPORT_CAP)
            jsonschema.validate(report, json.loads((SCHEMAS / "check-report.schema.json").read_text()))
        except FileNotFoundError:
            problem = "the checker wrote no report (did the encoder's code end the interpreter?)"
            report = None
        except UnsafeOutput as exc:
            problem, report = exc.summary, None
        except jsonschema.ValidationError as exc:
            problem, report = f"the report does not match its schema: {exc.message[:200]}", None
    return result, report, problem


def validate(
    client: Any,
    spec: ValidateSpec,
    build_options: images.BuildOptions | None = None,
    *,
    progress: Callable[[str], None] = print,
) -> dict:
    """Run intake, build, fetch and check; return the validation report (schema: validation-report)."""
    build_options = dataclasses.replace(build_options or images.BuildOptions.from_environment(),
                                        submission_profile=spec.profile)
    started = time.monotonic()
    timings: dict[str, float] = {}
    checks: list[dict] = []
    report: dict[str, Any] = {
        "schema_version": 1,
        "status": Verdict.ERROR.value,
        "submission": {"source": str(spec.source)},
        "profile": spec.profile,
        "checks": checks,
        "resources": {},
        "timings": timings,
        "logs": {},
    }

    def finish(verdict: Verdict) -> dict:
        timings["total_s"] = round(time.monotonic() - started, 2)
        report["status"] = verdict.value
        return report

    def timed(name: str, t0: float) -> None:
        timings[f"{name}_s"] = round(time.monotonic() - t0, 2)

    profile = load_profile(spec.profile)
    gpu = None
    if profile.gpu is not None:
        from harness import gpu as gpu_mod

        gpu = gpu_mod.pick_gpu(gpu_mod.list_gpus(), spec.gpu, profile.gpu.memory_bytes).uuid

    # intake
    t0 = time.monotonic()
    progress("intake: checking the archive")
    try:
        submission = intake(Path(spec.source), paths.subdir("store"), encoder=spec.encoder)
    except SubmissionError as exc:
        checks.append(_error_check("intake", exc))
        timed("intake", t0)
        return finish(Verdict.FAILED)
    timed("intake", t0)
    report["submission"].update(
        sha256=submission.sha256, encoder_file=submission.encoder.file, encoder_class=submission.encoder.class_name,
        encoder_source=submission.encoder.source.value, files=submission.file_count, bytes=submission.total_bytes,
    )
    checks.append(_check("intake", "passed", f"{submission.file_count} files, encoder {submission.encoder.spec} "
                         f"({submission.encoder.source.value})"))

    # build
    t0 = time.monotonic()
    progress(f"build: image for submission {submission.sha256[:12]} (first time: installs its requirements)")
    try:
        built = build_stage.build_submission(client, submission, build_options, log=progress)
    except build_stage.BuildFailed as exc:
        checks.append(_error_check("build", exc))
        report["logs"]["build"] = str(exc.log_path) if exc.log_path else None
        timed("build", t0)
        return finish(Verdict.FAILED)
    except SubmissionError as exc:  # e.g. a torch range the harness cannot choose from
        checks.append(_error_check("build", exc))
        timed("build", t0)
        return finish(Verdict.FAILED)
    timed("build", t0)
    report["submission"].update(image=built.image, torch_version=built.torch_version)
    checks.append(_check("build", "passed", f"torch {built.torch_version}; image {built.image}"
                         + (" (cached)" if built.cached else "")))

    log_dir = paths.logs() / f"validate-{submission.sha256[:12]}-{int(time.time())}"
    log_dir.mkdir(parents=True, exist_ok=True)
    cache = paths.subdir("cache") / submission.sha256
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o777)  # written by the sandbox user (uid 10001) in the fetch stage
    with tempfile.TemporaryDirectory(prefix="validate-", dir=paths.scratch()) as tmp:
        out = Path(tmp)
        out.chmod(0o777)
        for stage in (Stage.FETCH, Stage.CHECK):
            t0 = time.monotonic()
            progress(f"{stage.value}: running the contract checker in the sandbox ({profile.name} profile"
                     + (", network on" if profile.stage(stage).network else ", network off") + ")")
            result, agent_report, problem = run_contract_agent(client, profile, built.image, submission, stage, out,
                                                       cache, spec, log_dir, gpu, build_options)
            timed(stage.value, t0)
            report["logs"][stage.value] = str(result.log_path)
            if result.outcome.is_infra_failure:
                checks.append(_check(stage.value, "failed", f"infrastructure: {result.detail}",
                                     log=str(result.log_path)))
                return finish(Verdict.ERROR)
            if stage is Stage.CHECK:
                report["resources"] = {
                    "peak_host_memory_bytes": result.peak_memory_bytes,
                    "host_memory_limit_bytes": profile.memory_bytes,
                    "peak_gpu_memory_bytes": result.peak_gpu_bytes,
                    "gpu_memory_limit_bytes": profile.gpu.memory_bytes if profile.gpu else None,
                }
            if result.outcome is not Outcome.OK:
                checks.append(_sandbox_failure(stage.value, result, profile))
                if agent_report:
                    checks.extend(c for c in agent_report["checks"] if c["status"] == "failed")
                return finish(Verdict.FAILED)
            if problem is not None or agent_report is None:
                checks.append(_check(stage.value, "failed", problem or "no report", log=str(result.log_path),
                                     found=result.log_tail(600).strip() or None))
                return finish(Verdict.FAILED)
            if agent_report["status"] == "error":
                checks.append(_check(stage.value, "failed", "the contract checker itself failed (harness bug)",
                                     log=str(result.log_path)))
                return finish(Verdict.ERROR)
            if stage is Stage.FETCH:
                failed = [c for c in agent_report["checks"] if c["status"] == "failed"]
                if failed:
                    checks.append(_check("fetch", "failed", "the encoder did not construct with network on",
                                         log=str(result.log_path)))
                    checks.extend(failed)
                    return finish(Verdict.FAILED)
                checks.append(_check("fetch", "passed", "constructed with network on; downloads cached"))
                continue
            checks.append(_check("sandbox", "passed", f"check stage ran in {result.duration_s:.1f} s, "
                                 f"peak host memory {(result.peak_memory_bytes or 0) / 2**20:.0f} MiB"))
            checks.extend(agent_report["checks"])
            report["checker"] = {k: agent_report.get(k) for k in ("environment", "throughput", "timings", "resources")}
            verdict = Verdict.FAILED if agent_report["status"] == "failed" else Verdict.PASSED
            return finish(verdict)
    return finish(Verdict.ERROR)  # unreachable: the loop returns


def validation_schema() -> dict:
    return json.loads((SCHEMAS / "validation-report.schema.json").read_text())


def junit_xml(report: dict) -> bytes:
    """The report as JUnit XML: one test case per check, for CI systems of template forks."""
    checks = report["checks"]
    suite = ET.Element(
        "testsuite",
        name="aecc-validate",
        tests=str(len(checks)),
        failures=str(sum(c["status"] == "failed" for c in checks)),
        skipped=str(sum(c["status"] == "skipped" for c in checks)),
        time=str(report["timings"].get("total_s", 0)),
    )
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname="aecc.contract", name=c["id"])
        if c["status"] == "failed":
            failure = ET.SubElement(case, "failure", message=c["message"][:500])
            failure.text = "\n".join(f"{k}: {c[k]}" for k in ("expected", "found", "fix", "log") if k in c)
        elif c["status"] == "skipped":
            ET.SubElement(case, "skipped", message=c["message"][:500])
        elif c["status"] == "warning":
            ET.SubElement(case, "system-out").text = "warning: " + c["message"]
    if report["status"] == Verdict.ERROR.value:
        ET.SubElement(suite, "system-err").text = "infrastructure error: the verdict is not the submission's"
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="utf-8", xml_declaration=True)


def render(report: dict, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    colours = {"passed": "green", "failed": "red", "warning": "yellow", "skipped": "dim"}
    sub = report["submission"]
    title = f"aecc validate: {sub.get('encoder_file', '?')}:{sub.get('encoder_class', '?')}"
    table = Table(title=title)
    table.add_column("check")
    table.add_column("status")
    table.add_column("message", overflow="fold")
    for c in report["checks"]:
        message = c["message"] + (f"\n  fix: {c['fix']}" if c.get("fix") and c["status"] == "failed" else "")
        table.add_row(c["id"], Text(c["status"], style=colours.get(c["status"], "")), Text(message))
    console.print(table)
    res = report.get("resources") or {}
    if res.get("peak_host_memory_bytes"):
        console.print(f"peak host memory {res['peak_host_memory_bytes'] / 2**20:.0f} MiB of "
                      f"{res['host_memory_limit_bytes'] / 2**30:g} GiB (measured from the host)")
    verdict = report["status"]
    style = {"passed": "bold green", "failed": "bold red", "error": "bold magenta"}[verdict]
    note = {"passed": "the submission meets the contract", "failed": "the submission must be fixed (see above)",
            "error": "infrastructure error: not the submission's fault; see the logs"}[verdict]
    console.print(Text(f"{verdict.upper()}: {note}  ({report['timings'].get('total_s', 0):.1f} s)", style=style))


__all__ = ["ValidateSpec", "Verdict", "validate", "junit_xml", "render", "validation_schema"]

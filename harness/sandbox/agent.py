"""The in-container agent (`checker/`) as the host runs it: where it is mounted, how it is called, and
how its report is read back.

The agent is never baked into a submission image: it is mounted read-only at run time, so a
submission cannot ship a file that shadows it, and `python -P` keeps the submission's working
directory off `sys.path` (with plain `-m`, a submission's own `checker.py` would be imported instead).
The contract checker's report is written by a process that also runs submission code, so the host
reads it as untrusted data: capped, no links, schema-checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from harness.paths import AGENT_DIR
from harness.safeio import UnsafeOutput, read_json
from harness.sandbox.spec import Mount

#: where the agent is mounted in every container, and where a submission's files are in its image
AGENT_TARGET = "/opt/aecc/checker"
SUBMISSION_SRC = "/opt/submission/src"
#: the checker writes one report; anything larger is a runaway writer, not a report
REPORT_CAP = 4 * 1024**2

#: caches a submission's libraries write to, pointed at the per-submission cache folder
CACHE_ENV: Mapping[str, str] = {"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch",
                                "XDG_CACHE_HOME": "/cache/xdg"}
#: the same, for stages without network: libraries must not try to download
OFFLINE_ENV: Mapping[str, str] = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def agent_mount() -> Mount:
    return Mount(AGENT_DIR, AGENT_TARGET)


def agent_command(module: str, *args: str) -> tuple[str, ...]:
    """`python -P -m checker.<module> ARGS` (module: `contract`, `encode`, `prepare`, ...)."""
    return ("python", "-P", "-m", f"checker.{module}", *args)


def ca_bundle_mount(ca_bundle: Path | None) -> tuple[list[Mount], dict[str, str]]:
    """The CA bundle for a stage with network (downloads of weights), and the variables that use it."""
    if ca_bundle is None:
        return [], {}
    target = "/run/aecc-ca.pem"
    return [Mount(Path(ca_bundle).resolve(), target)], {"SSL_CERT_FILE": target, "REQUESTS_CA_BUNDLE": target}


def read_check_report(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The checker's report, or None with the reason it cannot be used (the submission's doing).

    Returns:
        (report, None) for a schema-valid report; (None, problem) otherwise.
    """
    from harness import schemas

    try:
        report = read_json(path, REPORT_CAP)
    except FileNotFoundError:
        return None, "the checker wrote no report (did the encoder's code end the interpreter?)"
    except UnsafeOutput as exc:
        return None, exc.summary
    found = schemas.problems("check-report", report, limit=1)
    if found:
        return None, f"the report does not match its schema: {found[0]}"
    return report, None


def run_contract(client: Any, profile: Any, *, image: str, encoder: str, phase: str, out: Path, cache: Path,
                 log_path: Path, max_seconds: float, gpu: str | None = None, ca_bundle: Path | None = None,
                 network_cache_cap: int | None = None) -> tuple[Any, dict[str, Any] | None, str | None]:
    """Run the contract checker (`checker.contract`) in the submission's image for one phase.

    `fetch`: network on, the download cache writable (capped by the profile's disk cap), the CA
    bundle for TLS; `check`: network off, the cache read-only, libraries told to stay offline, the
    GPU pinned where there is one. The report folder `out` is capped tightly.

    Returns:
        (run result, report or None, why the report cannot be used or None)
    """
    from harness.stage_names import Stage
    from harness.sandbox.run import run_stage
    from harness.sandbox.spec import Outcome, RunSpec
    from harness.sandbox.watch import discard_over_cap, size_cap

    fetching = phase == "fetch"
    command = agent_command("contract", "--submission", SUBMISSION_SRC, "--encoder", encoder,
                            "--report", f"/out/{phase}.json", "--phase", phase, "--max-seconds", f"{max_seconds:g}")
    env = dict(CACHE_ENV)
    mounts = [agent_mount(), Mount(out, "/out", read_only=False)]
    if fetching:
        mounts.append(Mount(cache, "/cache", read_only=False))
        ca_mounts, ca_env = ca_bundle_mount(ca_bundle)
        mounts += ca_mounts
        env.update(ca_env)
    else:
        mounts.append(Mount(cache, "/cache"))
        env.update(OFFLINE_ENV)
    stage = Stage.FETCH if fetching else Stage.CHECK
    spec = RunSpec(stage=stage, image=image, command=command, mounts=tuple(mounts), env=env,
                   gpu_uuid=None if fetching else gpu, workdir=SUBMISSION_SRC)
    cap = profile.disk_cap_bytes if network_cache_cap is None else network_cache_cap
    watch = size_cap(cache, cap, "downloads in the cache") if fetching else None
    result = run_stage(client, profile, spec, log_path, output_cap=(out, 16 * REPORT_CAP), watch=watch)
    if fetching and result.outcome is Outcome.OUTPUT_LIMIT:
        discard_over_cap(cache, cap)
    if result.outcome.is_infra_failure:
        return result, None, None
    report, problem = read_check_report(out / f"{phase}.json")
    return result, report, problem

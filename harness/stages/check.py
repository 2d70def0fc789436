"""Check stage: the contract checker's full run, network off, in the T4-shaped sandbox.

Attributes, output shape and dtype, `T'` against `duration / hop_size_in_ms` from 0.5 s to 10
minutes, finiteness, determinism, batch independence, CUDA where a GPU is pinned, memory and
throughput (`checker.contract` lists every check). The weights fetched earlier are mounted
read-only; libraries are told to stay offline. Peak memory is measured from the host (the cgroup),
never taken from the checker's own report.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from checker.jobs import DEFAULT_MAX_SECONDS

from harness import paths
from harness.sandbox.agent import run_contract
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage
from harness.stages.contract_run import ContractRun
from harness.stages.fetch import cache_dir
from harness.stages.intake import Submission


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

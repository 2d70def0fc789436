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
from harness.sandbox.spec import Outcome, RunResult
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


@dataclasses.dataclass(frozen=True)
class Checked:
    run: RunResult
    report: dict[str, Any] | None
    problem: str | None

    @property
    def checks(self) -> list[dict]:
        return list((self.report or {}).get("checks", []))

    @property
    def failed_checks(self) -> list[dict]:
        return [c for c in self.checks if c["status"] == "failed"]

    @property
    def checker_error(self) -> bool:
        return bool(self.report) and self.report["status"] == "error"

    @property
    def ok(self) -> bool:
        return self.run.outcome is Outcome.OK and self.report is not None and self.report["status"] == "passed"


def check(client: Any, spec: CheckSpec) -> Checked:
    """Run every contract check; the submission's failures are in the result, never raised."""
    with tempfile.TemporaryDirectory(prefix="check-", dir=paths.scratch()) as tmp:
        out = Path(tmp)
        out.chmod(0o777)
        run, report, problem = run_contract(
            client, spec.profile, image=spec.image, encoder=spec.submission.encoder.spec, phase="check", out=out,
            cache=cache_dir(spec.submission), log_path=spec.log_dir / "check.log", max_seconds=spec.max_seconds,
            gpu=spec.gpu)
    return Checked(run=run, report=report, problem=problem)

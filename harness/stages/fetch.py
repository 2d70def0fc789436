"""Fetch stage: construct the encoder once, with network, so that what it downloads lands in the
submission's own cache; read back the attributes every later stage needs.

The only stage of submission code with network (on `aecc-egress`: the internet, not the host). It
runs the contract checker's `fetch` phase, the same code path for `aecc validate` and `aecc score`:
import, class, construction, `nn.Module`, and the three attributes, checked against the one
definition of a plausible encoder (`checker.jobs.ATTRIBUTE_RANGES`). So an encoder that fails
validation for its attributes is never scored. No data, labels or keys are mounted.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from checker.jobs import DEFAULT_MAX_SECONDS, EncoderAttributes, attribute_problems
from harness import paths
from harness.sandbox.agent import run_contract
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage
from harness.stages.contract_run import ContractRun
from harness.stages.intake import Submission


@dataclasses.dataclass(frozen=True)
class FetchSpec:
    submission: Submission
    image: str
    profile: SandboxProfile
    log_dir: Path
    ca_bundle: Path | None = None
    max_seconds: float = DEFAULT_MAX_SECONDS


def cache_dir(submission: Submission) -> Path:
    """The submission's download cache: written by fetch (uid 10001), read-only to every later stage."""
    cache = paths.subdir("cache") / submission.sha256
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o777)
    return cache


def fetch(client: Any, spec: FetchSpec) -> ContractRun:
    """Run the fetch phase; never raises for the submission's failures, which the result carries.

    An infrastructure outcome (`run.outcome.is_infra_failure`) comes back as it is: the caller
    decides, and never records it as the submission's failure.
    """
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=paths.scratch()) as tmp:
        out = Path(tmp)
        out.chmod(0o777)
        run, report, problem = run_contract(
            client, spec.profile, image=spec.image, encoder=spec.submission.encoder.spec, phase="fetch", out=out,
            cache=cache_dir(spec.submission), log_path=spec.log_dir / "fetch.log", max_seconds=spec.max_seconds,
            ca_bundle=spec.ca_bundle)
    attributes, problems = None, ()
    if report is not None and report["status"] == "passed":
        found = attribute_problems(report.get("attributes", {}))
        if found:
            problems = tuple(found)
        else:
            attributes = EncoderAttributes.from_dict(report["attributes"])
    return ContractRun(Stage.FETCH, run, report, problem, attributes=attributes, attribute_problems=problems)

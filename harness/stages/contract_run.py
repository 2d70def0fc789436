"""How one run of the contract checker in the sandbox ended (the fetch or the check stage), judged once.

Fetch and check run the same in-container checker (`checker`), in two phases, and end the same way:
the sandbox's outcome, the checker's report (untrusted: capped, no links, schema-checked) and, for
fetch, the encoder's attributes. `ContractRun` holds them and gives the one reading that
`aecc validate`, `aecc score` and the Slurm worker all use:

- `verdict`: ok, the submission's failure, or an infrastructure failure (the engine, the machine, the
  checker itself). An infrastructure failure is never reported as the submission's.
- `lines(profile)`: the run as the harness's report lines (`harness.results.Check`): the stage's own
  line (naming the limit that was hit, with its fix), then the checker's checks. For the check
  stage, the rule checks it never reached are listed as "not run", so the verdict
  (`checker.verdict`) sees them whoever reads the run.
- `failure()`: one sentence for the journal and the exclusion.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from checker.jobs import EncoderAttributes, Level
from checker.report import CheckStatus
from checker.verdict import RULE_CHECK_IDS
from harness.errors import InfraError
from harness.results import Check
from harness.sandbox.profiles import SandboxProfile
from harness.sandbox.spec import Outcome, RunResult
from harness.stage_names import Stage

P, F = CheckStatus.PASSED, CheckStatus.FAILED


class RunVerdict(str, enum.Enum):
    """What a contract run says about the submission."""

    OK = "ok"  # fetch: constructed, attributes in range; check: the checker ran to its report
    SUBMISSION_FAILURE = "submission_failure"  # the submission's fault: a limit, a crash, no usable report
    INFRA_FAILURE = "infrastructure_failure"  # the engine, the machine or the checker itself: never the submission's


@dataclasses.dataclass(frozen=True)
class ContractRun:
    """One fetch or check run: the sandbox's outcome, the checker's report, and (fetch) the attributes.

    `attributes` is set only for a fetch whose construction succeeded with every attribute in range."""

    stage: Stage
    run: RunResult
    report: dict[str, Any] | None
    problem: str | None  # why the report cannot be used (missing, oversize, off-schema)
    attributes: EncoderAttributes | None = None
    attribute_problems: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", Stage(self.stage))
        if self.stage not in (Stage.FETCH, Stage.CHECK):
            raise ValueError(f"a contract run is a fetch or a check, not {self.stage.value}")
        if self.stage is Stage.CHECK and (self.attributes is not None or self.attribute_problems):
            raise ValueError("only the fetch stage reads the encoder's attributes")
        object.__setattr__(self, "attribute_problems", tuple(self.attribute_problems))

    # -- what the checker reported ------------------------------------------------------------------------

    @property
    def checks(self) -> list[dict]:
        return list((self.report or {}).get("checks", []))

    @property
    def failed_checks(self) -> list[dict]:
        return [c for c in self.checks if c["status"] == "failed"]

    @property
    def checker_error(self) -> bool:
        """The checker itself failed (a harness bug), not the submission."""
        return bool(self.report) and self.report["status"] == "error"

    # -- the one reading ------------------------------------------------------------------------------------

    @property
    def verdict(self) -> RunVerdict:
        if self.run.outcome.is_infra_failure or self.checker_error:
            return RunVerdict.INFRA_FAILURE
        if self.run.outcome is not Outcome.OK or self.report is None:
            return RunVerdict.SUBMISSION_FAILURE
        if self.stage is Stage.FETCH and (self.failed_checks or self.attributes is None):
            return RunVerdict.SUBMISSION_FAILURE
        return RunVerdict.OK

    def raise_for_infra(self) -> None:
        """Raise the infrastructure failure, if that is how the run ended (the caller retries or stops)."""
        self.run.raise_for_infra()
        if self.checker_error:
            raise InfraError(f"the contract checker itself failed in the {self.stage.value} stage "
                             "(a harness bug, not the submission)",
                             found=(self.report or {}).get("error", "")[-500:], log_path=self.run.log_path)

    def infra_line(self) -> Check:
        detail = self.run.detail if self.run.outcome.is_infra_failure else "the contract checker itself failed " \
                                                                           "(harness bug)"
        return Check(self.stage.value, F, f"infrastructure: {detail}", log=str(self.run.log_path))

    def failure(self) -> str:
        """Why the submission failed this stage, in one line (journal, exclusion)."""
        failed = "; ".join(f"{c['id']}: {c['message']}" for c in self.failed_checks)
        if self.run.outcome is not Outcome.OK:
            failed = f"the {self.stage.value} stage ended with {self.run.outcome.value}: {self.run.detail}" + (
                f"; {failed}" if failed else "")
        return (failed or "; ".join(self.attribute_problems) or self.problem
                or self.run.log_tail(800).strip() or "no reason recorded")

    def lines(self, profile: SandboxProfile) -> list[Check]:
        """The run as report lines (see the module docstring); the infrastructure line when it was one."""
        if self.verdict is RunVerdict.INFRA_FAILURE:
            return [self.infra_line()]
        log = self.run.log_path
        agent = [Check.from_agent(c, log) for c in (self.checks if self.stage is Stage.CHECK else self.failed_checks)]
        if self.run.outcome is not Outcome.OK:
            return [self._limit_line(profile), *agent, *self._not_reached(agent)]
        if self.report is None:
            # No report: what X-ARES checks is not established, so the submission cannot be scored.
            return [Check(self.stage.value, F, self.problem or "the contract checker wrote no report", log=str(log),
                          found=self.run.log_tail(600).strip() or None, level=Level.RULE)]
        if self.stage is Stage.FETCH:
            if self.failed_checks:
                return [Check("fetch", F, "the encoder did not construct with network on", log=str(log)), *agent]
            if self.attributes is None:
                return [Check("fetch", F, "the encoder's attributes are out of range: "
                              + "; ".join(self.attribute_problems), log=str(log))]
            return [Check("fetch", P, "constructed with network on; downloads cached")]
        ran = Check("sandbox", P, f"check stage ran in {self.run.duration_s:.1f} s, peak host memory "
                                  f"{(self.run.peak_memory_bytes or 0) / 2**20:.0f} MiB")
        return [ran, *agent, *self._not_reached(agent)]

    def _limit_line(self, profile: SandboxProfile) -> Check:
        """The sandbox run that ended badly, naming the limit that was hit: `fetch` (rule: the encoder
        never constructed) or, for the check stage, `sandbox` (scoring: the checks it did not reach
        are listed, and a rule check among them still excludes)."""
        fixes = {
            Outcome.OOM: f"keep host memory under {profile.memory_bytes / 2**30:g} GiB (Colab T4: 12 GB RAM)",
            Outcome.GPU_OOM: "keep GPU memory under the T4's 15 GiB",
            Outcome.TIMEOUT: f"make the {self.stage.value} stage finish within "
                             f"{profile.stage(self.stage).wall_clock_s:g} s",
            Outcome.FAILED: "read the log; run the same command locally",
        }
        return Check("fetch" if self.stage is Stage.FETCH else "sandbox", F,
                     f"the {self.stage.value} stage ended with {self.run.outcome.value}: {self.run.detail}",
                     fix=fixes.get(self.run.outcome), log=str(self.run.log_path),
                     found=self.run.log_tail(600).strip() or None)

    def _not_reached(self, agent: list[Check]) -> list[Check]:
        """The check stage's rule checks it never reached, as 'not run' (none once a rule check failed:
        the submission is excluded by it already)."""
        if self.stage is not Stage.CHECK or any(c.level is Level.RULE and c.status is F for c in agent):
            return []
        reached = {c.id for c in agent}
        how = f"ended with {self.run.outcome.value}" if self.run.outcome is not Outcome.OK else "ended"
        return [Check(i, CheckStatus.SKIPPED, f"not run: the check stage {how} before it")
                for i in RULE_CHECK_IDS if i not in reached]

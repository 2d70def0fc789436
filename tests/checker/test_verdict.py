"""One verdict, defined once: every check has a level, the outcome and its first line follow from the
levels alone, and the exit codes are 0 unless a rule or scoring check failed (--strict: or advice).
The same words across tools are tested where the tools run (test_in_place, the pipelines, the gate);
this module pins the rules they all share."""

from __future__ import annotations

import pytest

from checker.common import CHECK_IDS
from checker.jobs import CHECK_LEVELS, Level
from checker.verdict import RULE_CHECK_IDS, Outcome, Summary, summarise


def checks(**statuses: str) -> list[dict]:
    """A complete check-phase report: every id passed unless named."""
    return [{"id": i, "status": statuses.get(i, "passed"), "message": f"message of {i}", "fix": f"fix {i}"}
            for i in CHECK_IDS]


def test_every_check_id_has_exactly_one_level():
    assert set(CHECK_IDS) <= set(CHECK_LEVELS)
    assert set(CHECK_LEVELS) - set(CHECK_IDS) == {"discover", "intake", "build", "fetch", "sandbox"}


def test_rule_is_what_xares_own_checker_tests():
    # xares/audio_encoder_checker.py: class name, nn.Module, three attributes, one forward, tensor,
    # 3-D, batch size, D == output_dim (tests/checker/test_official_parity.py runs it).
    assert set(RULE_CHECK_IDS) == {"import", "class_found", "class_name", "constructible", "nn_module",
                                   "attr_sampling_rate", "attr_output_dim", "attr_hop_size", "forward_basic",
                                   "output_type", "output_rank", "output_batch", "output_dim_match"}


@pytest.mark.parametrize(("statuses", "outcome", "code", "first"), [
    ({}, Outcome.PASSES, 0, "passes (0 advisories)"),
    ({"output_dim_match": "failed"}, Outcome.EXCLUDED, 1, "will be excluded: output_dim_match failed: "),
    ({"finite": "failed"}, Outcome.SCORED_WITH_PROBLEMS, 1, "will be scored, but: finite failed: "),
    ({"deterministic": "failed", "t4_pitfalls": "warning"}, Outcome.PASSES, 0, "passes (2 advisories)"),
    ({"frames_track_hop": "failed"}, Outcome.PASSES, 0, "passes (1 advisory)"),
    # a warning of a rule check is advice, never a reason to exclude
    ({"attr_sampling_rate": "warning"}, Outcome.PASSES, 0, "passes (1 advisory)"),
    ({"finite": "failed", "class_name": "failed"}, Outcome.EXCLUDED, 1, "will be excluded: class_name failed"),
    ({"cuda": "skipped", "long_input": "skipped"}, Outcome.PASSES, 0, "passes (0 advisories)"),
])
def test_outcome_and_first_line_follow_the_levels(statuses, outcome, code, first):
    summary = summarise(checks(**statuses))
    assert summary.outcome is outcome and summary.exit_code == code
    assert summary.headline.startswith(first) and summary.lines()[0] == summary.headline


def test_strict_fails_on_advisories_only():
    assert summarise(checks(deterministic="failed"), strict=True).exit_code == 1
    assert summarise(checks(), strict=True).exit_code == 0
    assert summarise(checks(finite="failed"), strict=True).outcome is Outcome.SCORED_WITH_PROBLEMS


def test_rule_checks_that_never_ran_exclude():
    ended_early = [c for c in checks() if c["id"] not in ("output_batch", "output_dim_match")]
    summary = summarise(ended_early)
    assert summary.outcome is Outcome.EXCLUDED
    assert summary.headline.startswith("will be excluded: output_batch could not be established")
    assert summarise(ended_early, expect_rule_checks=False).outcome is Outcome.PASSES
    skipped = summarise(checks(forward_basic="skipped"))
    assert skipped.outcome is Outcome.EXCLUDED


def test_an_infrastructure_error_is_never_the_submissions():
    summary = summarise(checks(output_dim_match="failed"), error="engine gone")
    assert summary.outcome is Outcome.ERROR and summary.exit_code == 2
    assert "not the submission's fault" in summary.headline


def test_lines_group_by_level_with_fixes_and_round_trip():
    summary = summarise(checks(finite="failed", deterministic="failed", attr_sampling_rate="warning"))
    lines = summary.lines()
    assert lines[0] == "will be scored, but: finite failed: message of finite"
    scoring, advice = lines.index(f"scoring ({Level.SCORING.meaning}):"), lines.index(f"advice ({Level.ADVICE.meaning}):")
    assert scoring < lines.index("  FAILED   finite: message of finite") < advice
    assert lines.index("  FAILED   deterministic: message of deterministic") > advice
    assert "           fix: fix finite" in lines
    assert Summary.from_dict(summary.to_dict()).lines() == lines


def test_a_report_cannot_demote_its_own_checks():
    """The host takes the level from the id (`Check.from_agent`), whatever the untrusted report says."""
    from harness.results import Check

    forged = {"id": "output_dim_match", "status": "failed", "message": "m", "level": "advice"}
    assert Check.from_agent(forged).level is Level.RULE


def test_headline_stays_short_whatever_fails():
    many = [{"id": "forward_lengths", "status": "failed", "message": "m" * 5000}] * 50 + checks(finite="failed")
    assert len(summarise(many).headline) < 400

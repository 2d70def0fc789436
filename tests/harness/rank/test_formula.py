"""A leaderboard score is the paper's equation (2) over equation (1): each task normalised to [0, 1]
with its registry bounds (lower-is-better inverted, out-of-range clamped and flagged) and averaged
with X-ARES eval_weight; a failed task counts 0 at full weight (or is left out, on request); an
infrastructure error is never a number and keeps the row unranked. Rows are ranked by the unrounded
score and share a rank when the display (0.001) or, in Track A, two standard errors of the
difference cannot separate them. Every expected number here is worked out by hand in the test from
the per-task values, never by calling the formula under test.
"""

from __future__ import annotations

import math

import pytest

from harness.errors import UsageError
from harness.rank import formula
from harness.rank.model import (
    Cell,
    CellState,
    Entry,
    MissingPolicy,
    Provenance,
    RowStatus,
    Track,
)
from harness.tasks.registry import Bounds, Registry, TaskEntry, load_registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def entry(name: str, track: str = "A", **cells: object) -> Entry:
    """cells: task=value (float), task=(mean, [repeats]), task="failed" / "not_run" / "error"."""
    made = {}
    for task, spec in cells.items():
        if isinstance(spec, str):
            made[task] = Cell(task, CellState(spec), reason=spec)
        elif isinstance(spec, tuple):
            made[task] = Cell(task, CellState.VALUE, raw=spec[0], values=tuple(spec[1]))
        else:
            made[task] = Cell(task, CellState.VALUE, raw=spec)
    return Entry(track=track, name=name, provenance=Provenance.REFERENCE, cells=made)


def scored(e: Entry, tasks, registry, policy=MissingPolicy.ZERO):
    return formula.score_entry(e, tasks, registry, policy)


# esc50 400 (public), cremad 1116 (public), subway_broadcast 5000 (hidden): X-ARES eval_weight
TASKS = ("esc50", "cremad", "subway_broadcast")


def test_weighted_average_and_public_average_by_hand(registry):
    row = scored(entry("x", esc50=0.8, cremad=0.6, subway_broadcast=0.9), TASKS, registry)
    assert row.score == pytest.approx((400 * 0.8 + 1116 * 0.6 + 5000 * 0.9) / (400 + 1116 + 5000), abs=1e-12)
    assert row.score == pytest.approx(5489.6 / 6516, abs=1e-12)
    assert row.score_public == pytest.approx((400 * 0.8 + 1116 * 0.6) / 1516, abs=1e-12)
    assert row.status is RowStatus.COMPLETE and row.weight_counted == 6516
    assert [c.weight for c in row.cells] == [400, 1116, 5000]


def test_failed_counts_zero_at_full_weight_and_exclude_renormalises(registry):
    e = entry("x", esc50=0.8, cremad="failed", subway_broadcast=0.9)
    zero = scored(e, TASKS, registry)
    assert zero.score == pytest.approx((320 + 4500) / 6516, abs=1e-12)
    assert zero.status is RowStatus.PARTIAL and zero.rank is None
    cell = {c.task: c for c in zero.cells}["cremad"]
    assert (cell.state, cell.normalised, cell.counted) == (CellState.FAILED, 0.0, True)
    excluded = scored(e, TASKS, registry, MissingPolicy.EXCLUDE)
    assert excluded.score == pytest.approx((320 + 4500) / 5400, abs=1e-12)
    assert excluded.score_public == pytest.approx(0.8)
    cell = {c.task: c for c in excluded.cells}["cremad"]
    assert (cell.normalised, cell.counted) == (None, False)


def test_a_task_absent_from_the_row_is_not_run(registry):
    row = scored(entry("x", esc50=0.5), TASKS, registry)
    states = {c.task: c.state for c in row.cells}
    assert states == {"esc50": CellState.VALUE, "cremad": CellState.NOT_RUN, "subway_broadcast": CellState.NOT_RUN}
    assert row.score == pytest.approx(200 / 6516)


def test_an_infrastructure_error_is_never_a_value_and_the_row_is_not_ranked(registry):
    good = scored(entry("good", esc50=0.1, cremad=0.1, subway_broadcast=0.1), TASKS, registry)
    broken = scored(entry("broken", esc50=0.9, cremad="error", subway_broadcast=0.9), TASKS, registry)
    assert broken.status is RowStatus.INCOMPLETE
    cell = {c.task: c for c in broken.cells}["cremad"]
    assert (cell.normalised, cell.counted) == (None, False)
    # the provisional score is over the other tasks (shown, not ranked)
    assert broken.score == pytest.approx((360 + 4500) / 5400)
    ranked = formula.rank_rows([broken, good], Track.A)
    assert [(r.entry.name, r.rank) for r in ranked] == [("good", 1), ("broken", None)]


def _custom_registry() -> Registry:
    def task(name, metric, direction, worst, best, weight):
        return TaskEntry(name=name, formal_name=name, domain="speech", metric=metric, direction=direction,
                         worst=worst, best=best, track_a=True, track_b=True, visibility="public", supported=True,
                         xares_module=f"tasks.{name}_task", config_function=f"{name}_config", eval_weight=weight,
                         xares_bounds=Bounds(worst, best), bounds_follow="xares", xares_do_knn=True)

    return Registry(entries=(task("eer", "EER", "lower", 1, 0, 300), task("acc", "accuracy", "higher", 0, 1, 100),
                             task("pct", "mAP", "higher", 0, 100, 600)))


def test_lower_is_better_is_inverted_and_out_of_range_is_clamped_and_flagged():
    reg = _custom_registry()
    row = scored(entry("x", eer=0.1, acc=1.25, pct=45.0), ("eer", "acc", "pct"), reg)
    cells = {c.task: c for c in row.cells}
    assert cells["eer"].normalised == pytest.approx(0.9)  # (worst - M) / (worst - best) = (1 - 0.1) / 1
    assert cells["acc"].normalised == 1.0 and cells["acc"].clamped and cells["acc"].raw == 1.25
    assert cells["pct"].normalised == pytest.approx(0.45) and not cells["pct"].clamped
    assert row.score == pytest.approx((300 * 0.9 + 100 * 1.0 + 600 * 0.45) / 1000, abs=1e-12)
    below = scored(entry("y", eer=1.5, acc=-0.2, pct=0.0), ("eer", "acc", "pct"), reg)
    assert below.score == 0.0 and all(c.clamped for c in below.cells if c.task != "pct")


def test_cells_refuse_what_they_cannot_hold():
    with pytest.raises(UsageError):
        Cell("esc50", CellState.VALUE, raw=math.nan)
    with pytest.raises(UsageError):
        Cell("esc50", CellState.FAILED, raw=0.3)
    with pytest.raises(ValueError):
        Cell("esc50", "lost")


# ---- ranks and ties --------------------------------------------------------------------------------


def _rows(registry, track, scores: dict[str, float]):
    return [scored(entry(n, track, esc50=v), ("esc50",), registry) for n, v in scores.items()]


def test_rank_by_unrounded_score_with_ties_below_the_display_precision(registry):
    rows = formula.rank_rows(_rows(registry, "B", {"a": 0.8, "b": 0.8004, "c": 0.7, "d": 0.69951, "e": 0.5}),
                             Track.B)
    got = [(r.entry.name, r.rank, r.tie_group) for r in rows]
    # b above a (unrounded), both tie (0.0004 < 0.001): =1, =1, then 3
    assert got == [("b", 1, 1), ("a", 1, 1), ("c", 3, 2), ("d", 3, 2), ("e", 5, None)]
    assert rows[1].tie_reason is formula.TieReason.PRECISION and rows[0].tie_reason is None
    # 0.0011 apart is not a tie, 0.0009 is
    apart = formula.rank_rows(_rows(registry, "B", {"a": 0.75, "b": 0.7511}), Track.B)
    assert [r.rank for r in apart] == [1, 2]
    close = formula.rank_rows(_rows(registry, "B", {"a": 0.75, "b": 0.7509}), Track.B)
    assert [r.rank for r in close] == [1, 1]


def test_ties_chain_down_the_order(registry):
    rows = formula.rank_rows(_rows(registry, "B", {"a": 0.9000, "b": 0.8994, "c": 0.8988}), Track.B)
    assert [(r.entry.name, r.rank, r.tie_group) for r in rows] == [("a", 1, 1), ("b", 1, 1), ("c", 1, 1)]


def test_track_a_standard_error_from_repeats_and_the_two_se_tie(registry):
    # esc50 (w 400) runs 0.80, 0.84 (mean 0.82, population std 0.02); cremad (w 1116) runs 0.5, 0.6, 0.7
    # (mean 0.6, population std sqrt(2/3)/10). W = 1516.
    row = scored(entry("x", esc50=(0.82, [0.80, 0.84]), cremad=(0.6, [0.5, 0.6, 0.7])), ("esc50", "cremad"),
                 registry)
    s_esc, s_cremad = 0.02, math.sqrt(((-0.1) ** 2 + 0 + 0.1 ** 2) / 3)
    expected = math.sqrt((400 / 1516) ** 2 * s_esc ** 2 / 2 + (1116 / 1516) ** 2 * s_cremad ** 2 / 3)
    assert row.se == pytest.approx(expected, rel=1e-9)
    assert row.score == pytest.approx((400 * 0.82 + 1116 * 0.6) / 1516, abs=1e-12)
    cells = {c.task: c for c in row.cells}
    assert cells["esc50"].repeats == 2 and cells["esc50"].std == pytest.approx(0.02)

    # two runs at mean +- 0.0025: std 0.0025, SE 0.0025 / sqrt(2); two rows: the difference's SE is
    # sqrt(2) * 0.0025 / sqrt(2) = 0.0025, so rows tie by spread up to 2 * 0.0025 = 0.005 apart
    def noisy(name, mean):
        return scored(entry(name, esc50=(mean, [mean - 0.0025, mean + 0.0025])), ("esc50",), registry)

    top, second = noisy("top", 0.800), noisy("second", 0.796)
    assert top.se == pytest.approx(0.0025 / math.sqrt(2)) and second.se == pytest.approx(0.0025 / math.sqrt(2))
    ranked = formula.rank_rows([second, top], Track.A)
    assert [(r.entry.name, r.rank, r.tie_reason) for r in ranked] == [
        ("top", 1, None), ("second", 1, formula.TieReason.SPREAD)]
    # 0.008 apart: beyond 0.005: separate ranks
    far = formula.rank_rows([noisy("top", 0.800), noisy("low", 0.792)], Track.A)
    assert [r.rank for r in far] == [1, 2]
    # Track B has no spread: the same 0.004 gap is two ranks
    b_rows = formula.rank_rows(_rows(registry, "B", {"top": 0.800, "second": 0.796}), Track.B)
    assert [r.rank for r in b_rows] == [1, 2] and all(r.se is None for r in b_rows)


def test_a_single_run_adds_no_spread(registry):
    row = scored(entry("x", esc50=0.8, cremad=0.6), ("esc50", "cremad"), registry)
    assert row.se is None


@pytest.mark.parametrize("score, published, matches", [
    (0.8223264995607982, "0.807", False), (0.8363070335048312, "0.836", True),
    (0.7095696135023215, "0.709", False), (0.6406585371540489, "0.641", True), (0.48, "0.480", True),
    (0.6785, "0.679", False),  # the binary value of 0.6785 is just below ...85: rounds down
    (0.8675, "0.868", True),  # ... and that of 0.8675 just above
    (0.8125, "0.813", True),  # exactly representable: half-up
    (0.5, "0.5", True), (0.46, "0.5", True),
])
def test_published_match_rounds_the_exact_value_half_up_to_the_published_precision(score, published, matches):
    assert formula.published_matches(score, published) is matches
    assert formula.published_matches(None, published) is None and formula.published_matches(score, None) is None

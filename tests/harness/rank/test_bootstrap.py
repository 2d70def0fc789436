"""The paired bootstrap says "A beats B" only where the test clips say so: two encoders of clearly
different quality get disjoint intervals and separate ranks; two byte-different packages of one
encoder (same predictions) share one tie group; a tiny real advantage shares a group on a small test
set and separates on a large one. The same seed gives the same numbers; rows without per-clip data
(reference rows, another test set, a clips file that disagrees with its result) get no interval and
the reason, and keep the plain tie rule. Vectorised equations (1) and (2) equal the scalar ones.

Data are generated per-clip predictions (accuracy), scored through `checker.clips` as the leaderboard
reads them; every expectation follows from how the predictions were made, not from the code under test.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from checker.clips import ClipRun
from harness.errors import UsageError
from harness.rank import bootstrap, formula
from harness.rank.model import Cell, CellState, Entry, MissingPolicy, Provenance, Track
from harness.tasks.registry import load_registry
from tests.harness.rank.helpers import sha_of

TASK = "esc50"  # accuracy, bounds [0, 1], weight 400


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def keys(n: int) -> np.ndarray:
    return np.array([f"clip{i:06d}" for i in range(n)])


def predictions(correct: np.ndarray, classes: int = 10) -> dict[str, np.ndarray]:
    """pred/target arrays whose argmax is right exactly where `correct` is True."""
    target = np.arange(correct.size) % classes
    return {"pred": np.where(correct, target, (target + 1) % classes), "target": target}


def make_row(name: str, runs: list[np.ndarray], registry, track: str = "B", task: str = TASK,
             key_list: np.ndarray | None = None, raw_shift: float = 0.0):
    """A result row (unsigned) with one clip run per array of `runs` (Track A: repeats), and its source."""
    sha = sha_of(name)
    clip_runs = [ClipRun(task=task, track=track, run=i, seed=i, metric="accuracy", reported=float(c.mean()),
                         keys=keys(c.size) if key_list is None else key_list, arrays=predictions(c))
                 for i, c in enumerate(runs)]
    values = tuple(float(c.mean()) for c in runs)
    raw = sum(values) / len(values) + raw_shift
    cell = Cell(task, CellState.VALUE, raw=raw, values=values if len(values) > 1 else ())
    entry = Entry(track=track, name=name, provenance=Provenance.UNSIGNED, cells={task: cell}, sha256=sha)
    row = formula.score_entry(entry, [task], registry, MissingPolicy.ZERO)
    return row, sha, bootstrap.ClipSource(clips=bootstrap.from_clip_runs(clip_runs))


DEFAULT = bootstrap.BootstrapSpec()


def run(rows_and_sources, registry, track="B", spec=DEFAULT, tasks=(TASK,)):
    rows = [r for r, _, _ in rows_and_sources]
    sources = {sha: src for _, sha, src in rows_and_sources if src is not None}
    resamples = bootstrap.resample_track(Track(track), rows, list(tasks), registry, sources, spec)
    ranked = formula.rank_rows(rows, Track(track), resamples.ahead, spec.tie_confidence)
    return ranked, resamples, resamples.rank_stats(ranked)


def by_name(ranked):
    return {r.entry.name: r for r in ranked}


def test_clearly_different_encoders_get_disjoint_intervals_and_separate_ranks(registry):
    rng = np.random.default_rng(1)
    n = 1000
    good = make_row("good", [rng.random(n) < 0.90], registry)
    poor = make_row("poor", [rng.random(n) < 0.60], registry)
    ranked, resamples, ranks = run([poor, good], registry)
    rows = by_name(ranked)
    assert [r.entry.name for r in ranked] == ["good", "poor"]
    assert (rows["good"].rank, rows["poor"].rank) == (1, 2) and rows["poor"].tie_group is None
    hi = resamples.rows[bootstrap.row_key(rows["good"].entry)]
    lo = resamples.rows[bootstrap.row_key(rows["poor"].entry)]
    assert lo.interval[1] < hi.interval[0], "the intervals overlap"
    # the score is inside its interval, and the interval is about +-2 binomial SEs wide
    for row, found in ((rows["good"], hi), (rows["poor"], lo)):
        assert found.interval[0] <= row.score <= found.interval[1]
        p = row.score
        assert found.interval[1] - found.interval[0] == pytest.approx(2 * 1.96 * (p * (1 - p) / n) ** 0.5, rel=0.2)
    assert rows["poor"].upper_ahead == 1.0
    good_ranks = ranks[bootstrap.row_key(rows["good"].entry)]
    assert good_ranks.counts == (1000, 0) and (good_ranks.low, good_ranks.high, good_ranks.median) == (1, 1, 1.0)
    # the per-task interval is the metric's own (raw), and normalised (here the same: bounds 0..1)
    task_interval = hi.tasks[TASK]
    assert task_interval.raw == pytest.approx(task_interval.normalised)


def test_two_packages_of_one_encoder_share_one_tie_group(registry):
    correct = np.random.default_rng(2).random(800) < 0.75
    ranked, _, ranks = run([make_row("copy-1", [correct], registry), make_row("copy-2", [correct], registry)],
                           registry)
    assert [r.rank for r in ranked] == [1, 1] and ranked[0].tie_group == ranked[1].tie_group == 1
    assert ranked[1].tie_reason is formula.TieReason.PRECISION  # identical: equal in every resample
    assert ranked[1].upper_ahead == 0.0
    # equal in every resample: both rank 1 every time (a tie in a resample shares the better rank)
    assert all(s.counts[0] == 1000 for s in ranks.values())


@pytest.mark.parametrize("n, separated", [(300, False), (20000, True)])
def test_a_tiny_real_advantage_separates_only_on_a_large_test_set(registry, n, separated):
    """B is A with 2 % of clips fixed and 1 % broken: +1 point of accuracy, paired noise of 3 % of clips."""
    rng = np.random.default_rng(3)
    base = rng.random(n) < 0.8
    better = base.copy()
    wrong, right = np.flatnonzero(~base), np.flatnonzero(base)
    better[rng.choice(wrong, int(0.02 * n), replace=False)] = True
    better[rng.choice(right, int(0.01 * n), replace=False)] = False
    ranked, _, _ = run([make_row("A", [base], registry), make_row("B", [better], registry)], registry)
    assert [r.entry.name for r in ranked] == ["B", "A"]
    assert ranked[0].score - ranked[1].score == pytest.approx(0.01, abs=1e-12)  # above the 0.001 display rule
    if separated:
        assert ranked[1].upper_ahead >= 0.95 and [r.rank for r in ranked] == [1, 2] and ranked[1].tie_group is None
    else:
        assert ranked[1].upper_ahead < 0.95
        assert [r.rank for r in ranked] == [1, 1] and ranked[1].tie_reason is formula.TieReason.BOOTSTRAP


def test_the_seed_fixes_every_number_and_another_seed_moves_them(registry):
    rng = np.random.default_rng(4)
    rows = [make_row(name, [rng.random(500) < p], registry) for name, p in (("a", 0.7), ("b", 0.72), ("c", 0.69))]
    first = run(rows, registry, spec=bootstrap.BootstrapSpec(resamples=200, seed=7))
    again = run(rows, registry, spec=bootstrap.BootstrapSpec(resamples=200, seed=7))
    other = run(rows, registry, spec=bootstrap.BootstrapSpec(resamples=200, seed=8))
    for key, found in first[1].rows.items():
        assert np.array_equal(found.scores, again[1].rows[key].scores)
        assert not np.array_equal(found.scores, other[1].rows[key].scores)
    assert first[2] == again[2]
    assert [r.upper_ahead for r in first[0]] == [r.upper_ahead for r in again[0]]


def test_track_a_draws_one_repeat_per_resample(registry):
    rng = np.random.default_rng(5)
    n = 2000
    same = rng.random(n) < 0.7
    # identical repeats: the same interval as one run
    three_row = make_row("three", [same, same, same], registry, track="A")
    single = make_row("single", [same], registry, track="A")
    _, resamples, _ = run([three_row, single], registry, track="A")
    keyed = {k[1]: v for k, v in resamples.rows.items()}
    assert np.array_equal(keyed["three"].scores, keyed["single"].scores)
    # two very different repeats (probe seeds): each resample takes one, so the interval spans both
    low, high = rng.random(n) < 0.5, rng.random(n) < 0.9
    _, resamples, _ = run([make_row("noisy", [low, high], registry, track="A")], registry, track="A")
    found = next(iter(resamples.rows.values()))
    assert found.interval[0] < 0.55 and found.interval[1] > 0.85
    picked_low = np.mean(found.scores < 0.7)
    assert 0.4 < picked_low < 0.6  # about half the resamples drew each repeat


def test_rows_without_comparable_clips_say_why_and_keep_the_plain_rule(registry):
    rng = np.random.default_rng(6)
    n = 400
    main = [make_row(f"r{i}", [rng.random(n) < 0.8], registry) for i in range(2)]
    shifted = make_row("other-test-set", [rng.random(n) < 0.8], registry,
                       key_list=np.array([f"other{i:06d}" for i in range(n)]))
    disagrees = make_row("disagrees", [rng.random(n) < 0.8], registry, raw_shift=0.01)
    reference_entry = Entry(track="B", name="published", provenance=Provenance.REFERENCE,
                            cells={TASK: Cell(TASK, CellState.VALUE, raw=0.5)}, published="0.500")
    reference = (formula.score_entry(reference_entry, [TASK], registry, MissingPolicy.ZERO), "", None)
    no_clips = make_row("no-clips", [rng.random(n) < 0.3], registry)
    no_clips = (no_clips[0], no_clips[1], bootstrap.ClipSource(reason="its result records no per-clip outputs"))
    ranked, resamples, ranks = run([*main, shifted, disagrees, reference, no_clips], registry)
    reasons = {k[1]: v for k, v in resamples.reasons.items()}
    assert set(resamples.rows) == {bootstrap.row_key(r.entry) for r, _, _ in main}
    assert "clips differ" in reasons["other-test-set"]
    assert "disagree" in reasons["disagrees"]
    assert "reference row" in reasons["published"]
    assert reasons["no-clips"] == "its result records no per-clip outputs"
    rows = by_name(ranked)
    assert rows["published"].upper_ahead is None and "published" not in {k[1] for k in ranks}
    # a pair with a row without clips: the plain rule (0.5 vs 0.3 apart by far: separate ranks)
    assert rows["no-clips"].rank > rows["published"].rank and rows["no-clips"].tie_group is None


def test_spec_is_checked(registry):
    with pytest.raises(UsageError):
        bootstrap.BootstrapSpec(resamples=-1)
    with pytest.raises(UsageError):
        bootstrap.BootstrapSpec(tie_confidence=1.0)
    assert not bootstrap.BootstrapSpec(resamples=0).enabled
    assert bootstrap.multiplicities(np.random.default_rng(0), 50, 30).sum(axis=1).tolist() == [50] * 30


def test_vectorised_equations_equal_the_scalar_ones(registry):
    rng = np.random.default_rng(7)
    for name in ("esc50", "fsd50k", "librispeech"):
        task = registry.get(name)
        values = np.r_[rng.uniform(-0.5, 1.5, 50), task.worst, task.best]
        expected = [task.normalise(float(v)) for v in values]
        assert formula.normalise_many(task, values).tolist() == pytest.approx(expected, abs=1e-15)
    # lower is better (EER: worst 1, best 0): v = (worst - M) / (worst - best), by hand
    lower = types.SimpleNamespace(name="eer-task", metric="EER", worst=1.0, best=0.0)
    values = rng.uniform(-0.2, 1.2, 20)
    assert formula.normalise_many(lower, values).tolist() == pytest.approx(
        [min(1.0, max(0.0, 1.0 - v)) for v in values], abs=1e-15)
    tasks = ("esc50", "cremad", "subway_broadcast")
    cells = {t: Cell(t, CellState.VALUE, raw=float(v)) for t, v in zip(tasks, rng.uniform(0, 1, 3))}
    row = formula.score_entry(Entry(track="B", name="x", provenance=Provenance.REFERENCE, cells=cells), tasks,
                              registry, MissingPolicy.ZERO)
    matrix = np.array([[c.normalised for c in row.cells]])
    assert formula.average_many([c.weight for c in row.cells], matrix)[0] == pytest.approx(row.score, abs=1e-15)



def test_adding_a_row_leaves_the_other_rows_resamples_as_they_were(registry):
    rng = np.random.default_rng(8)
    a = make_row("a", [rng.random(300) < 0.7, rng.random(300) < 0.72], registry, track="A")
    b = make_row("b", [rng.random(300) < 0.6, rng.random(300) < 0.61], registry, track="A")
    alone = run([a], registry, track="A")[1]
    together = run([b, a], registry, track="A")[1]
    key = bootstrap.row_key(a[0].entry)
    assert np.array_equal(alone.rows[key].scores, together.rows[key].scores)

"""The bootstrap's fast path computes exactly the reference's statistics: `fast_metrics` (mAP's
segment sums, the linear metrics' one product over every row) gives bit for bit what
`checker.clips.recompute` gives on the same weights, and a bootstrap scored with it has the same
resamples, intervals and ranks as one scored with the reference, seed for seed.

Cases are small random ones chosen to reach the corners: tied scores (within a class's positives,
and between positives and negatives), classes without positives, resamples that drop every
positive of a class or every clip, clips drawn zero times, and both of the reference's mAP
branches (few thresholds: an indicator product; many: cumulative sums).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from checker import clips as clipfile
from checker.clips import ClipRun
from harness.rank import bootstrap, fast_metrics, formula
from harness.rank.model import Cell, CellState, Entry, MissingPolicy, Provenance, Track
from harness.tasks.registry import load_registry
from tests.harness.rank.helpers import sha_of


def keys(n: int) -> np.ndarray:
    return np.array([f"clip{i:06d}" for i in range(n)])


def clip_run(metric: str, arrays: dict, run: int = 0, track: str = "B", task: str = "t") -> ClipRun:
    n = len(next(iter(arrays.values())))
    return ClipRun(task=task, track=track, run=run, seed=run, metric=metric, reported=0.0, keys=keys(n),
                   arrays=arrays)


def weights(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """Bootstrap multiplicities, plus the rows a bootstrap rarely makes: nothing drawn, one clip
    drawn n times, and sparse rows with most clips drawn zero times."""
    drawn = np.bincount((rng.integers(0, n, (b, n)) + np.arange(b)[:, None] * n).ravel(),
                        minlength=b * n).reshape(b, n)
    lone = np.zeros((1, n), dtype=np.int64)
    lone[0, rng.integers(n)] = n
    sparse = rng.integers(0, 3, (4, n)) * (rng.random((4, n)) < 0.1)
    return np.concatenate([drawn, np.zeros((1, n), dtype=np.int64), lone, sparse])


def map_arrays(rng: np.random.Generator, n: int, classes: int, levels: int | None, density: float) -> dict:
    target = (rng.random((n, classes)) < density).astype(np.uint8)
    target[:, 0] = 0  # a class without positives scores 0
    if classes > 2:
        target[:, 1] = 1  # a class of positives only
    if levels:  # few distinct scores: ties everywhere, positives tied with negatives
        scores = rng.integers(0, levels, (n, classes)).astype(np.float32) / levels
    else:
        scores = (rng.random((n, classes)) + 0.5 * target).astype(np.float32)
    return {"scores": scores, "target": target}


MAP_CASES = [  # (n, classes, score levels or None, positive density)
    (1, 1, None, 0.5), (2, 3, 2, 0.5), (7, 4, 3, 0.4), (20, 5, None, 0.2), (40, 6, 4, 0.3), (60, 8, None, 0.1),
    (97, 3, 5, 0.05), (150, 12, 20, 0.15), (300, 4, None, 0.02),
    (700, 3, None, 0.6),  # > 256 thresholds: the reference's cumulative-sum branch
    (900, 3, 1500, 0.6),  # ... with ties in it, positives tied with negatives too
]


@pytest.mark.parametrize("n, classes, levels, density", MAP_CASES)
def test_map_equals_the_reference_bit_for_bit(n, classes, levels, density):
    rng = np.random.default_rng(n * 100 + classes)
    run = clip_run("mAP", map_arrays(rng, n, classes, levels, density))
    w = weights(rng, n, 37)
    scorer = fast_metrics.RunScorer(run)
    plan = scorer._map_plan()
    assert plan is not None  # the fast path, not a fallback to the reference
    many = bool(np.any(plan.last - plan.first + 1 > clipfile._FEW_THRESHOLDS))
    assert many == (n >= 300)  # both of the reference's branches are reached
    got = scorer(w)
    assert np.array_equal(got, clipfile.recompute(run, w))
    again = scorer(w[5:9])  # the plan is kept: the same numbers for any subset of resamples
    assert np.array_equal(again, got[5:9])
    # one resample alone, as a Track A repeat drawn once gets it: numpy sums it in another order
    assert np.array_equal(scorer(w[3:4]), clipfile.recompute(run, w[3:4]))


def test_map_follows_the_reference_s_chunks_of_resamples(monkeypatch):
    """The reference evaluates CHUNK_ELEMENTS // n resamples at a time; a chunk of one resample is
    summed in another order where a class has many thresholds: the fast path follows it there."""
    rng = np.random.default_rng(8)
    n = 700
    run = clip_run("mAP", map_arrays(rng, n, 3, 1500, 0.6))
    w = weights(rng, n, 37)  # 43 resamples: chunks of 6, the last of one
    for rows in (6, 7, 1):
        monkeypatch.setattr(clipfile, "CHUNK_ELEMENTS", n * rows)
        assert np.array_equal(fast_metrics.RunScorer(run)(w), clipfile.recompute(run, w))


def test_map_blocks_do_not_move_a_number(monkeypatch):
    rng = np.random.default_rng(11)
    run = clip_run("mAP", map_arrays(rng, 120, 6, 7, 0.2))
    w = weights(rng, 120, 50)
    reference = clipfile.recompute(run, w)
    for block in (1, 3, 32, 1000):
        monkeypatch.setattr(fast_metrics, "MAP_BLOCK", block)
        assert np.array_equal(fast_metrics.RunScorer(run)(w), reference)


def linear_arrays(rng: np.random.Generator, metric: str, n: int, classes: int = 4) -> dict:
    if metric == "accuracy":
        target = rng.integers(0, 5, n)
        return {"pred": np.where(rng.random(n) < 0.6, target, (target + 1) % 5), "target": target}
    if metric.startswith("segmentf1"):
        shape = (n, classes)
        tp = rng.binomial(3, 0.4, shape) * (rng.random(shape) < 0.5)  # many 0/0 classes
        return {"tp": tp, "fp": rng.binomial(2, 0.3, shape), "fn": rng.binomial(2, 0.3, shape)}
    if metric == "recallatk_r1":
        captions = rng.integers(0, 6, n)
        return {"a2t_hit": rng.integers(0, 2, n), "t2a_hits": rng.binomial(captions, 0.4), "captions": captions}
    words = rng.integers(0, 30, n)  # clips without reference words too
    return {"errors": rng.binomial(words, 0.7) + (rng.random(n) < 0.05) * 40, "ref_words": words}


@pytest.mark.parametrize("metric", sorted(fast_metrics.LINEAR_METRICS))
@pytest.mark.parametrize("n", [1, 9, 83, 400])
def test_linear_metrics_in_one_product_equal_the_reference_bit_for_bit(metric, n):
    rng = np.random.default_rng(n)
    runs = [clip_run(metric, linear_arrays(rng, metric, n), run=r, track="A") for r in range(5)]
    assert all(fast_metrics.is_linear(r) for r in runs)
    w = weights(rng, n, 41)
    got = fast_metrics.LinearBatch(runs).evaluate(w)
    for run, values in zip(runs, got):
        assert np.array_equal(values, clipfile.recompute(run, w), equal_nan=True)


def test_what_the_fast_path_does_not_cover_is_the_reference():
    rng = np.random.default_rng(3)
    n = 60
    fold = np.arange(n) % 3
    cases = [
        clip_run("mAP", {**map_arrays(rng, n, 4, 5, 0.2), "fold": fold}),
        clip_run("accuracy", {**linear_arrays(rng, "accuracy", n), "fold": fold}),
        clip_run("EER", {"score": rng.random(n), "target": rng.integers(0, 2, n)}),
        clip_run("MSE", {"sq_error": rng.random(n)}),
    ]
    w = weights(rng, n, 20)
    for run in cases:
        assert not fast_metrics.is_linear(run)
        with pytest.raises(ValueError, match="not a linear run"):
            fast_metrics.LinearBatch([run])
        assert np.array_equal(fast_metrics.RunScorer(run)(w), clipfile.recompute(run, w), equal_nan=True)
    # weights far past a bootstrap's (rows summing to 2**24 and more): the reference's float sums
    # round there, so the reference it is
    huge = w * (2**24 // n + 1)
    for run in (clip_run("mAP", map_arrays(rng, n, 4, None, 0.2)), clip_run("accuracy", linear_arrays(rng, "accuracy", n))):
        assert np.array_equal(fast_metrics.RunScorer(run)(huge), clipfile.recompute(run, huge), equal_nan=True)
    big = clip_run("WER_inv", {"errors": np.full(n, 2**40), "ref_words": np.full(n, 2**41)})
    got = fast_metrics.LinearBatch([big]).evaluate(w * 2**10)
    assert np.array_equal(got[0], clipfile.recompute(big, w * 2**10), equal_nan=True)
    # weights the reference refuses are refused with its own error
    run = clip_run("mAP", map_arrays(rng, n, 4, None, 0.2))
    for bad in (w[:, :-1], w.astype(np.float64), -w):
        with pytest.raises(clipfile.ClipsError):
            fast_metrics.RunScorer(run)(bad)


# -- the bootstrap, end to end ----------------------------------------------------------------------

#: registry tasks of each metric the fast path covers, with generated per-clip arrays of n clips
TASKS = {"fsd50k": "mAP", "esc50": "accuracy", "desed": "segmentf1_macro", "maestro": "segmentf1_micro",
         "clotho": "recallatk_r1", "librispeech": "WER_inv"}
CLIPS = 90


def task_arrays(rng: np.random.Generator, metric: str) -> dict:
    if metric == "mAP":
        return map_arrays(rng, CLIPS, 9, 6, 0.15)
    return linear_arrays(rng, metric, CLIPS)


def rows_of(registry, track: str, repeats: int, reference: bool):
    """Rows and their sources; `reference`: scorers are `recompute` itself, as before the fast path."""
    rng = np.random.default_rng(21 + repeats)
    rows, sources = [], {}
    for s in range(4):
        name = f"sub{s}"
        clip_runs, cells = [], {}
        for task, metric in TASKS.items():
            values = []
            for r in range(repeats):
                made = ClipRun(task=task, track=track, run=r, seed=r, metric=metric, reported=0.0, keys=keys(CLIPS),
                               arrays=task_arrays(rng, metric))
                value = float(clipfile.recompute(made))
                clip_runs.append(ClipRun(task=task, track=track, run=r, seed=r, metric=metric, reported=value,
                                         keys=made.keys, arrays=made.arrays))
                values.append(value)
            cells[task] = Cell(task, CellState.VALUE, raw=sum(values) / len(values),
                               values=tuple(values) if repeats > 1 else ())
        entry = Entry(track=Track(track), name=name, provenance=Provenance.UNSIGNED, cells=cells, sha256=sha_of(name))
        rows.append(formula.score_entry(entry, list(TASKS), registry, MissingPolicy.ZERO))
        clips = bootstrap.from_clip_runs(clip_runs)
        if reference:
            by_task: dict = {}
            for r in clip_runs:
                by_task.setdefault((r.track, r.task), []).append(r)
            clips = {k: bootstrap.TaskClips(v.task, v.keys, tuple(functools.partial(clipfile.recompute, r)
                                                                   for r in by_task[k]), v.reported)
                     for k, v in clips.items()}
        sources[sha_of(name)] = bootstrap.ClipSource(clips=clips)
    return rows, sources


@pytest.mark.parametrize("track, repeats", [("B", 1), ("A", 3)])
def test_a_bootstrap_with_the_fast_path_has_the_reference_numbers(track, repeats):
    registry = load_registry()
    spec = bootstrap.BootstrapSpec(resamples=300, seed=5)
    found = {}
    for reference in (False, True):
        rows, sources = rows_of(registry, track, repeats, reference)
        if not reference:
            assert all(isinstance(s, fast_metrics.RunScorer) for src in sources.values()
                       for clips in src.clips.values() for s in clips.runs)
        resampled = bootstrap.resample_track(Track(track), rows, list(TASKS), registry, sources, spec)
        ranked = formula.rank_rows(rows, Track(track), resampled.ahead, spec.tie_confidence)
        found[reference] = (resampled, [r.upper_ahead for r in ranked], resampled.rank_stats(ranked))
    (fast, fast_ahead, fast_ranks), (slow, slow_ahead, slow_ranks) = found[False], found[True]
    assert fast.reasons == slow.reasons and set(fast.rows) == set(slow.rows) and len(fast.rows) == 4
    for key, row in fast.rows.items():
        assert np.array_equal(row.scores, slow.rows[key].scores)
        assert row.interval == slow.rows[key].interval and row.tasks == slow.rows[key].tasks
    assert fast_ahead == slow_ahead and fast_ranks == slow_ranks

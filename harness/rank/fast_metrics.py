"""`checker.clips.recompute` over many resamples at once, faster and to the same numbers (issue 23, item 4).

The bootstrap evaluates every row's metric on the same B resamples of a task's clips. The reference,
`checker.clips.recompute(run, weights)`, does it one row at a time: fine for correctness, too slow at
the organizers' scale (30 submissions x 27 tasks x real sizes), where macro mAP over 200 classes
dominated. Two things make the same numbers cheaper here:

- **Linear metrics** (accuracy, segment F1, R@1, WER): each is a few weighted sums of integer per-clip
  counts, then a few elementwise operations. Those sums are integers, below 2**53 for any bootstrap
  (checked per call), so float64 holds them exactly whatever the summation order: one matrix
  product over the columns of every row (`LinearBatch`) gives the reference's sums bit for bit, and
  the elementwise steps are the reference's own, in its order.
- **mAP** (`RunScorer`): per class, sklearn's average precision needs, at each threshold (a run of
  tied scores holding a positive), the drawn weight of all clips ranked at or above it and of the
  positives among them. Clips ranked below the last positive never count; the rest fall into
  segments between consecutive thresholds. The class sort and the segments are made once per run
  and reused for every chunk of resamples; per chunk, one gather of the multiplicities in segment
  order and one segment sum (`np.add.reduceat`) over all classes give the integer counts, and the
  float steps follow `checker.clips._binary_ap` operation for operation, down to the memory layout
  each of its two branches sums over (which fixes the order of the additions).

Everything else (EER, MSE, MAE, k-fold runs, weights the reference would refuse or whose sums it
would round) goes to the reference itself. tests/harness/rank/test_fast_metrics.py holds both paths
equal to it; `python bench/bootstrap.py --reference` prices the bootstrap without them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from checker import clips as clipfile

#: metrics that are elementwise functions of weighted sums of integer per-clip arrays
LINEAR_METRICS = frozenset({"accuracy", "segmentf1_macro", "segmentf1_micro", "recallatk_r1", "WER_inv"})
#: float64 holds every integer up to this exactly, so sums below it do not depend on their order
EXACT_INTEGER = 2**53
#: the reference sums mAP's weights in float32 below this many clips: exact while every sum is below it
EXACT_FLOAT32 = 2**24
#: resamples per block of mAP's float steps: fewer Python-level calls per resample as it grows
MAP_BLOCK = 64
#: resamples per gather of mAP's counts: the gathered multiplicities stay within the core's cache
GATHER_BLOCK = 16


def _weights_ok(weights: np.ndarray, n: int) -> bool:
    """What the reference accepts; anything else goes to it, so that it raises its own error."""
    return (isinstance(weights, np.ndarray) and weights.ndim == 2 and weights.shape[1] == n
            and weights.dtype.kind in "iu" and (weights.size == 0 or int(weights.min()) >= 0))


def _most_drawn(weights: np.ndarray) -> float:
    """The largest row sum (a bootstrap's is n): it bounds every weighted count of the row. In float64,
    which cannot overflow, and is exact wherever the bounds it is compared with are close."""
    return float(weights.sum(axis=1, dtype=np.float64).max()) if weights.size else 0.0


# -- linear metrics ------------------------------------------------------------------------------


def _columns(run: clipfile.ClipRun) -> dict[str, np.ndarray] | None:
    """The per-clip integer arrays the run's metric sums, as float64 [n, k], or None where the
    fast path does not apply (a fold, non-integer arrays)."""
    if run.metric not in LINEAR_METRICS or "fold" in run.arrays:
        return None
    a = run.arrays
    if run.metric == "accuracy":
        # the weighted sum of a boolean: correct clips drawn
        columns = {"correct": (a["pred"] == a["target"])[:, None]}
    elif run.metric.startswith("segmentf1"):
        columns = {k: a[k] for k in ("tp", "fp", "fn")}
    elif run.metric == "recallatk_r1":
        columns = {k: a[k][:, None] for k in ("a2t_hit", "t2a_hits", "captions")}
    else:
        columns = {k: a[k][:, None] for k in ("errors", "ref_words")}
    out = {}
    for name, value in columns.items():
        if value.dtype.kind not in "iub":
            return None
        out[name] = np.asarray(value, dtype=np.float64)
    return out


def is_linear(run: clipfile.ClipRun) -> bool:
    return _columns(run) is not None


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _f1_of(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), 0.0)


def _finish(metric: str, sums: Mapping[str, np.ndarray], drawn: np.ndarray) -> np.ndarray:
    """The reference's elementwise steps after its weighted sums (`drawn`: clips per resample)."""
    if metric == "accuracy":
        return _ratio(sums["correct"][:, 0], drawn)
    if metric == "segmentf1_macro":
        # a fresh C-ordered [b, C] array, as the reference's: .mean reduces it in the same order
        return _f1_of(sums["tp"], sums["fp"], sums["fn"]).mean(axis=1)
    if metric == "segmentf1_micro":
        return _f1_of(*(sums[k].sum(axis=1) for k in ("tp", "fp", "fn")))
    if metric == "recallatk_r1":
        a2t = _ratio(sums["a2t_hit"][:, 0], drawn)
        t2a = _ratio(sums["t2a_hits"][:, 0], sums["captions"][:, 0])
        return (a2t + t2a) / 2
    wer = _ratio(sums["errors"][:, 0], sums["ref_words"][:, 0])
    return np.maximum(0.0, 1.0 - wer)


class LinearBatch:
    """Several runs of linear metrics on one task's clips, evaluated with one matrix product."""

    def __init__(self, runs: Sequence[clipfile.ClipRun]) -> None:
        self.runs = tuple(runs)
        if not self.runs:
            raise ValueError("LinearBatch needs at least one run")
        n = self.runs[0].clips
        blocks, self._layout = [], []
        start = 0
        for run in self.runs:
            columns = _columns(run)
            if columns is None or run.clips != n:
                raise ValueError(f"run {run.task!r} {run.track}/{run.run} ({run.metric}) is not a linear run "
                                 f"on {n} clips")
            where = {}
            for name, value in columns.items():
                where[name] = (start, start + value.shape[1])
                start += value.shape[1]
                blocks.append(value)
            self._layout.append(where)
        self.n = n
        self._matrix = np.ascontiguousarray(np.concatenate(blocks, axis=1))  # [n, all columns]
        self._largest = float(np.abs(self._matrix).max()) if self._matrix.size else 0.0

    def evaluate(self, weights: np.ndarray) -> list[np.ndarray]:
        """Each run's metric [b] on `weights` [b, n] (clip multiplicities), as `recompute` gives it."""
        if not _weights_ok(weights, self.n) or _most_drawn(weights) * max(1.0, self._largest) >= EXACT_INTEGER / 2:
            # refused, or sums that float64 might round (then in an order-dependent way; half the
            # bound leaves room for the rounding of the bound itself): the reference's
            return [clipfile.recompute(run, weights) for run in self.runs]
        w = weights.astype(np.float64)
        sums = w @ self._matrix  # [b, all columns]: integers, exact
        drawn = w.sum(axis=1)
        out = []
        for run, where in zip(self.runs, self._layout):
            own = {name: np.ascontiguousarray(sums[:, a:b]) for name, (a, b) in where.items()}
            out.append(_finish(run.metric, own, drawn))
        return out


# -- mAP -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _MapPlan:
    """Per run, for every class with a positive: its thresholds' segments in score order.

    `order` holds, class after class, the clips ranked at or above the class's last threshold, best
    first; `starts` where each threshold's segment begins in it (one per threshold, classes
    concatenated). `positives` and `positive_starts` are the same for the positive clips only.
    `first`/`last`: each class's first and last threshold among the concatenated ones.
    """

    classes: int  # all classes, those without positives included (they score 0)
    order: np.ndarray
    starts: np.ndarray
    positives: np.ndarray
    positive_starts: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def build(cls, scores: np.ndarray, target: np.ndarray) -> _MapPlan:
        n, classes = scores.shape
        order, starts, positives, positive_starts, first, last = [], [], [], [], [], []
        placed = placed_positive = thresholds_so_far = 0
        for c in range(classes):
            # exactly the reference's ranking: float64 scores, stable descending sort, tied runs
            score = scores[:, c].astype(np.float64)
            positive = target[:, c] > 0
            ranked = np.argsort(-score, kind="stable")
            run_of_rank = np.r_[0, np.cumsum(np.diff(score[ranked]) != 0)]
            positive_ranks = np.flatnonzero(positive[ranked])
            if positive_ranks.size == 0:
                continue
            thresholds = np.unique(run_of_rank[positive_ranks])
            ends = np.r_[np.flatnonzero(np.diff(run_of_rank)), n - 1][thresholds]  # last rank of each
            order.append(ranked[:ends[-1] + 1])
            starts.append(placed + np.r_[0, ends[:-1] + 1])
            placed += int(ends[-1]) + 1
            positives.append(ranked[positive_ranks])
            new_threshold = np.flatnonzero(np.diff(run_of_rank[positive_ranks])) + 1
            positive_starts.append(placed_positive + np.r_[0, new_threshold])
            placed_positive += positive_ranks.size
            first.append(thresholds_so_far)
            thresholds_so_far += thresholds.size
            last.append(thresholds_so_far - 1)

        def joined(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts).astype(np.intp) if parts else np.zeros(0, dtype=np.intp)

        return cls(classes=classes, order=joined(order), starts=joined(starts), positives=joined(positives),
                   positive_starts=joined(positive_starts), first=np.array(first, dtype=np.intp),
                   last=np.array(last, dtype=np.intp))

    def evaluate(self, weights: np.ndarray) -> np.ndarray:
        b = weights.shape[0]
        total = np.zeros(b)
        if not self.first.size:
            return total / self.classes
        # The reference works in chunks of resamples; where a chunk holds one resample, numpy lays its
        # many-threshold arrays out differently and sums them in another order (see _block).
        chunk = max(1, clipfile.CHUNK_ELEMENTS // max(1, weights.shape[1]))
        for first in range(0, b, chunk):
            end = min(b, first + chunk)
            for start in range(first, end, MAP_BLOCK):
                stop = min(end, start + MAP_BLOCK)
                total[start:stop] = self._block(weights[start:stop], alone=end - first == 1)
        return total / self.classes

    def _counts(self, w: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """[b, thresholds]: per class, the drawn weight of its segments cumulated from its best clip."""
        segments = np.empty((w.shape[0], starts.size), dtype=np.int64)
        for start in range(0, w.shape[0], GATHER_BLOCK):
            block = w[start:start + GATHER_BLOCK]
            np.add.reduceat(block.take(order, axis=1), starts, axis=1, out=segments[start:start + GATHER_BLOCK])
        cumulated = np.cumsum(segments, axis=1)
        # each class starts from 0: take off what the classes before it added
        before = np.zeros((w.shape[0], self.first.size), dtype=cumulated.dtype)
        before[:, 1:] = cumulated[:, self.last[:-1]]
        return cumulated - np.repeat(before, self.last - self.first + 1, axis=1)

    def _block(self, w: np.ndarray, alone: bool) -> np.ndarray:
        w = w.astype(np.int64, copy=False)
        everything = self._counts(w, self.order, self.starts).astype(np.float64)
        hits = self._counts(w, self.positives, self.positive_starts).astype(np.float64)
        # the reference's np.diff(hits, prepend=0.0) per class: h0 - 0.0 is h0
        gained = np.diff(hits, axis=1, prepend=0.0)
        gained[:, self.first] = hits[:, self.first]
        positives = hits[:, self.last]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(everything > 0, hits / np.where(everything > 0, everything, 1.0), 0.0)
            product = gained * precision
            summed = np.empty_like(positives)
            for i, (a, z) in enumerate(zip(self.first.tolist(), self.last.tolist())):
                if z + 1 - a <= clipfile._FEW_THRESHOLDS or alone:
                    # The reference's product is C-ordered there (matrix products), or a single row:
                    # numpy sums each row pairwise, as it does a strided slice of rows.
                    summed[:, i] = product[:, a:z + 1].sum(axis=1)
                else:
                    # Many thresholds: its arrays come from fancy indexing (`x[:, last]`), which numpy
                    # lays out in F order, and a row of an F-ordered array is summed in sequence.
                    summed[:, i] = np.cumsum(product[:, a:z + 1], axis=1)[:, -1]
            ap = np.where(positives > 0, summed / np.where(positives > 0, positives, 1.0), 0.0)
        ap = np.maximum(ap, 0.0)
        # the reference adds class after class from 0.0; cumsum adds in that order (0.0 + x is x)
        return np.cumsum(ap, axis=1)[:, -1]


class RunScorer:
    """A bootstrap scorer for one run: `scorer(weights)` equals `checker.clips.recompute(run, weights)`.

    mAP without folds takes the fast path (its plan made on first use, then kept); linear runs are
    batched across rows by the bootstrap (`LinearBatch`); anything else is the reference."""

    def __init__(self, run: clipfile.ClipRun) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._plan: _MapPlan | None = None

    @property
    def linear(self) -> bool:
        return is_linear(self.run)

    def _map_plan(self) -> _MapPlan | None:
        run = self.run
        if run.metric != "mAP" or "fold" in run.arrays or run.arrays["scores"].shape[1] == 0:
            return None
        with self._lock:
            if self._plan is None:
                self._plan = _MapPlan.build(run.arrays["scores"], run.arrays["target"])
            return self._plan

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        plan = self._map_plan()
        if plan is None or not _weights_ok(weights, self.run.clips) or _most_drawn(weights) >= EXACT_FLOAT32:
            # the fast path counts exactly; past 2**24 the reference's float32 counts would round
            return clipfile.recompute(self.run, weights)
        return plan.evaluate(weights)

    def __repr__(self) -> str:
        return f"RunScorer({self.run.task!r}, track {self.run.track}, run {self.run.run}, {self.run.metric})"

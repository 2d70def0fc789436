"""Per-clip outputs of a scored task: what X-ARES's metric saw, per test clip, to recompute it.

X-ARES reports one number per task and track. To say how much of a difference between two
submissions is luck of the test set (issue 23's bootstrap), the score stage keeps, for each Track A
repeat and for Track B, the per-clip data the metric is a function of. `recompute(run)` rebuilds the
reported value from it (equal within `PARITY_TOLERANCE`, checked where the file is made), and
`recompute(run, weights)` evaluates it on resamples of the clips, `weights[b, i]` being how often
clip `i` is drawn in resample `b`, all resamples at once.

What is stored per metric (first axis = clip; `fold` is optional for every metric):

    accuracy            pred, target (int)            ignite Accuracy: share of argmax == target
    mAP                 scores [n, C] float32, target [n, C] uint8
                                                      sklearn average_precision_score, macro over C;
                                                      a class with no positive scores 0, as there
    segmentf1_macro     tp, fp, fn [n, C] int         sklearn f1_score on 1 s segments, the counts of
    segmentf1_micro                                   each clip's segments (padding included, as X-ARES
                                                      pools padded batches); 0/0 counts 0, as sklearn
    recallatk_r1        a2t_hit, t2a_hits, captions   R@1 both ways, averaged. The gallery (all test
                        (int)                          clips) is fixed: a resample reweighs queries only
    WER_inv             errors, ref_words (int)       jiwer's corpus WER (S+D+I over reference words),
                                                      scored max(0, 1 - WER)
    EER                 score (float), target (int)   sklearn roc_curve with drop_intermediate; EER is
                                                      the mean of FPR and FNR where they are closest
    MSE / MAE           sq_error / abs_error (float)  ignite: error summed over a clip's elements,
                                                      averaged over clips
    fold (any metric)   int                           k-fold tasks: X-ARES averages the folds' metrics,
                                                      so `recompute` does too (over folds that still
                                                      have clips in a resample)

Not supported: `frame_mAP` (no X-ARES 0.1.3 task and no registry task uses it: its rows are frames,
not clips). `recompute` refuses any metric outside `SUPPORTED_METRICS` by name.

The file: `np.savez_compressed`, members `index` (the UTF-8 JSON index, as uint8, described by
harness/schemas/clips.schema.json) and `<i>.keys`, `<i>.<array>` per run `i`; read back with
`allow_pickle=False` after its size and every member's size are checked against `MAX_CLIPS_BYTES`.
numpy only: this module runs in the trusted runtime image (writing) and on the host (reading,
bootstrap), and must not import the harness.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

CLIPS_NAME = "clips.npz"
#: the `schema_version` of the index; equal to harness.schemas.SCHEMA_VERSION (a test holds them together)
SCHEMA_VERSION = 1
FORMAT = "aecc-clips"
#: the recomputed metric equals X-ARES's reported value within this, or the run is not kept
PARITY_TOLERANCE = 1e-6
#: a clips file, and each member once decompressed, is refused above this (the file is made from
#: per-clip numbers; even 10,000 clips x 527 float32 scores x 6 runs is ~130 MB)
MAX_CLIPS_BYTES = 2 * 1024**3
TRACKS = ("A", "B")
OPTIONAL_ARRAYS = ("fold",)
#: resamples are evaluated in chunks of at most this many (resample x clip) elements
CHUNK_ELEMENTS = 1 << 24


class ClipsError(ValueError):
    """A clips file or run that is not what this module writes, or a metric it cannot recompute.
    The message says what was expected, what was found, and what to do."""


def _fail(what: str, expected: str, found: str, fix: str) -> ClipsError:
    return ClipsError(f"{what}: expected {expected}; found {found}. {fix}")


@dataclass(frozen=True)
class _ArraySpec:
    kind: str  # numpy dtype kinds accepted: "i" int, "u" unsigned, "f" float, "b" bool
    ndim: int


_INT, _FLOAT = "iub", "f"

#: metric -> the arrays its per-clip data is made of (all share the first axis, the clips)
_SPECS: dict[str, dict[str, _ArraySpec]] = {
    "accuracy": {"pred": _ArraySpec(_INT, 1), "target": _ArraySpec(_INT, 1)},
    "mAP": {"scores": _ArraySpec(_FLOAT, 2), "target": _ArraySpec(_INT, 2)},
    "segmentf1_macro": {"tp": _ArraySpec(_INT, 2), "fp": _ArraySpec(_INT, 2), "fn": _ArraySpec(_INT, 2)},
    "segmentf1_micro": {"tp": _ArraySpec(_INT, 2), "fp": _ArraySpec(_INT, 2), "fn": _ArraySpec(_INT, 2)},
    "recallatk_r1": {"a2t_hit": _ArraySpec(_INT, 1), "t2a_hits": _ArraySpec(_INT, 1),
                     "captions": _ArraySpec(_INT, 1)},
    "WER_inv": {"errors": _ArraySpec(_INT, 1), "ref_words": _ArraySpec(_INT, 1)},
    "EER": {"score": _ArraySpec(_FLOAT, 1), "target": _ArraySpec(_INT, 1)},
    "MSE": {"sq_error": _ArraySpec(_FLOAT, 1)},
    "MAE": {"abs_error": _ArraySpec(_FLOAT, 1)},
}
SUPPORTED_METRICS: frozenset[str] = frozenset(_SPECS)


def arrays_for(metric: str) -> tuple[str, ...]:
    """The array names a run of `metric` must carry (besides the optional `fold`)."""
    _check_metric(metric)
    return tuple(_SPECS[metric])


def _check_metric(metric: str) -> None:
    if metric not in _SPECS:
        raise _fail(f"metric {metric!r}", f"one of {sorted(SUPPORTED_METRICS)}", repr(metric),
                    "Per-clip data exists only for these; a task with another metric is scored without clips "
                    "(frame_mAP's rows are frames, not clips).")


@dataclass(frozen=True)
class ClipRun:
    """One scored evaluation of one task: Track B, or one Track A repeat, with its per-clip data."""

    task: str
    track: str
    run: int
    seed: int | None
    metric: str
    reported: float
    keys: np.ndarray
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"clip run {self.task!r} track {self.track} run {self.run}"
        if not isinstance(self.task, str) or not self.task:
            raise _fail("clip run", "a task name", repr(self.task), "Pass the task's X-ARES name.")
        if self.track not in TRACKS:
            raise _fail(where, "track 'A' or 'B'", repr(self.track), "Track B has one run, Track A one per repeat.")
        if isinstance(self.run, bool) or not isinstance(self.run, int) or self.run < 0 or (
                self.track == "B" and self.run != 0):
            raise _fail(where, "run >= 0 (0 for Track B)", repr(self.run), "Number Track A repeats from 0.")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise _fail(where, "an int seed or None", repr(self.seed), "Pass the seed the run used.")
        _check_metric(self.metric)
        reported = float(self.reported)
        if not math.isfinite(reported):
            raise _fail(where, "a finite reported value", repr(self.reported), "Keep no clips for a failed run.")
        object.__setattr__(self, "reported", reported)
        keys = np.asarray(self.keys)
        if keys.ndim != 1 or keys.dtype.kind != "U" or len(keys) == 0:
            raise _fail(where, "keys: a non-empty 1-D str array", f"{keys.dtype} {keys.shape}",
                        "Pass the clip ids (canonical_order sorts them).")
        if len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1])):
            raise _fail(where, "keys sorted and unique", "unsorted or repeated keys",
                        "Put the run in canonical order with canonical_order().")
        n = len(keys)
        spec = _SPECS[self.metric]
        names = set(self.arrays)
        missing, extra = set(spec) - names, names - set(spec) - set(OPTIONAL_ARRAYS)
        if missing or extra:
            raise _fail(where, f"arrays {sorted(spec)} (+ optional {list(OPTIONAL_ARRAYS)})",
                        f"missing {sorted(missing)}, unexpected {sorted(extra)}", "Pass exactly the metric's arrays.")
        checked = {}
        for name, value in self.arrays.items():
            want = spec.get(name, _ArraySpec(_INT, 1))
            arr = np.array(value, copy=True)
            if arr.dtype.kind not in want.kind or arr.ndim != want.ndim or arr.shape[0] != n:
                raise _fail(f"{where} array {name!r}", f"{want.ndim}-D, dtype kind in {want.kind!r}, {n} rows",
                            f"{arr.dtype} {arr.shape}", "Build the arrays in the order of the keys.")
            if arr.dtype.kind == "f" and not bool(np.isfinite(arr).all()):
                raise _fail(f"{where} array {name!r}", "finite values", "NaN or Inf",
                            "X-ARES cannot have scored this run either; keep no clips for it.")
            if arr.dtype.kind in "iu" and arr.size and int(arr.min()) < 0 and name not in ("pred", "target"):
                raise _fail(f"{where} array {name!r}", "counts >= 0", f"minimum {int(arr.min())}", "Pass counts.")
            arr.setflags(write=False)
            checked[name] = arr
        if self.metric.startswith("segmentf1") and not (
                checked["tp"].shape == checked["fp"].shape == checked["fn"].shape):
            raise _fail(where, "tp, fp, fn of one shape", str([checked[k].shape for k in ("tp", "fp", "fn")]),
                        "Count all three per clip and class.")
        if self.metric == "mAP" and checked["scores"].shape != checked["target"].shape:
            raise _fail(where, "scores and target of one shape",
                        f"{checked['scores'].shape} vs {checked['target'].shape}", "Pass one column per class.")
        if self.metric == "recallatk_r1" and bool(np.any(checked["t2a_hits"] > checked["captions"])):
            raise _fail(where, "t2a_hits <= captions", "more hits than captions", "Count hits per caption.")
        keys = keys.copy()
        keys.setflags(write=False)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "arrays", MappingProxyType(checked))

    @property
    def clips(self) -> int:
        return len(self.keys)

    def index_entry(self) -> dict[str, Any]:
        return {
            "task": self.task, "track": self.track, "run": self.run, "seed": self.seed, "metric": self.metric,
            "reported": self.reported, "clips": self.clips,
            "arrays": {name: {"dtype": arr.dtype.str, "shape": list(arr.shape)}
                       for name, arr in sorted(self.arrays.items())},
        }


def canonical_order(keys: Sequence[str] | np.ndarray, arrays: Mapping[str, Any]) -> tuple[np.ndarray, dict]:
    """`keys` sorted, and every array's rows permuted the same way: two runs of a task then align."""
    keys = np.asarray(keys, dtype=str)
    order = np.argsort(keys, kind="stable")
    return keys[order], {name: np.asarray(value)[order] for name, value in arrays.items()}


# -- the file ---------------------------------------------------------------------------------------


def write_clips(path: Path | str, runs: Iterable[ClipRun]) -> Path:
    """Write `runs` to `path` (atomically: a temporary file beside it, then a rename)."""
    runs = list(runs)
    seen = set()
    for run in runs:
        if not isinstance(run, ClipRun):
            raise _fail("write_clips", "ClipRun values", type(run).__name__, "Build each run as a ClipRun.")
        ident = (run.task, run.track, run.run)
        if ident in seen:
            raise _fail("write_clips", "one run per (task, track, run)", f"{ident} twice", "Drop the duplicate.")
        seen.add(ident)
    index = {"schema_version": SCHEMA_VERSION, "format": FORMAT, "runs": [r.index_entry() for r in runs]}
    members: dict[str, np.ndarray] = {"index": np.frombuffer(json.dumps(index, sort_keys=True).encode(), np.uint8)}
    for i, run in enumerate(runs):
        members[f"{i}.keys"] = run.keys
        for name, arr in run.arrays.items():
            members[f"{i}.{name}"] = arr
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:  # a file object: savez would append ".npz" to a name
            np.savez_compressed(fh, **members)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _schema_path() -> Path:
    # Beside checker/ in the checkout and in site-packages alike; absent in the runtime image, which
    # only writes clips files (the dataclass checks apply there as here).
    return Path(__file__).resolve().parent.parent / "harness" / "schemas" / "clips.schema.json"


def _validate_index(index: Any, where: str) -> None:
    schema_file = _schema_path()
    if schema_file.is_file():
        import jsonschema

        errors = sorted(jsonschema.Draft202012Validator(json.loads(schema_file.read_text())).iter_errors(index),
                        key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            at = "/".join(str(p) for p in first.absolute_path) or "(top)"
            raise _fail(where, f"an index following {schema_file.name}", f"at {at}: {first.message}",
                        "The file was not written by write_clips or was altered; rescore the submission.")
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("runs"), list):
        raise _fail(where, f"an {FORMAT} index", repr(index)[:200], "Rescore the submission.")


def read_clips(path: Path | str, max_bytes: int = MAX_CLIPS_BYTES) -> tuple[ClipRun, ...]:
    """Every run in the clips file at `path`, checked (sizes, index schema, arrays) on the way in."""
    path = Path(path)
    where = f"clips file {path}"
    size = path.stat().st_size
    if size > max_bytes:
        raise _fail(where, f"at most {max_bytes} bytes", f"{size}", "This is not a clips file the harness wrote.")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise _fail(where, "an npz (zip) archive", str(exc), "Rescore the submission to write it again.") from None
    big = [i.filename for i in infos if i.file_size > max_bytes]
    if big or sum(i.file_size for i in infos) > max_bytes:
        raise _fail(where, f"members totalling at most {max_bytes} bytes decompressed", f"{big or 'too much'}",
                    "This is not a clips file the harness wrote.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _fail(where, "numeric arrays readable without pickle", str(exc)[:200],
                    "Rescore the submission to write it again.") from None
    if "index" not in data:
        raise _fail(where, "an 'index' member", sorted(data)[:10].__repr__(), "Rescore the submission.")
    try:
        index = json.loads(data.pop("index").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(where, "a JSON index", str(exc), "Rescore the submission.") from None
    _validate_index(index, where)
    expected = set()
    runs = []
    for i, entry in enumerate(index["runs"]):
        names = list(entry["arrays"])
        expected.update([f"{i}.keys"] + [f"{i}.{n}" for n in names])
        missing = [m for m in [f"{i}.keys"] + [f"{i}.{n}" for n in names] if m not in data]
        if missing:
            raise _fail(where, f"the members the index lists for run {i}", f"missing {missing}", "Rescore.")
        arrays = {n: data[f"{i}.{n}"] for n in names}
        for n, arr in arrays.items():
            described = entry["arrays"][n]
            if arr.dtype.str != described["dtype"] or list(arr.shape) != described["shape"]:
                raise _fail(f"{where} run {i} array {n!r}", f"{described['dtype']} {described['shape']}",
                            f"{arr.dtype.str} {list(arr.shape)}", "The file was altered; rescore.")
        run = ClipRun(task=entry["task"], track=entry["track"], run=entry["run"], seed=entry["seed"],
                      metric=entry["metric"], reported=entry["reported"], keys=data[f"{i}.keys"], arrays=arrays)
        if run.clips != entry["clips"]:
            raise _fail(f"{where} run {i}", f"{entry['clips']} clips", f"{run.clips}", "The file was altered.")
        runs.append(run)
    extra = sorted(set(data) - expected)
    if extra:
        raise _fail(where, "only the members the index lists", f"also {extra[:5]}", "The file was altered; rescore.")
    return tuple(runs)


# -- recomputing ------------------------------------------------------------------------------------


def recompute(run: ClipRun, weights: np.ndarray | None = None) -> float | np.ndarray:
    """The run's metric from its per-clip data.

    `weights=None`: one float, equal to `run.reported` within `PARITY_TOLERANCE`.
    `weights`: int array [B, n_clips] of clip multiplicities (rows of a bootstrap resample) -> float [B].
    A resample with no weight on a quantity the metric divides by (no positive for EER, no reference
    word for WER) gives NaN for that resample.
    """
    _check_metric(run.metric)
    n = run.clips
    if weights is None:
        w = np.ones((1, n), dtype=np.float64)
    else:
        w = np.asarray(weights)
        if w.ndim != 2 or w.shape[1] != n or w.dtype.kind not in "iu":
            raise _fail("recompute weights", f"an int array [B, {n}]", f"{w.dtype} {w.shape}",
                        "Pass clip multiplicities, one row per resample.")
        if w.size and int(w.min()) < 0:
            raise _fail("recompute weights", "multiplicities >= 0", f"minimum {int(w.min())}", "Pass counts.")
        w = w.astype(np.float64)
    metric = _METRICS[run.metric]
    # every metric holds at most a few [B, clips] arrays at once (per class for mAP, [B, C] results)
    chunk = max(1, CHUNK_ELEMENTS // max(1, n))
    out = np.empty(w.shape[0], dtype=np.float64)
    folds = run.arrays.get("fold")
    for start in range(0, w.shape[0], chunk):
        wc = w[start:start + chunk]
        if folds is None:
            out[start:start + chunk] = metric(run.arrays, wc)
        else:
            out[start:start + chunk] = _fold_mean(metric, run.arrays, folds, wc)
    return float(out[0]) if weights is None else out


def _fold_mean(metric: Callable, arrays: Mapping[str, np.ndarray], folds: np.ndarray, w: np.ndarray) -> np.ndarray:
    # X-ARES scores a k-fold task as the plain mean of its folds' metrics (task.run_mlp/run_knn).
    values, present = [], []
    for fold in np.unique(folds):
        mask = folds == fold
        sub = {name: arr[mask] for name, arr in arrays.items() if name != "fold"}
        wf = w[:, mask]
        present.append(wf.sum(axis=1) > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            values.append(metric(sub, wf))
    values, present = np.array(values), np.array(present)
    total = np.where(present, values, 0.0).sum(axis=0)
    count = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _accuracy(a, w):
    correct = (a["pred"] == a["target"]).astype(np.float64)
    return _ratio(w @ correct, w.sum(axis=1))


def _mean_of(name):
    def metric(a, w):
        return _ratio(w @ a[name].astype(np.float64), w.sum(axis=1))
    return metric


def _wer_inv(a, w):
    wer = _ratio(w @ a["errors"].astype(np.float64), w @ a["ref_words"].astype(np.float64))
    return np.maximum(0.0, 1.0 - wer)


def _recall_r1(a, w):
    a2t = _ratio(w @ a["a2t_hit"].astype(np.float64), w.sum(axis=1))
    t2a = _ratio(w @ a["t2a_hits"].astype(np.float64), w @ a["captions"].astype(np.float64))
    return (a2t + t2a) / 2


def _f1_counts(a, w):
    tp, fp, fn = (w @ a[k].astype(np.float64) for k in ("tp", "fp", "fn"))  # [B, C] each
    return tp, fp, fn


def _f1_of(tp, fp, fn):
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), 0.0)  # sklearn: 0/0 -> 0


def _f1_macro(a, w):
    return _f1_of(*_f1_counts(a, w)).mean(axis=1)


def _f1_micro(a, w):
    tp, fp, fn = (x.sum(axis=1) for x in _f1_counts(a, w))
    return _f1_of(tp, fp, fn)


def _average_precision(a, w):
    """Macro AP over classes: per class sort once, then weighted cumulative sums per resample."""
    scores, target = a["scores"], a["target"]
    # The weights are counts, and every sum below is a count of drawn clips: an integer at most the
    # number of clips, exact in float32 below 2**24 (half the bytes to move, and BLAS's fastest type).
    w32 = np.ascontiguousarray(w, dtype=np.float32 if w.shape[1] < 2**24 else np.float64)
    scratch = np.empty_like(w32)
    total = np.zeros(w.shape[0])
    for c in range(scores.shape[1]):
        total += _binary_ap(scores[:, c].astype(np.float64), target[:, c] > 0, w32, scratch)
    return total / scores.shape[1]


#: below this many thresholds (runs of tied scores holding a positive) the indicator product is faster
_FEW_THRESHOLDS = 256


def _binary_ap(score: np.ndarray, positive: np.ndarray, w: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """sklearn's average precision (sum over thresholds of recall gain x precision) for each row of
    `w` ([B, clips] weights). Recall grows only at runs of tied scores that hold a positive, so only
    those thresholds count: at each, the weight of all clips ranked at or above it (precision's
    denominator) and of the positives among them (numerator). Few thresholds: one product of "ranked
    at or above" indicators with the weights; many: weighted cumulative sums in score order."""
    order = np.argsort(-score, kind="stable")
    run_of_rank = np.r_[0, np.cumsum(np.diff(score[order]) != 0)]  # runs of tied scores, best first
    run = np.empty(len(score), dtype=np.int64)
    run[order] = run_of_rank
    thresholds = np.unique(run[positive])
    if thresholds.size == 0:
        return np.zeros(w.shape[0])  # sklearn: a class without positives scores 0
    if thresholds.size <= _FEW_THRESHOLDS:
        upto = run[:, None] <= thresholds[None, :]  # [clips, T]
        everything = (w @ upto.astype(w.dtype)).astype(np.float64)  # [B, T]
        hits = (w @ (upto & positive[:, None]).astype(w.dtype)).astype(np.float64)
    else:
        last = np.r_[np.flatnonzero(np.diff(run_of_rank)), len(score) - 1][thresholds]  # last rank of each
        np.take(w, order, axis=1, out=scratch)
        np.cumsum(scratch, axis=1, out=scratch)
        everything = scratch[:, last].astype(np.float64)
        ranks = np.flatnonzero(positive[order])
        hits_at = np.cumsum(w[:, order[ranks]], axis=1, dtype=np.float64)
        # the last positive of each threshold's run
        hits = hits_at[:, np.r_[np.flatnonzero(np.diff(run_of_rank[ranks])), len(ranks) - 1]]
    gained = np.diff(hits, axis=1, prepend=0.0)
    positives = hits[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(everything > 0, hits / np.where(everything > 0, everything, 1.0), 0.0)
        ap = np.where(positives > 0, (gained * precision).sum(axis=1) / np.where(positives > 0, positives, 1.0), 0.0)
    return np.maximum(ap, 0.0)  # a resample without positives of the class: 0, as sklearn


def _eer(a, w):
    # Per resample: sklearn drops zero-weight samples and intermediate ROC points, both depending on
    # the weights, so the curve is built row by row (vectorised over clips).
    score = a["score"].astype(np.float64)
    positive = a["target"] == 1
    return np.array([_eer_one(score, positive, row) for row in w])


def _eer_one(score: np.ndarray, positive: np.ndarray, weight: np.ndarray) -> float:
    keep = weight != 0
    score, positive, weight = score[keep], positive[keep], weight[keep]
    if score.size == 0:
        return math.nan
    order = np.argsort(-score, kind="stable")
    s, y, wt = score[order], positive[order].astype(np.float64), weight[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y * wt)[ends]
    fps = np.cumsum((1.0 - y) * wt)[ends]
    if len(fps) > 2:
        kept = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps = tps[kept], fps[kept]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    if fps[-1] <= 0 or tps[-1] <= 0:
        return math.nan
    fpr, fnr = fps / fps[-1], 1.0 - tps / tps[-1]
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


_METRICS: dict[str, Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]] = {
    "accuracy": _accuracy,
    "mAP": _average_precision,
    "segmentf1_macro": _f1_macro,
    "segmentf1_micro": _f1_micro,
    "recallatk_r1": _recall_r1,
    "WER_inv": _wer_inv,
    "EER": _eer,
    "MSE": _mean_of("sq_error"),
    "MAE": _mean_of("abs_error"),
}

def parity_gap(run: ClipRun) -> float:
    """|recompute(run) - run.reported|: at most PARITY_TOLERANCE for a run worth keeping."""
    value = recompute(run)
    return abs(value - run.reported) if math.isfinite(value) else math.inf

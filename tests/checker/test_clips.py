"""Per-clip outputs (checker/clips.py): every supported metric recomputes to a hand-derived value, a
weighted (bootstrap) recompute equals recomputing on the explicitly resampled clips, and a clips file
round-trips exactly while anything altered, oversized or unsupported is refused with a reason.

Parity with X-ARES's own metric code is checked where X-ARES is installed, in the runtime image
(tests/harness/stages/test_score_clips.py); here the reference values are derived by hand."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from checker import clips
from checker.clips import ClipRun, ClipsError, canonical_order, read_clips, recompute, write_clips
from harness import schemas

RNG_SEED = 20250623


def make_run(metric: str, arrays: dict, keys=None, reported=None, **kw) -> ClipRun:
    n = len(next(iter(arrays.values())))
    keys = np.array([f"clip{i:05d}" for i in range(n)]) if keys is None else np.asarray(keys)
    keys, arrays = canonical_order(keys, arrays)
    fields = dict(task="t", track="A", run=0, seed=7, metric=metric, reported=0.0, keys=keys, arrays=arrays)
    fields.update(kw)
    run = ClipRun(**fields)
    if reported is None:
        return ClipRun(**{**fields, "reported": recompute(run)})
    return ClipRun(**{**fields, "reported": reported})


def generated(metric: str, n: int, rng: np.random.Generator, classes: int = 4, folds: int = 0) -> dict:
    """Random per-clip data of `metric`'s shape (ties included where scores are involved)."""
    if metric == "accuracy":
        out = {"pred": rng.integers(0, classes, n), "target": rng.integers(0, classes, n)}
    elif metric == "mAP":
        target = (rng.random((n, classes)) < 0.3).astype(np.uint8)
        target[:, -1] = 0  # one class with no positive at all: sklearn scores it 0
        out = {"scores": np.round(rng.random((n, classes)), 1).astype(np.float32), "target": target}
    elif metric.startswith("segmentf1"):
        out = {k: rng.integers(0, 3, (n, classes)) for k in ("tp", "fp", "fn")}
        for k in out:
            out[k][:, 0] = 0  # a class never true nor predicted: 0/0 counts 0
    elif metric == "recallatk_r1":
        captions = np.full(n, 5)
        out = {"a2t_hit": rng.integers(0, 2, n), "t2a_hits": rng.integers(0, 6, n), "captions": captions}
    elif metric == "WER_inv":
        out = {"errors": rng.integers(0, 6, n), "ref_words": rng.integers(1, 12, n)}
    elif metric == "EER":
        out = {"score": np.round(rng.normal(size=n), 1), "target": rng.integers(0, 2, n)}
    elif metric == "MSE":
        out = {"sq_error": rng.random(n) * 3}
    elif metric == "MAE":
        out = {"abs_error": rng.random(n) * 3}
    else:
        raise AssertionError(metric)
    if folds:
        out["fold"] = rng.integers(0, folds, n)
    return out


# -- hand-derived values ----------------------------------------------------------------------------


def test_accuracy_and_errors_by_hand():
    assert recompute(make_run("accuracy", {"pred": [1, 2, 3, 0], "target": [1, 2, 0, 0]})) == pytest.approx(0.75)
    assert recompute(make_run("MSE", {"sq_error": [1.0, 2.0, 6.0]})) == pytest.approx(3.0)
    assert recompute(make_run("MAE", {"abs_error": [0.5, 1.5]})) == pytest.approx(1.0)


def test_average_precision_by_hand():
    # sklearn's documented example: y_true [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] -> 0.8333...
    one = make_run("mAP", {"scores": np.array([[0.1], [0.4], [0.35], [0.8]], np.float32),
                           "target": np.array([[0], [0], [1], [1]], np.uint8)})
    assert recompute(one) == pytest.approx(5 / 6, abs=1e-12)
    # Ties form one operating point: scores [0.9, 0.9, 0.1], targets [1, 0, 1] -> recall 1/2 at
    # precision 1/2, then recall 1 at precision 2/3: AP = 0.5*0.5 + 0.5*(2/3) = 7/12. A second class
    # without positives scores 0, so the macro mean is 7/24.
    tied = make_run("mAP", {"scores": np.array([[0.9, 0.3], [0.9, 0.2], [0.1, 0.1]], np.float32),
                            "target": np.array([[1, 0], [0, 0], [1, 0]], np.uint8)})
    assert recompute(tied) == pytest.approx(7 / 24, abs=1e-12)


def test_segment_f1_by_hand():
    arrays = {"tp": np.array([[2, 0], [1, 0]]), "fp": np.array([[1, 0], [0, 0]]), "fn": np.array([[0, 0], [1, 0]])}
    # class 0: tp 3, fp 1, fn 1 -> 6/8; class 1: nothing true nor predicted -> 0 (sklearn's zero_division)
    assert recompute(make_run("segmentf1_macro", arrays)) == pytest.approx(0.375)
    assert recompute(make_run("segmentf1_micro", arrays)) == pytest.approx(0.75)


def test_recall_wer_eer_by_hand():
    recall = make_run("recallatk_r1", {"a2t_hit": [1, 0], "t2a_hits": [3, 1], "captions": [5, 5]})
    assert recompute(recall) == pytest.approx((0.5 + 0.4) / 2)
    assert recompute(make_run("WER_inv", {"errors": [1, 3], "ref_words": [4, 4]})) == pytest.approx(0.5)
    # more errors than words: 1 - WER < 0 is clamped to 0, as X-ARES scores it
    assert recompute(make_run("WER_inv", {"errors": [9], "ref_words": [4]})) == 0.0
    # perfectly separated scores: EER 0; one swapped pair among 2+2: FPR = FNR = 0.5 at the crossing
    assert recompute(make_run("EER", {"score": [0.9, 0.8, 0.2, 0.1], "target": [1, 1, 0, 0]})) == 0.0
    assert recompute(make_run("EER", {"score": [0.9, 0.8, 0.2, 0.1], "target": [1, 0, 1, 0]})) == pytest.approx(0.5)


def test_k_fold_tasks_average_the_folds():
    # fold 0: 2/2 correct, fold 1: 1/4 correct -> X-ARES reports (1 + 0.25) / 2, not 3/6
    run = make_run("accuracy", {"pred": [1, 1, 0, 0, 0, 0], "target": [1, 1, 0, 1, 1, 1], "fold": [0, 0, 1, 1, 1, 1]})
    assert recompute(run) == pytest.approx(0.625)


# -- bootstrap weights ------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", sorted(clips.SUPPORTED_METRICS))
@pytest.mark.parametrize("folds", [0, 3])
def test_weights_equal_an_explicit_resample(metric, folds):
    rng = np.random.default_rng(RNG_SEED)
    n, resamples = 40, 6
    arrays = generated(metric, n, rng, folds=folds)
    run = make_run(metric, arrays)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=resamples)
    weights[0] = 1  # the identity resample is the run itself
    got = recompute(run, weights)
    assert got.shape == (resamples,)
    assert got[0] == pytest.approx(run.reported, abs=1e-12)
    for b in range(resamples):
        take = np.repeat(np.arange(n), weights[b])
        keys = np.array([f"r{j:05d}" for j in range(len(take))])
        expanded = make_run(metric, {k: v[take] for k, v in run.arrays.items()}, keys=keys, reported=0.0)
        # NaN where a resample leaves nothing to divide by (a fold with no positive for EER), both ways
        assert np.isclose(got[b], recompute(expanded), rtol=0, atol=1e-12, equal_nan=True), (metric, b)


def test_weights_are_chunked_without_changing_values(monkeypatch):
    rng = np.random.default_rng(RNG_SEED)
    run = make_run("mAP", generated("mAP", 30, rng))
    weights = rng.multinomial(30, np.full(30, 1 / 30), size=9)
    whole = recompute(run, weights)
    monkeypatch.setattr(clips, "CHUNK_ELEMENTS", 1)  # one resample per chunk
    assert np.array_equal(recompute(run, weights), whole)


def test_bad_weights_are_refused():
    run = make_run("accuracy", {"pred": [0, 1], "target": [0, 0]})
    for bad in (np.ones((2, 3), int), np.ones((2, 2)), np.array([[1, -1]])):
        with pytest.raises(ClipsError, match="weights"):
            recompute(run, bad)


# -- construction -----------------------------------------------------------------------------------


def test_construction_checks():
    good = dict(task="t", track="A", run=0, seed=1, metric="accuracy", reported=0.5, keys=np.array(["a", "b"]),
                arrays={"pred": np.array([0, 1]), "target": np.array([0, 0])})
    ClipRun(**good)
    bad = [
        {"track": "C"}, {"track": "B", "run": 1}, {"run": -1}, {"metric": "frame_mAP"}, {"reported": float("nan")},
        {"keys": np.array(["b", "a"])}, {"keys": np.array(["a", "a"])}, {"keys": np.array([1, 2])},
        {"arrays": {"pred": np.array([0, 1])}},
        {"arrays": {"pred": np.array([0, 1]), "target": np.array([0, 0]), "extra": np.array([0, 0])}},
        {"arrays": {"pred": np.array([0, 1, 2]), "target": np.array([0, 0, 0])}},
        {"arrays": {"pred": np.array([0.0, 1.0]), "target": np.array([0, 0])}},
    ]
    for change in bad:
        with pytest.raises(ClipsError):
            ClipRun(**{**good, **change})
    run = ClipRun(**good)
    with pytest.raises(ValueError):
        run.arrays["pred"][0] = 5  # read-only: a run cannot drift from what was checked


def test_unsupported_metric_is_refused_by_name():
    with pytest.raises(ClipsError, match="frame_mAP"):
        clips.arrays_for("frame_mAP")
    assert clips.arrays_for("mAP") == ("scores", "target")


# -- the file ---------------------------------------------------------------------------------------


def all_metric_runs() -> list[ClipRun]:
    rng = np.random.default_rng(RNG_SEED)
    runs = []
    for i, metric in enumerate(sorted(clips.SUPPORTED_METRICS)):
        runs.append(make_run(metric, generated(metric, 25, rng, folds=2 if metric == "accuracy" else 0),
                             task=f"task{i}", track="A", run=0, seed=i))
    runs.append(make_run("accuracy", generated("accuracy", 25, rng), task="task0", track="B", run=0, seed=None))
    return runs


def test_round_trip_every_metric(tmp_path):
    runs = all_metric_runs()
    path = write_clips(tmp_path / clips.CLIPS_NAME, runs)
    back = read_clips(path)
    assert len(back) == len(runs)
    for a, b in zip(runs, back):
        assert (a.task, a.track, a.run, a.seed, a.metric, a.reported) == (b.task, b.track, b.run, b.seed, b.metric,
                                                                           b.reported)
        assert np.array_equal(a.keys, b.keys)
        assert set(a.arrays) == set(b.arrays)
        for name in a.arrays:
            assert a.arrays[name].dtype == b.arrays[name].dtype and np.array_equal(a.arrays[name], b.arrays[name])
        assert recompute(b) == pytest.approx(b.reported, abs=clips.PARITY_TOLERANCE)
    assert [p.name for p in tmp_path.iterdir()] == [clips.CLIPS_NAME]  # no temporary left behind


def test_index_follows_the_schema(tmp_path):
    assert clips.SCHEMA_VERSION == schemas.SCHEMA_VERSION
    path = write_clips(tmp_path / "c.npz", all_metric_runs())
    with np.load(path, allow_pickle=False) as npz:
        index = json.loads(npz["index"].tobytes())
    import jsonschema

    jsonschema.Draft202012Validator(schemas.load("clips")).validate(index)
    assert {r["metric"] for r in index["runs"]} == set(clips.SUPPORTED_METRICS)
    assert set(schemas.load("clips")["properties"]["runs"]["items"]["properties"]["metric"]["enum"]) == \
        set(clips.SUPPORTED_METRICS)


def rewrite(src, dst, change):
    """Copy the npz at `src` to `dst`, member by member, through `change(name, bytes) -> bytes | None`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


def npy_bytes(arr) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def test_altered_files_are_refused(tmp_path):
    runs = all_metric_runs()[:2]
    assert runs[0].metric == "EER"
    path = write_clips(tmp_path / "c.npz", runs)
    with np.load(path, allow_pickle=False) as npz:
        index = json.loads(npz["index"].tobytes())

    def index_with(mutate):
        doc = json.loads(json.dumps(index))
        mutate(doc)
        return npy_bytes(np.frombuffer(json.dumps(doc).encode(), np.uint8))

    pickled = __import__("io").BytesIO()
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    cases = {
        "unknown metric": ("index.npy", index_with(lambda d: d["runs"][0].update(metric="frame_mAP"))),
        "wrong clip count": ("index.npy", index_with(lambda d: d["runs"][0].update(clips=3))),
        "wrong shape": ("index.npy", index_with(lambda d: d["runs"][0]["arrays"]["score"].update(shape=[3]))),
        "missing member": ("0.keys.npy", None),
        "pickled object": ("0.keys.npy", pickled.getvalue()),
        "extra member": ("9.extra.npy", npy_bytes(np.arange(3))),
    }
    for name, (member, data) in cases.items():
        bad = tmp_path / f"{name.replace(' ', '_')}.npz"
        rewrite(path, bad, lambda n, b: data if n == member else b)
        if name == "extra member":
            with zipfile.ZipFile(bad, "a") as z:
                z.writestr(member, data)
        with pytest.raises(ClipsError):
            read_clips(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ClipsError, match="zip"):
        read_clips(tmp_path / "junk.npz")
    with pytest.raises(ClipsError, match="bytes"):
        read_clips(path, max_bytes=100)


def test_duplicate_runs_are_refused(tmp_path):
    run = all_metric_runs()[0]
    with pytest.raises(ClipsError, match="twice"):
        write_clips(tmp_path / "c.npz", [run, run])


def test_both_average_precision_paths_agree(monkeypatch):
    """mAP sums either by an indicator product (few thresholds) or by cumulative sums (many): the
    two give the same value, equal to recomputing on the explicitly resampled clips."""
    rng = np.random.default_rng(RNG_SEED)
    n = 60
    run = make_run("mAP", generated("mAP", n, rng, classes=5))
    weights = rng.multinomial(n, np.full(n, 1 / n), size=5)
    few = recompute(run, weights)
    monkeypatch.setattr(clips, "_FEW_THRESHOLDS", 0)
    many = recompute(run, weights)
    assert np.allclose(few, many, rtol=0, atol=1e-12)
    assert recompute(run) == pytest.approx(run.reported, abs=1e-12)
    for b in range(len(weights)):
        take = np.repeat(np.arange(n), weights[b])
        expanded = make_run("mAP", {k: v[take] for k, v in run.arrays.items()},
                            keys=np.array([f"r{j:05d}" for j in range(len(take))]))
        assert many[b] == pytest.approx(expanded.reported, abs=1e-12)

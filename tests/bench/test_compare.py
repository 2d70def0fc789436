"""bench/compare.py: regressions beyond noise are flagged, noise and improvements are not, and a
metric only one run has is reported. Synthetic results only: no engine, no containers."""

from __future__ import annotations

import io
import json

import pytest

from bench import compare


def metric(values: list[float], unit: str = "s", better: str = "lower") -> dict:
    ordered = sorted(values)
    return {"unit": unit, "better": better, "values": values, "median": ordered[len(ordered) // 2],
            "min": ordered[0], "max": ordered[-1]}


def result(**metrics: dict) -> dict:
    return {"schema_version": 1, "created_utc": "2026-01-01T00:00:00Z", "versions": {"harness_commit": "abc"},
            "machine": {"cpu_model": "x", "cpus": 2}, "metrics": metrics}


def by_name(rows) -> dict:
    return {r.metric: r for r in rows}


def test_regression_beyond_noise_is_flagged():
    rows = by_name(compare.compare(result(score_s=metric([100, 101, 102])), result(score_s=metric([130, 131, 132]))))
    row = rows["score_s"]
    assert row.status == "regression" and row.regression
    assert row.change == pytest.approx(0.297, abs=0.01)
    assert row.threshold == pytest.approx(0.10)


def test_change_within_the_spread_is_noise():
    # old scattered 80..120 around 100 (40 % spread): a 25 % slower median is within it
    rows = by_name(compare.compare(result(score_s=metric([80, 100, 120])), result(score_s=metric([120, 125, 126]))))
    assert rows["score_s"].status == "ok"
    assert rows["score_s"].threshold == pytest.approx(0.40)


def test_spread_of_the_new_run_counts_too():
    rows = by_name(compare.compare(result(x=metric([10, 10, 10])), result(x=metric([9, 13, 16]))))
    assert rows["x"].status == "ok"  # +30 % median, but the new run itself spread 54 %


def test_small_change_under_ten_percent_is_never_flagged():
    rows = by_name(compare.compare(result(x=metric([10.0])), result(x=metric([10.9]))))
    assert rows["x"].status == "ok"


def test_improvement_is_not_a_regression():
    rows = by_name(compare.compare(result(score_s=metric([100, 100, 101])), result(score_s=metric([60, 61, 62]))))
    assert rows["score_s"].status == "improved" and not rows["score_s"].regression


def test_higher_is_better_metrics_regress_downwards():
    old = result(throughput=metric([4.0, 4.1, 4.2], unit="sub/min", better="higher"))
    worse = result(throughput=metric([2.0, 2.1, 2.2], unit="sub/min", better="higher"))
    better = result(throughput=metric([8.0, 8.1, 8.2], unit="sub/min", better="higher"))
    assert by_name(compare.compare(old, worse))["throughput"].status == "regression"
    assert by_name(compare.compare(old, better))["throughput"].status == "improved"


def test_missing_metric_is_reported_not_flagged():
    rows = by_name(compare.compare(result(a=metric([1.0]), gone=metric([2.0])), result(a=metric([1.0]), new=metric([3.0]))))
    assert rows["gone"].status == "missing-in-new"
    assert rows["new"].status == "missing-in-old"
    assert not any(r.regression for r in rows.values())


def test_unmeasured_metric_is_skipped():
    rows = by_name(compare.compare(result(a={"unit": "s", "median": None}), result(a=metric([5.0]))))
    assert rows["a"].status == "not-measured"


def test_zero_baseline():
    rows = by_name(compare.compare(result(a=metric([0.0])), result(a=metric([1.0]))))
    assert rows["a"].status == "regression"
    rows = by_name(compare.compare(result(a=metric([0.0])), result(a=metric([0.0]))))
    assert rows["a"].status == "ok"


def test_main_exit_codes_and_table(tmp_path, capsys):
    old, same, slow = tmp_path / "old.json", tmp_path / "same.json", tmp_path / "slow.json"
    old.write_text(json.dumps(result(score_s=metric([100, 102, 104]), only_old=metric([1.0]))))
    same.write_text(json.dumps(result(score_s=metric([101, 103, 105]))))
    slow.write_text(json.dumps(result(score_s=metric([150, 151, 152]))))
    assert compare.main([str(old), str(same)]) == 0
    out = capsys.readouterr().out
    assert "score_s" in out and "missing-in-new" in out and "0 regression(s)" in out
    assert compare.main([str(old), str(slow)]) == 1
    assert "1 regression(s): score_s" in capsys.readouterr().out
    assert compare.main([str(old), str(slow), "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert {r["metric"]: r["status"] for r in rows}["score_s"] == "regression"


def test_unreadable_input_is_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 1}))
    assert compare.main([str(bad), str(bad)]) == 2


def test_render_to_a_file():
    buf = io.StringIO()
    rows = compare.compare(result(a=metric([1.0])), result(a=metric([2.0])))
    compare.render(rows, result(), result(), out=buf)
    assert "regression" in buf.getvalue()

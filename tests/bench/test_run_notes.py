"""bench/run.py: a missed ratio target is explained with its own baseline and its own run's stages,
never another group's (the larger suite's miss names the larger suite's bare X-ARES time).
Synthetic metrics only: no engine, no containers."""

from __future__ import annotations

from bench import run


def m(value: float) -> dict:
    return {"median": value, "min": value, "max": value, "values": [value], "n": 1}


METRICS = {
    "direct_xares_s": m(7.0), "score_first_stage_prepare_s": m(4.2), "score_first_stage_score_s": m(3.8),
    "large_direct_s": m(14.2), "large_first_stage_prepare_s": m(8.6), "large_first_stage_score_s": m(5.3),
    "crepe_build_cold_s": m(14.8), "crepe_build_lock_s": m(18.4),
    "ratio_first_vs_direct": m(1.9), "ratio_large_first_vs_direct": m(1.4), "ratio_crepe_lock_vs_cold": m(1.23),
    "ratio_large_first_prepared_vs_direct": m(0.9),
}


def test_each_miss_is_explained_by_its_own_group():
    targets = run.evaluate_targets(METRICS, [])
    notes = {n.split(" ", 1)[0]: n for n in run.explain_misses(METRICS, targets)}
    assert "7.0 s" in notes["ratio_first_vs_direct"] and "prepare_s 4.2 s" in notes["ratio_first_vs_direct"]
    large = notes["ratio_large_first_vs_direct"]
    assert "larger suite took 14.2 s" in large and "prepare_s 8.6 s" in large and "7.0 s" not in large
    crepe = notes["ratio_crepe_lock_vs_cold"]
    assert "14.8 s" in crepe and "by stage" not in crepe


def test_a_target_met_or_not_measured_gets_no_note():
    metrics = {"direct_xares_s": m(7.0), "ratio_first_vs_direct": m(1.1)}
    targets = run.evaluate_targets(metrics, [])
    assert run.explain_misses(metrics, targets) == []
    assert {t["status"] for t in targets} == {"pass", "not measured"}


def test_every_ratio_target_has_a_source():
    assert {t[0] for t in run.TARGETS if t[0].startswith("ratio_")} <= set(run.MISS_SOURCES)

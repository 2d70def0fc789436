"""bench/targets.py: seconds per audio-hour and the two-point fit (time = fixed + slope x hours) are
derived only from suites that were measured, and the fit goes through both suites' medians; a suite
or run that was not measured leaves its figures absent, never zero, and the line says so.
Synthetic metrics only: no engine, no containers."""

from __future__ import annotations

import pytest

from bench import targets


def m(*values: float) -> dict:
    ordered = sorted(values)
    return {"median": ordered[len(ordered) // 2], "min": ordered[0], "max": ordered[-1], "values": list(values),
            "n": len(values)}


# Bare X-ARES: 6 s fixed + 10 s/h; harness first 15 s + 12 s/h; harness second 4 s + 6 s/h.
BOTH = {
    "large_audio_h": m(0.6), "hours_audio_h": m(3.0),
    "large_direct_s": m(12.0, 12.0, 12.0), "hours_direct_s": m(36.0, 36.0, 36.0),
    "large_first_s": m(22.2), "hours_first_s": m(51.0),
    "large_second_s": m(7.6, 7.6), "hours_second_s": m(22.0, 22.0),
}


def test_two_point_fit_goes_through_both_points():
    fixed, slope = targets.two_point_fit((0.6, 12.0), (3.0, 36.0))
    assert slope == pytest.approx(10.0) and fixed == pytest.approx(6.0)
    assert fixed + slope * 0.6 == pytest.approx(12.0) and fixed + slope * 3.0 == pytest.approx(36.0)


@pytest.mark.parametrize("small, large", [((None, 12.0), (3.0, 36.0)), ((0.6, None), (3.0, 36.0)),
                                          ((0.6, 12.0), (3.0, None)), ((0.6, 12.0), (0.6, 13.0))])
def test_two_point_fit_needs_two_measured_points_at_different_sizes(small, large):
    assert targets.two_point_fit(small, large) is None


def test_per_hour_and_fit_for_every_run():
    out = targets.per_audio_hour(BOTH)
    assert out["large_direct_s_per_audio_h"] == pytest.approx([20.0, 20.0, 20.0])  # one value per repeat
    assert out["hours_direct_s_per_audio_h"] == pytest.approx([12.0, 12.0, 12.0])
    assert out["hours_second_s_per_audio_h"] == pytest.approx([22.0 / 3, 22.0 / 3])
    for run, fixed, slope in (("direct", 6.0, 10.0), ("first", 15.0, 12.0), ("second", 4.0, 6.0)):
        assert out[f"fit_{run}_fixed_s"] == pytest.approx([fixed])
        assert out[f"fit_{run}_slope_s_per_audio_h"] == pytest.approx([slope])


def test_fit_uses_the_medians_of_the_repeats():
    metrics = {**BOTH, "large_direct_s": m(11.0, 12.0, 30.0), "hours_direct_s": m(36.0, 35.0, 90.0)}
    out = targets.per_audio_hour(metrics)
    assert out["fit_direct_slope_s_per_audio_h"] == pytest.approx([10.0])
    assert out["large_direct_s_per_audio_h"] == pytest.approx([11 / 0.6, 20.0, 50.0])


def test_a_suite_not_measured_gives_its_per_hour_figures_and_no_fit():
    without_hours = {k: v for k, v in BOTH.items() if not k.startswith("hours_")}
    out = targets.per_audio_hour(without_hours)
    assert set(out) == {"large_direct_s_per_audio_h", "large_first_s_per_audio_h", "large_second_s_per_audio_h"}
    note = targets.per_hour_note({**without_hours, **{k: m(*v) for k, v in out.items()}})
    assert "hours not measured" in note and "20.0 -> not measured" in note and "no fit" in note


def test_a_run_that_failed_is_absent_not_zero():
    metrics = {**BOTH, "hours_first_s": {"median": None, "values": [], "n": 0}}
    out = targets.per_audio_hour(metrics)
    assert "hours_first_s_per_audio_h" not in out
    assert "fit_first_fixed_s" not in out and "fit_first_slope_s_per_audio_h" not in out
    assert "fit_second_fixed_s" in out


def test_without_the_suites_audio_length_nothing_is_derived():
    metrics = {k: v for k, v in BOTH.items() if not k.endswith("_audio_h")}
    assert targets.per_audio_hour(metrics) == {}
    assert targets.per_hour_note(metrics).count("not measured") == 2 + 2 * 3


def test_the_note_states_slope_and_fixed_part_per_run():
    out = targets.per_audio_hour(BOTH)
    note = targets.per_hour_note({**BOTH, **{k: m(*v) for k, v in out.items()}})
    assert "large 0.60 h, hours 3.00 h" in note
    assert "bare X-ARES 20.0 -> 12.0 s/h (slope 10.0 s/h, fixed 6.0 s)" in note
    assert "harness, later submissions 12.7 -> 7.3 s/h (slope 6.0 s/h, fixed 4.0 s)" in note


def test_every_derived_figure_is_defined_with_a_unit():
    import argparse

    from bench.sampling import Recorder

    rec = Recorder()
    targets.define_metrics(rec, argparse.Namespace(batch_k=6, repeats_n=5))
    for name in targets.per_audio_hour(BOTH):
        assert rec.metrics[name]["unit"] in {"s", "s/h"} and rec.metrics[name]["description"]
    for suite in targets.FIT_SUITES:
        assert rec.metrics[f"{suite}_audio_h"]["unit"] == "h"

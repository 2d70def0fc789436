"""bench/bootstrap.py measures the leaderboard's bootstrap on generated per-clip data shaped like the
registry's tasks (its test-set sizes, its metrics): the generated rows are ranked in the order of
their made-up quality, every row gets an interval, and the figure is a time. Tiny scale: seconds."""

from __future__ import annotations

from bench import bootstrap as cost


def test_the_bench_bootstrap_runs_at_a_small_scale_and_ranks_by_quality():
    found = cost.measure(submissions=3, tasks=5, resamples=40, repeats=2, seed=1)
    assert found["tasks"] == 5 and found["submissions"] == 3 and found["resamples"] == 40
    assert found["rows_with_interval"] == 3 and found["rank_stats"] == 3
    assert found["largest_task"] >= 1000 and found["bootstrap_s"] > 0


def test_generated_quality_orders_the_rows():
    data = cost.generate(submissions=3, tasks=3, repeats=1, seed=2)
    scores = [row.score for row in data["rows"]]
    assert scores == sorted(scores), "submission quality rises with its index"
    assert len(data["tasks"]) == 3 and all(src.clips for src in data["sources"].values())

"""bench/large_suite.py: the 3-hour suite holds at least 3 hours of audio and differs from the
37-minute one only in size (the same clip distribution, five times every split and shard count, so
the two-point fit measures cost per audio-hour and nothing else); generating a suite is idempotent,
so a kept suite is re-hashed, not rewritten; `make bench` runs both suites' groups by default.
Generation at a tiny scale only: seconds, no engine."""

from __future__ import annotations

from pathlib import Path

from bench import large_suite, run



def test_the_hours_suite_is_five_larger_suites():
    large, hours = large_suite.LARGE, large_suite.HOURS
    assert tuple(5 * n for n in large.splits) == hours.splits and hours.train_shards == 5 * large.train_shards
    a, b = large.spec(), hours.spec()
    assert a.classes == b.classes and a.make is b.make
    assert hours.task_file.is_file() and hours.name in hours.task_file.read_text()


def test_the_hours_suite_plans_at_least_three_hours():
    # 9000 clips of uniform 0.5-2 s: the sum's standard deviation is about 41 s, against a margin of 450 s.
    planned_s = sum(large_suite.HOURS.splits) * large_suite.MEAN_CLIP_S
    assert planned_s >= 3 * 3600 + 10 * 41


def test_generation_at_a_tiny_scale_is_idempotent(tmp_path):
    suite = large_suite.HOURS
    first = suite.generate(tmp_path, splits=(40, 5, 5))
    task = tmp_path / suite.name
    assert first["task"] == "hours_tones" and sum(s["clips"] for s in first["splits"].values()) == 50
    assert len(first["splits"]["train"]["shards"]) == suite.train_shards
    assert 50 * 0.5 <= first["audio_seconds"] <= 50 * 2.0
    stamps = {p.name: p.stat().st_mtime_ns for p in task.glob("*.tar")}
    again = suite.generate(tmp_path, splits=(40, 5, 5))
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in task.glob("*.tar")} == stamps, "a kept suite is not rewritten"


def test_the_suite_groups_run_by_default_and_alone():
    default = run.parse_args(["--demo-env", "x"])
    assert {"large", "batch-large", "hours"} <= set(default.groups)
    assert Path(default.suites_dir) == run.SUITES_DIR
    only = run.parse_args(["--demo-env", "x", "--only", "hours,batch-large", "--suites-dir", "/tmp/s"])
    assert only.groups == ["batch-large", "hours"] and only.suites_dir == "/tmp/s"

"""`aecc score` refuses bad arguments before any work: tasks resolve to a registry entry or a task
file (checked without running it), unknown names suggest the right one, and a malformed spec (no
tasks, a missing data folder, an unknown mode) is a usage error, never a started run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.pipelines.score import ScoreSettings
from harness.tasks.arguments import resolve_task, resolve_tasks

REPO = Path(__file__).resolve().parents[3]


def test_registry_name_resolves_to_xares_module():
    task = resolve_task("esc50")
    assert (task.module, task.config_function, task.file) == ("tasks.esc50_task", "esc50_config", None)


def test_task_file_resolves_with_its_literal_name():
    task = resolve_task(str(REPO / "demo_tasks" / "tiny_crop_task.py"))
    assert task.task_name == "tiny_crop" and task.module == "/tasks/tiny_crop_task.py"
    assert task.file == (REPO / "demo_tasks" / "tiny_crop_task.py").resolve()


def test_unknown_name_suggests(tmp_path):
    with pytest.raises(UsageError, match="Did you mean: esc50"):
        resolve_task("esc5")


@pytest.mark.parametrize("bad", [dict(tasks=()), dict(mode="fast"), dict(repeats=0), dict(data=Path("/nonexistent")),
                                 dict(block_on={"no_such_check"})])
def test_malformed_settings_are_a_usage_error(tmp_path, bad):
    fields = dict(data=tmp_path, tasks=(resolve_task("esc50"),)) | bad
    with pytest.raises(UsageError):
        ScoreSettings(**fields)


def test_settings_round_trip_through_plain_data_field_by_field(tmp_path):
    """What a cluster node is scored with is what the submit host was given: every field of the
    settings, as JSON, and back; a field missing from the data is refused, never defaulted."""
    settings = ScoreSettings(data=tmp_path, tasks=(resolve_task("esc50"),
                                                   resolve_task(str(REPO / "demo_tasks" / "tiny_crop_task.py"))),
                             mode="xares", repeats=5, seed=9, warm_start=False, block_on={"advice", "finite"},
                             rescore=True, max_seconds=30.0, models=tmp_path)
    data = json.loads(json.dumps(settings.to_dict()))
    assert set(data) == {f.name for f in dataclasses.fields(ScoreSettings)}
    assert ScoreSettings.from_dict(data) == settings
    with pytest.raises(ValueError, match="repeats"):
        ScoreSettings.from_dict({k: v for k, v in data.items() if k != "repeats"})


def test_a_task_named_twice_is_a_usage_error():
    with pytest.raises(UsageError, match="named twice"):
        resolve_tasks(["esc50", "esc50"])

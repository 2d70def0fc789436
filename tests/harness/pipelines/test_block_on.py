"""`aecc score --block-on`: rule checks always exclude (failed, or never run); another check only when
named, by id or by its whole level; an unknown name is refused with the names it could be."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.jobs import Level
from checker.verdict import Item
from harness.errors import UsageError
from harness.pipelines.score import ScoreSettings
from harness.tasks.arguments import resolve_tasks


def settings(tmp_path, *block_on: str) -> ScoreSettings:
    tasks = resolve_tasks([str(Path(__file__).resolve().parents[3] / "demo_tasks" / "tiny_crop_task.py")])
    return ScoreSettings(data=tmp_path, tasks=tasks, block_on=frozenset(block_on))


def item(check_id: str, level: Level, status: str = "failed") -> Item:
    return Item(check_id, level, status, "m")


def test_rule_always_blocks_and_the_rest_only_when_named(tmp_path):
    plain = settings(tmp_path)
    assert plain.blocks(item("output_dim_match", Level.RULE))
    assert plain.blocks(item("forward_basic", Level.RULE, "skipped")), "a rule check that never ran"
    assert not plain.blocks(item("finite", Level.SCORING))
    assert not plain.blocks(item("deterministic", Level.ADVICE))

    by_level = settings(tmp_path, "scoring")
    assert by_level.blocks(item("finite", Level.SCORING)) and by_level.blocks(item("forward_timeout", Level.SCORING))
    assert not by_level.blocks(item("deterministic", Level.ADVICE))
    assert not by_level.blocks(item("memory", Level.SCORING, "warning")), "a warning never blocks"

    by_id = settings(tmp_path, "deterministic")
    assert by_id.blocks(item("deterministic", Level.ADVICE)) and not by_id.blocks(item("finite", Level.SCORING))


def test_unknown_names_are_refused_with_what_they_could_be(tmp_path):
    with pytest.raises(UsageError) as err:
        settings(tmp_path, "scorings")
    assert "scorings" in str(err.value) and "a level (scoring, advice)" in str(err.value)

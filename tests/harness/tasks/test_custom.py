"""A task scored from an organizer's own task file is ranked, marked custom, weighted by its own
eval_weight and bounded by its metric's natural range; it is refused, with the reason, only when
neither can be known (no weight, a metric without a range, results that disagree)."""

from __future__ import annotations

import dataclasses

import pytest

from harness.errors import ConfigError
from harness.rank.board import BoardSpec, build_board
from harness.rank.page import render_page
from harness.results import TaskResult
from harness.tasks import custom
from harness.tasks.registry import Direction, TaskEntry, load_registry
from tests.harness.rank.helpers import result_doc, task, write_result


def scored(name: str, a: float, b: float | None = None, *, metric: str = "accuracy", weight: int | None = 50):
    return dataclasses.replace(task(name, a, b), metric=metric, weight=weight)


def board(tmp_path, *docs, **spec):
    for doc in docs:
        write_result(tmp_path / "R", doc, None)
    return build_board(BoardSpec(results=(tmp_path / "R",), allow_unsigned=True, **spec)).document


def test_a_custom_task_is_ranked_with_its_own_weight_and_natural_bounds(tmp_path):
    good = result_doc("good", [scored("tones", 0.9, 0.8, weight=120), scored("esc50", 0.5, 0.5, weight=None)])
    weak = result_doc("weak", [scored("tones", 0.3, 0.2, weight=120), scored("esc50", 0.5, 0.5, weight=None)])
    doc = board(tmp_path, good, weak)
    tasks = {t["task"]: t for t in doc["tracks"]["A"]["tasks"]}
    assert tasks["tones"] == {"task": "tones", "formal_name": "tones", "metric": "accuracy", "direction": "higher",
                              "worst": 0.0, "best": 1.0, "weight": 120, "public": True, "custom": True}
    assert "custom" not in tasks["esc50"]  # registry tasks read as before
    rows = doc["tracks"]["A"]["rows"]
    assert [r["name"] for r in rows][:2] == ["TinyEncoder (" + good["submission"]["sha256"][:8] + ")",
                                             "TinyEncoder (" + weak["submission"]["sha256"][:8] + ")"]
    # eq. 2 over esc50 (registry weight) and tones (120): the custom cell counts at its own weight
    esc50 = load_registry().get("esc50")
    expected = (esc50.eval_weight * esc50.normalise(0.5) + 120 * 0.9) / (esc50.eval_weight + 120)
    assert rows[0]["score"] == pytest.approx(expected)
    assert rows[0]["cells"]["tones"]["weight"] == 120
    # Track B is ranked for the custom task because a result holds a kNN value for it
    assert "tones" in [t["task"] for t in doc["tracks"]["B"]["tasks"]]
    # the page marks it, and its rules say where its weight and bounds come from
    page = render_page(doc)
    assert page.count('class="custom-mark"') >= 3  # Track A and B headers, and the rules' legend
    assert "tones (accuracy, weight 120, worst 0, best 1)" in page


def test_eer_runs_from_worst_one_to_best_zero():
    made = custom.entry_for(custom.Seen("spoof", frozenset({"EER"}), frozenset({10}), False))
    assert isinstance(made, TaskEntry)
    assert (made.direction, made.worst, made.best) == (Direction.LOWER, 1.0, 0.0)
    assert made.normalise(0.1) == pytest.approx(0.9)
    assert not made.track_b and made.custom


@pytest.mark.parametrize("metrics, weights, says", [
    ({"MSE"}, {5}, "has no natural range"),
    ({"WER"}, {5}, "has no natural range"),
    ({"accuracy"}, {None}, "eval_weight is None"),
    ({"accuracy"}, {0}, "eval_weight is 0"),
    ({"accuracy", "mAP"}, {5}, "the results disagree"),
    ({"accuracy"}, {5, 6}, "the results disagree"),
    (set(), set(), "no result scored it"),
])
def test_a_custom_task_is_refused_only_when_its_bounds_or_weight_cannot_be_known(metrics, weights, says):
    made = custom.entry_for(custom.Seen("mine", frozenset(metrics), frozenset(weights), False))
    assert isinstance(made, custom.Refused) and says in made.reason


def test_refused_and_failed_custom_tasks_on_the_board(tmp_path):
    # one result scored 'mine' with MSE (refused); 'tones' failed in one result and scored in the other
    a = result_doc("a", [scored("tones", 0.7, weight=30), scored("mine", 0.1, metric="MSE")])
    b = result_doc("b", [TaskResult("tones", "file", "failed", reason="probe diverged"),
                         scored("mine", 0.2, metric="MSE")])
    doc = board(tmp_path, a, b)
    assert [t["task"] for t in doc["tracks"]["A"]["tasks"]] == ["tones"]
    assert sum("'mine': not ranked" in w and "no natural range" in w for w in doc["warnings"]) == 2
    cells = {r["name"][-9:-1]: r["cells"]["tones"] for r in doc["tracks"]["A"]["rows"]}
    assert cells[b["submission"]["sha256"][:8]]["state"] == "failed"
    assert cells[b["submission"]["sha256"][:8]]["normalised"] == 0.0  # counted zero at full weight


def test_a_named_task_set_still_ranks_only_its_registry_tasks(tmp_path):
    doc = board(tmp_path, result_doc("a", [scored("tones", 0.7, weight=30), scored("esc50", 0.6, weight=None)]),
                task_set="icme2025-final")
    assert "tones" not in [t["task"] for t in doc["tracks"]["A"]["tasks"]]
    assert any("tones" in w and "not in task set 'icme2025-final'" in w for w in doc["warnings"])


def test_a_custom_entry_cannot_take_a_registry_name_or_join_a_named_set():
    registry = load_registry()
    made = custom.entry_for(custom.Seen("esc50", frozenset({"accuracy"}), frozenset({5}), False))
    with pytest.raises(ConfigError, match="listed twice"):
        registry.with_custom([made])
    with pytest.raises(ConfigError, match="no named task set"):
        dataclasses.replace(made, task_sets={"paper": ("A",)})


def test_a_suite_of_custom_tasks_says_once_that_it_is_not_a_challenge_ranking(tmp_path):
    doc = board(tmp_path, result_doc("a", [scored("tones", 0.7, weight=30)]))
    about_sets = [w for w in doc["warnings"] if w.startswith("no --task-set")]
    assert len(about_sets) == 1 and "every task present is a custom task" in about_sets[0]

"""Command-line invariant for `aecc score`'s task choice: a task named in `--tasks` whose data is not
under `--data` stops the run before any work (exit 2, each task with its reason); `--task-set`
prints its plan (what runs, what does not and why) and scores exactly the tasks the plan can run;
the two flags exclude each other; the model store reaches the settings a cluster job reads back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.bulk.run import BatchSpec
from harness.cli import main
from harness.cli.common import console
from harness.cli.score import chosen_tasks
from harness.pipelines.score import ScoreSettings
from harness.tasks.arguments import resolve_tasks
from tests.support.models import lay_out_data as lay_out


def test_tasks_without_data_stop_the_run_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AECC_HOME", str(tmp_path / "home"))
    data = lay_out(tmp_path / "env", ["esc50"])
    out = tmp_path / "results"
    code = main(["score", str(tmp_path / "nothing.zip"), "--data", str(data), "--tasks", "esc50", "finger_snap",
                 "vocalsound", "--out", str(out), "--profile", "cpu"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "2 task(s) have no data under --data" in err
    assert f"data not supplied: no folder {data / 'finger_snap'} (a hidden dataset" in err
    assert f"data not supplied: no folder {data / 'vocalsound'}" in err
    assert "esc50" not in err.split("found:")[1].split("next:")[0]  # the task with data is not named
    assert not out.exists()  # nothing was read, built or written


def test_a_task_set_prints_its_plan_and_scores_what_can_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = lay_out(tmp_path / "env", ["esc50", "finger_snap", "librispeech"])
    args = argparse.Namespace(task_set="icme2025-final", tasks=None, data=str(data), models=None)
    tasks = chosen_tasks(args, "cpu", console())
    printed = " ".join(capsys.readouterr().err.split())  # the console is stderr
    # librispeech has its data but no model store: the plan says so and leaves it out
    assert [t.label for t in tasks] == ["esc50", "finger_snap"]
    assert "task set icme2025-final: 2 task(s) to score: esc50, finger_snap" in printed
    assert "not run: librispeech:" in printed and "not run: vocalsound: data not supplied" in printed
    assert "Track A: 2 of 27 tasks run" in printed


def test_a_task_set_that_can_run_nothing_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "env").mkdir()
    code = main(["score", "x.zip", "--data", str(tmp_path / "env"), "--task-set", "paper", "--out",
                 str(tmp_path / "r"), "--profile", "cpu"])
    assert code == 2
    assert "task set paper: nothing can be scored here" in " ".join(capsys.readouterr().err.split())


def test_tasks_and_task_set_exclude_each_other(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["score", "x.zip", "--data", ".", "--tasks", "esc50", "--task-set", "paper", "--out", "r"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_model_store_travels_with_the_batch(tmp_path: Path) -> None:
    data = lay_out(tmp_path / "env", ["esc50"])
    settings = ScoreSettings(data=data, tasks=resolve_tasks(["esc50"]), models=tmp_path / "models")
    spec = BatchSpec(inputs=(tmp_path / "a.zip",), out=tmp_path / "r", settings=settings, profile="cpu")
    assert BatchSpec.from_dict(spec.to_dict()).settings.models == (tmp_path / "models").absolute()
    bare = BatchSpec(inputs=(tmp_path / "a.zip",), out=tmp_path / "r", profile="cpu",
                     settings=ScoreSettings(data=data, tasks=resolve_tasks(["esc50"])))
    assert BatchSpec.from_dict(bare.to_dict()).settings.models is None

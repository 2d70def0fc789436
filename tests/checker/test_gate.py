"""The warm-start gate runs only a checker stage, only once the harness's go file exists, with exactly
the argv in it; a cancel runs nothing, and no go within the wait is exit 3, never a hang."""

from __future__ import annotations

import json
import threading
import time

import pytest

from checker import gate
from checker.jobs import Go


def _write_later(path, content, delay):
    def write():
        time.sleep(delay)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(content))
        tmp.replace(path)

    threading.Thread(target=write, daemon=True).start()


def test_waits_for_the_go_file_then_returns_it(tmp_path):
    go = tmp_path / "go.json"
    _write_later(go, {"argv": ["--x"]}, 0.5)
    started = time.monotonic()
    assert gate.wait_for_go(go, max_wait_s=10) == Go(("--x",))
    assert 0.4 < time.monotonic() - started < 5


def test_no_go_within_the_wait_is_none(tmp_path):
    started = time.monotonic()
    assert gate.wait_for_go(tmp_path / "go.json", max_wait_s=0.3) is None
    assert time.monotonic() - started < 3


def test_main_hands_the_argv_to_the_stage(tmp_path):
    go = tmp_path / "go.json"
    go.write_text(json.dumps({"argv": ["--help"]}))
    with pytest.raises(SystemExit) as done:  # argparse's --help: proof the stage parsed our argv
        gate.main(["--go", str(go), "--max-wait", "1", "--then", "checker.encode"])
    assert done.value.code == 0


def test_cancel_runs_nothing_and_no_go_is_exit_3(tmp_path, capsys):
    go = tmp_path / "go.json"
    go.write_text(json.dumps({"cancel": True}))
    assert gate.main(["--go", str(go), "--max-wait", "1", "--then", "checker.encode"]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert gate.main(["--go", str(tmp_path / "none.json"), "--max-wait", "0.2", "--then", "checker.encode"]) == 3
    assert "no go file" in capsys.readouterr().err


@pytest.mark.parametrize("then", ["os", "checker.gate", "harness.cli"])
def test_only_a_checker_stage_may_follow(tmp_path, then):
    with pytest.raises(SystemExit) as done:
        gate.main(["--go", str(tmp_path / "go.json"), "--max-wait", "1", "--then", then])
    assert done.value.code == 2

"""No container outlives the harness: Ctrl-C and SIGTERM remove what the run started, and what a
SIGKILLed harness leaves behind is found by its labels and removed by `aecc cleanup`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.processes import process_start
from harness.sandbox import engine
from harness.sandbox.cleanup import cleanup

AECC = str(Path(sys.executable).parent / "aecc")


_STARTS: dict[int, str] = {}  # harness PID -> its start time, as the runner labels it


def _containers_of(client, pid: int):
    """Containers of one harness process, as plain dicts from one list call.

    `client.containers.list` inspects each container after listing it, which races with a
    container being removed at that moment (404); the raw list cannot. The start-time label
    tells this process from an earlier one that had the same PID (pid_max is 32768 here).
    """
    labels = [f"{engine.LABEL_MANAGED}=1", f"{engine.LABEL_OWNER_PID}={pid}"]
    if pid in _STARTS:
        labels.append(f"{engine.LABEL_OWNER_START}={_STARTS[pid]}")
    rows = client.api.containers(all=True, filters={"label": labels})
    return [{"id": r["Id"], "name": r["Names"][0].lstrip("/"), "state": r["State"]} for r in rows]


def _remove(client, rows) -> None:
    for row in rows:
        try:
            client.api.remove_container(row["id"], force=True)
        except Exception:
            pass  # already gone


def _start_harness(base_image: str, tmp_path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [AECC, "sandbox", "run", "--image", base_image, "--stage", "check", "--quiet", "--log",
         str(tmp_path / "sleep.log"), "--", "sleep", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    _STARTS[proc.pid] = process_start(proc.pid)
    return proc


def _wait_running(client, proc: subprocess.Popen, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c for c in _containers_of(client, proc.pid) if c["state"] == "running"]
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the harness never started its container")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_harness_removes_its_container(client, base_image, tmp_path, sig):
    proc = _start_harness(base_image, tmp_path)
    try:
        container = _wait_running(client, proc)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert not _containers_of(client, proc.pid), f"{container['name']} survived {sig.name}"
    finally:
        if proc.poll() is None:
            proc.kill()
        _remove(client, _containers_of(client, proc.pid))


def test_cleanup_removes_leftovers_of_a_killed_harness_only(client, base_image, small_profile, tmp_path):
    from harness.stage_names import Stage
    from harness.sandbox.run import create_container
    from harness.sandbox.spec import RunSpec

    proc = _start_harness(base_image, tmp_path)
    mine = None
    try:
        leftover = _wait_running(client, proc)
        proc.kill()  # SIGKILL: no finally block runs
        proc.wait(timeout=30)
        assert _containers_of(client, proc.pid), "SIGKILL should leave the container for cleanup to find"
        # A container whose owner (this test process) is alive must survive a default cleanup.
        mine = create_container(client, small_profile, RunSpec(stage=Stage.CHECK, image=base_image, command=("true",)))
        removed = cleanup(client)
        assert leftover["name"] in removed
        assert mine.name not in removed
        assert not _containers_of(client, proc.pid)
        assert cleanup(client, everything=True).count(mine.name) == 1
        mine = None
    finally:
        _remove(client, _containers_of(client, proc.pid))
        if mine is not None:
            mine.remove(force=True)


def test_cleanup_cli_reports_count(client):
    out = subprocess.run([AECC, "cleanup"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "container(s) removed" in out.stdout


def test_scratch_of_a_killed_harness_is_removed_and_a_live_ones_kept():
    from harness import paths
    from harness.processes import owner_token
    from harness.sandbox.cleanup import remove_stale_scratch

    child = subprocess.run([sys.executable, "-c", "from harness.processes import owner_token; print(owner_token())"],
                           capture_output=True, text=True, check=True)
    dead = paths.scratch() / f"ctl-score-{child.stdout.strip()}-k3y_9x1a"
    live = paths.scratch() / f"ctl-score-{owner_token()}-k3y_9x1a"
    stranger = paths.scratch() / "ctl-score-9x1a2b3c-abcdefgh"  # no owner token: not the harness's to judge
    for folder in (dead, live, stranger):
        folder.mkdir(parents=True)
        (folder / "go.json").write_text("{}")
    try:
        assert remove_stale_scratch() == [dead]
        assert not dead.exists() and live.is_dir() and stranger.is_dir()
    finally:
        for folder in (live, stranger):
            subprocess.run(["rm", "-rf", str(folder)])

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

from harness import engine
from harness.runner import cleanup

AECC = str(Path(sys.executable).parent / "aecc")


def _containers_of(client, pid: int):
    return client.containers.list(
        all=True, filters={"label": [f"{engine.LABEL_MANAGED}=1", f"{engine.LABEL_OWNER_PID}={pid}"]}
    )


def _start_harness(base_image: str, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [AECC, "sandbox", "run", "--image", base_image, "--stage", "check", "--quiet", "--log",
         str(tmp_path / "sleep.log"), "--", "sleep", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )


def _wait_running(client, proc: subprocess.Popen, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c for c in _containers_of(client, proc.pid) if c.status == "running"]
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
        assert not _containers_of(client, proc.pid), f"{container.name} survived {sig.name}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in _containers_of(client, proc.pid):
            c.remove(force=True)


def test_cleanup_removes_leftovers_of_a_killed_harness_only(client, base_image, small_profile, tmp_path):
    from harness.profiles import Stage
    from harness.runner import RunSpec, create_container

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
        assert leftover.name in removed
        assert mine.name not in removed
        assert not _containers_of(client, proc.pid)
        assert cleanup(client, everything=True).count(mine.name) == 1
        mine = None
    finally:
        for c in _containers_of(client, proc.pid):
            c.remove(force=True)
        if mine is not None:
            mine.remove(force=True)


def test_cleanup_cli_reports_count(client):
    out = subprocess.run([AECC, "cleanup"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "container(s) removed" in out.stdout

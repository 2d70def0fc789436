"""A warm-started stage runs exactly as a cold one would, only earlier: it waits for its go without
a clock of its own, then gets the argv it is handed and its own wall clock counted from the go; its
control folder is read-only inside; cancelling it, or leaving its block on an error mid-work, ends
and removes the container and its scratch folders. Real engine, real runtime image."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness import paths
from harness.layers.build import build_chain
from harness.layers.model import AGENT_DIR, runtime_layer
from harness.sandbox import engine
from harness.sandbox.agent import AGENT_TARGET
from harness.sandbox.profiles import load_profile
from harness.stage_names import Stage
from harness.sandbox.spec import Mount, Outcome
from harness.sandbox.warm import WarmStage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime(client) -> str:
    return build_chain(client, runtime_layer(), log=lambda m: None)[-1].image


def _stage(client, runtime: str, tmp_path: Path, *, mounts=(), max_wait_s: float = 60) -> WarmStage:
    return WarmStage(client, load_profile("cpu"), stage=Stage.PREPARE, image=runtime,
                     agent_mount=Mount(AGENT_DIR, AGENT_TARGET), then="checker.prepare", warm=("json",),
                     mounts=list(mounts), log_path=tmp_path / "prepare.log", max_wait_s=max_wait_s)


def _sleeping_task(tmp_path: Path) -> Mount:
    """A task module whose import takes a minute: prepare's work, as long as a test needs."""
    task = tmp_path / "sleepy_task.py"
    task.write_text("import time\ntime.sleep(60)\n")
    task.chmod(0o644)
    return Mount(task, "/tasks/sleepy_task.py")


def _own_container(client, stage: Stage, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = client.api.containers(filters={"label": [f"{engine.LABEL_STAGE}={stage.value}",
                                                        f"{engine.LABEL_MANAGED}=1"]})
        if rows:
            return client.api.inspect_container(rows[0]["Id"])
        time.sleep(0.1)
    raise AssertionError("the warm container never started")


def test_waits_without_a_clock_then_runs_the_argv_it_is_handed(client, runtime, tmp_path):
    with _stage(client, runtime, tmp_path) as stage:
        stage.start(work_limit_s=30)
        attrs = _own_container(client, Stage.PREPARE)
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        assert mounts["/ctl"]["RW"] is False  # the go file is the harness's to write
        assert attrs["HostConfig"]["CpuShares"] == 2  # waiting: only idle CPU
        time.sleep(4)  # longer than the work limit below: waiting does not count
        stage.go(["--help"], limit_s=3)
        result = stage.result()
    assert result.outcome is Outcome.OK, result.detail
    log = result.log_path.read_text()
    assert "aecc-gate: checker.prepare warm" in log and "usage: checker.prepare" in log
    assert not list(paths.scratch().glob("ctl-prepare-*"))


def test_work_past_its_limit_is_a_timeout_counted_from_the_go(client, runtime, tmp_path):
    task = _sleeping_task(tmp_path)
    jobs = [{"task": task.target, "config_function": None, "out": "/tmp/x"}]
    with _stage(client, runtime, tmp_path, mounts=[task]) as stage:
        stage.start(work_limit_s=30)
        time.sleep(3)
        went = time.monotonic()
        stage.go(["--jobs", "/ctl/jobs.json", "--env", "/tmp", "--sampling-rate", "16000", "--hop-ms", "10",
                  "--output-dim", "8"], limit_s=4, files={"jobs.json": jobs})
        assert _own_container(client, Stage.PREPARE)["HostConfig"]["CpuShares"] == 1024  # working: full weight
        result = stage.result()
    assert result.outcome is Outcome.TIMEOUT, result.detail
    assert "counted from its go" in result.detail
    assert 4 <= time.monotonic() - went < 20


def test_cancel_ends_it_cleanly(client, runtime, tmp_path):
    with _stage(client, runtime, tmp_path) as stage:
        stage.start(work_limit_s=30)
        stage.cancel()
        result = stage.result()
    assert result.outcome is Outcome.OK
    assert "cancelled by the harness" in result.log_path.read_text()


def test_no_go_within_max_wait_fails_the_stage(client, runtime, tmp_path):
    with _stage(client, runtime, tmp_path, max_wait_s=3) as stage:
        stage.start(work_limit_s=30)
        result = stage.result()
    assert result.outcome is Outcome.FAILED and result.exit_code == 3
    assert "no go file" in result.log_path.read_text()


def test_an_error_while_it_works_kills_and_removes_it(client, runtime, tmp_path):
    task = _sleeping_task(tmp_path)
    jobs = [{"task": task.target, "config_function": None, "out": "/tmp/x"}]
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with _stage(client, runtime, tmp_path, mounts=[task]) as stage:
            stage.start(work_limit_s=300)
            stage.go(["--jobs", "/ctl/jobs.json", "--env", "/tmp", "--sampling-rate", "16000", "--hop-ms", "10",
                      "--output-dim", "8"], limit_s=300, files={"jobs.json": jobs})
            _own_container(client, Stage.PREPARE)
            raise KeyboardInterrupt
    assert time.monotonic() - started < 30  # not the task's minute, nor the 300 s limit
    assert stage.result().outcome is Outcome.INFRA_ERROR
    assert not client.api.containers(all=True, filters={"label": f"{engine.LABEL_STAGE}=prepare"})


def test_an_error_while_it_waits_kills_it_too(client, runtime, tmp_path):
    """A failed build or fetch must not leave the harness waiting for an import to finish."""
    with pytest.raises(RuntimeError):
        with _stage(client, runtime, tmp_path, max_wait_s=300) as stage:
            stage.start(work_limit_s=30)
            _own_container(client, Stage.PREPARE)
            raise RuntimeError("build failed")
    result = stage.result()
    assert result.outcome is Outcome.INFRA_ERROR and "harness stopped" in result.detail
    assert not client.api.containers(all=True, filters={"label": f"{engine.LABEL_STAGE}=prepare"})


def test_go_refuses_a_limit_over_what_the_container_was_started_with(client, runtime, tmp_path):
    with _stage(client, runtime, tmp_path) as stage:
        stage.start(work_limit_s=10)
        with pytest.raises(ValueError, match="over the 10 s"):
            stage.go(["--help"], limit_s=11)
        with pytest.raises(ValueError, match="control file name"):
            stage.go(["--help"], limit_s=5, files={"../x": []})

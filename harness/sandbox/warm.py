"""Warm start: a trusted stage's container started before its inputs exist.

A stage container pays 3-4 s importing torch and X-ARES before it does any work; run one after the
other, the demo suite's stages spent most of their time importing. A `WarmStage` starts the
prepare or score container at the beginning of a submission's run, where it imports (`checker.gate`)
and then waits for a go file while build, fetch and encode run. `go(argv)` hands it its arguments;
`cancel()` lets it exit when there is nothing to do.

The sandbox is the one `run_stage` gives every stage (same profile, mounts read-only but the
outputs, network off). Only the clock differs: the stage's own wall-clock limit counts from the go,
and the wait before it is bounded by `max_wait_s` (the stages before it have clocks of their own).
Until its go the container runs at the lowest CPU weight, so its imports take idle CPU and never
slow the build or fetch in front of it; the go restores the engine's default weight.
Only trusted stages start warm: a submission's code never sits in a container that waits for its
inputs. (The check's container waits once its own work is done, for the host's decision on it:
`harness.stages.check.check_then_encode`.)
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from checker.jobs import Cancel, Go, gate_message
from harness import paths
from harness.processes import owner_token
from harness.safeio import write_atomic
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage
from harness.sandbox.run import run_stage
from harness.sandbox.spec import Mount, Outcome, RunResult, RunSpec

GO_TARGET = "/ctl/go.json"
LABEL_WARM = "org.aecc.warm-id"
WAITING_CPU_SHARES = 2  # the kernel's minimum weight
WORKING_CPU_SHARES = 1024  # the engine's default


class WarmStage:
    """One stage container, run in a thread of the harness from `start()` until its go and end.

    Use as a context manager: leaving it normally without a go cancels the stage (it exits once
    its imports are done); leaving it on an exception (Ctrl-C, a failed build or fetch, an error
    elsewhere) kills the container, waiting or working. It is removed either way (`run_stage`'s
    own guarantee)."""

    def __init__(self, client: Any, profile: SandboxProfile, *, stage: Stage, image: str, agent_mount: Mount,
                 then: str, warm: Sequence[str], mounts: Sequence[Mount], log_path: Path, max_wait_s: float,
                 env: dict[str, str] | None = None, scratch: Sequence[Path] = (), gpu_uuid: str | None = None):
        # Named by its owner, so that a later run removes it if this process is killed (cleanup).
        self._ctl = Path(tempfile.mkdtemp(prefix=f"ctl-{Stage(stage).value}-{owner_token()}-", dir=paths.scratch()))
        self._ctl.chmod(0o755)  # read by the sandbox user, written by the harness alone
        self._scratch = [self._ctl, *scratch]
        self.stage = Stage(stage)
        self.log_path = Path(log_path)
        self._client, self._profile = client, profile
        self._max_wait_s = max_wait_s
        self._most_s = profile.stage(self.stage).wall_clock_s  # raised by go() to the work's own limit
        command = ["python", "-P", "-m", "checker.gate", "--go", GO_TARGET, "--max-wait", f"{max_wait_s:g}",
                   "--then", then]
        for module in warm:
            command += ["--warm", module]
        self._id = uuid.uuid4().hex
        self._spec_args = dict(stage=self.stage, image=image, command=tuple(command), env=env or {},
                               mounts=(agent_mount, *mounts, Mount(self._ctl, "/ctl")),
                               labels={LABEL_WARM: self._id}, cpu_shares=WAITING_CPU_SHARES, gpu_uuid=gpu_uuid)
        self._go_at: float | None = None
        self._limit_s: float | None = None
        self._abort = threading.Event()
        self._raised = False  # the container's CPU weight is back to the default
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self, work_limit_s: float) -> "WarmStage":
        """Start the container; `work_limit_s` is the most its work may take once it has its go."""
        self._most_s = work_limit_s
        # The engine's own clock: the wait, the work, and a minute for start-up and removal.
        spec = RunSpec(**self._spec_args, wall_clock_s=self._max_wait_s + work_limit_s + 60)
        self._thread = threading.Thread(target=self._run, args=(spec,), name=f"warm-{self.stage.value}", daemon=True)
        self._thread.start()
        return self

    def _run(self, spec: RunSpec) -> None:
        try:
            self._result = run_stage(self._client, self._profile, spec, self.log_path, watch=self._watch)
        except BaseException as exc:  # handed to the thread that asks for the result
            self._error = exc

    def _watch(self, container: Any) -> tuple[Outcome, str] | None:
        if self._go_at is not None and not self._raised:
            self._raised = True  # once: a container that ended meanwhile needs no weight
            try:
                container.update(cpu_shares=WORKING_CPU_SHARES)
            except Exception:  # noqa: BLE001 (docker's and requests' errors alike: it has ended)
                pass
        if self._abort.is_set():
            return Outcome.INFRA_ERROR, f"stopped: the harness stopped before the {self.stage.value} stage finished"
        if self._go_at is not None and self._limit_s is not None and time.monotonic() - self._go_at > self._limit_s:
            return Outcome.TIMEOUT, (f"killed after the {self.stage.value} stage's wall-clock limit of "
                                     f"{self._limit_s:g} s (counted from its go)")
        return None

    def go(self, argv: Sequence[str], limit_s: float, files: dict[str, Any] | None = None) -> None:
        """Hand the waiting stage its arguments; its wall clock of `limit_s` starts now.

        `files` (name -> JSON) are written beside the go file first, at `/ctl/<name>`: the jobs
        list of a stage, which the harness alone writes."""
        if limit_s > self._most_s:
            raise ValueError(f"limit {limit_s:g} s is over the {self._most_s:g} s the container was started with")
        for name, content in (files or {}).items():
            if "/" in name or name.startswith(".") or name == "go.json":
                raise ValueError(f"not a plain control file name: {name!r}")
            (self._ctl / name).write_text(json.dumps(content))
            (self._ctl / name).chmod(0o644)
        self._limit_s = limit_s
        self._go_at = time.monotonic()
        self._signal(Go(tuple(argv)))
        self._raise_weight()

    def _raise_weight(self) -> None:
        """The default CPU weight for the work; if the container is not up yet, it never waited long."""
        import docker.errors
        import requests.exceptions

        try:
            for row in self._client.api.containers(filters={"label": f"{LABEL_WARM}={self._id}"}):
                self._client.api.update_container(row["Id"], cpu_shares=WORKING_CPU_SHARES)
                self._raised = True
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            pass  # it ended meanwhile, or is not up yet: the watch raises it then

    def cancel(self) -> None:
        if self._go_at is None:
            self._go_at = time.monotonic()
            self._limit_s = 60.0
            self._signal(Cancel())

    def _signal(self, message: Go | Cancel) -> None:
        signal(self._ctl, message)

    def result(self) -> RunResult:
        """Wait for the stage to end; re-raise what stopped the harness's side of it."""
        if self._thread is None:
            raise RuntimeError("the warm stage was never started")
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def close(self, failed: bool = False) -> None:
        if self._thread is not None and self._thread.is_alive():
            if failed:  # killed at the next watch (0.5 s), not left to finish its imports
                self._abort.set()
            elif self._go_at is None:
                self.cancel()
            self._thread.join()
        for path in self._scratch:
            shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> "WarmStage":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)


def signal(ctl: Path, message: Go | Cancel) -> None:
    """Write the go file (`GO_TARGET` in the container) into the control folder `ctl`, renamed into
    place so that the agent never reads a part of it."""
    write_atomic(ctl / Path(GO_TARGET).name, gate_message(message), mode=0o644)

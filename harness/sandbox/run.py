"""Run one stage of work in a container under a sandbox profile.

The outcome is read from the container's state as the engine reports it (exit code, `OOMKilled`)
and from what the harness itself did (killed it at the wall-clock limit, killed it for GPU
memory), never from log text: a submission can print anything, including "CUDA out of memory".

Every container is labelled with the harness's PID and host and removed in a `finally`, which
also runs on Ctrl-C and, through the CLI's handler, on SIGTERM. What a SIGKILL of the harness
leaves behind, `aecc cleanup` finds by label and removes.

Logs are streamed to a file up to the profile's cap; the rest is counted, not kept, so a
submission that floods stdout costs the harness neither memory nor disk.
"""


from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.errors import UsageError
from harness.sandbox import engine as eng
from harness.sandbox.cleanup import owner_labels
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage
from harness.sandbox.spec import Mount, Outcome, RunResult, RunSpec
from harness.sandbox.watch import MemoryPeak, size_cap

#: the prefix of every container name the harness gives
CONTAINER_PREFIX = "aecc"

#: set when the harness is stopping (Ctrl-C, SIGTERM in a multi-threaded run): every running stage
#: is killed at its next watch and ends as an infrastructure outcome, never as the submission's failure
STOP = threading.Event()


def _stop_requested(_container: Any) -> tuple[Outcome, str] | None:
    if STOP.is_set():
        return Outcome.INFRA_ERROR, "stopped: the harness was interrupted"
    return None


def container_config(profile: SandboxProfile, spec: RunSpec, *, name: str, network: str | None = None) -> dict:
    """The exact keyword arguments for `client.containers.create`, a pure function of its inputs.

    Kept pure so that tests can compare it with what the daemon reports in `docker inspect`.
    `network` is the network of stages that have one (`harness.sandbox.egress.network_for`).
    """
    from docker.types import DeviceRequest, LogConfig, Ulimit

    policy = profile.stage(spec.stage)
    for mount in spec.mounts:
        if not mount.read_only and not policy.writable_mounts:
            raise UsageError(
                f"stage {spec.stage.value} may not have writable mounts",
                expected=f"read-only mounts (profile {profile.name}, stages.{spec.stage.value}.writable_mounts=false)",
                found=f"{mount.source} -> {mount.target} read-write",
                fix="mount it read-only or change the stage's policy",
            )
    # A trusted build's environment is committed into the image it makes, so only the spec's own
    # (deliberately chosen) variables go in; the sandbox's HOME=/tmp and friends would leak.
    env = {} if spec.trusted_build else dict(profile.env)
    env.update(spec.env)
    labels = dict(spec.labels)
    labels.update(owner_labels(spec.stage, labels.get(eng.LABEL_RUN, name)))
    ulimits = [Ulimit(name=k, soft=v, hard=v) for k, v in sorted(profile.ulimits.items())]
    kwargs: dict[str, Any] = dict(
        image=spec.image,
        command=list(spec.command),
        name=name,
        labels=labels,
        environment=env,
        mounts=[],
        detach=True,
        network_mode=(network or "bridge") if policy.network else "none",
        mem_limit=profile.memory_bytes,
        memswap_limit=profile.memory_bytes + profile.swap_bytes,
        # Swap off means no swapping at all, not just no swap quota.
        mem_swappiness=0 if profile.swap_bytes == 0 else None,
        nano_cpus=int(profile.cpus * 1e9),
        pids_limit=profile.pids_limit,
        shm_size=profile.shm_bytes,
        ulimits=ulimits,
        # The harness keeps the only copy (capped, see _LogPump): a flood costs the engine no disk.
        log_config=LogConfig(type="none", config={}),
        stdin_open=False,
        tty=False,
    )
    if spec.workdir:
        kwargs["working_dir"] = spec.workdir
    if spec.cpu_shares is not None:
        kwargs["cpu_shares"] = spec.cpu_shares
    if spec.trusted_build:
        kwargs["user"] = "0:0"
    else:
        kwargs.update(
            user=profile.user,
            read_only=profile.read_only_root and not spec.writable_root,
            cap_drop=list(profile.cap_drop),
            init=profile.init,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={profile.tmp_bytes},mode=1777"},
        )
        security_opt = []
        if profile.no_new_privileges:
            security_opt.append("no-new-privileges")
        seccomp = profile.seccomp_path()
        if seccomp is not None:
            # The engine takes the profile's text, not a path (the daemon may be on another host).
            security_opt.append("seccomp=" + seccomp.read_text())
        kwargs["security_opt"] = security_opt
        if profile.runtime:
            kwargs["runtime"] = profile.runtime
    if spec.gpu_uuid is not None:
        if profile.gpu is None:
            raise UsageError(
                f"profile {profile.name} has no GPU but a GPU was assigned",
                expected="a profile with a gpu section (e.g. t4)",
                found=f"gpu {spec.gpu_uuid}",
            )
        kwargs["device_requests"] = [
            DeviceRequest(driver=profile.gpu.driver, device_ids=[spec.gpu_uuid], capabilities=[["gpu"]])
        ]
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        # Advisory for the in-container agent; the host-side NVML sampler is the trusted measure.
        env["AECC_GPU_MEMORY_LIMIT_BYTES"] = str(profile.gpu.memory_bytes)
    kwargs["mounts"] = [_docker_mount(m) for m in spec.mounts]
    return kwargs


def _docker_mount(mount: Mount) -> Any:
    from docker.types import Mount as DockerMount

    return DockerMount(target=mount.target, source=str(mount.source), type="bind", read_only=mount.read_only)


def new_container_name(stage: Stage) -> str:
    return f"{CONTAINER_PREFIX}-{Stage(stage).value}-{uuid.uuid4().hex[:12]}"


class _LogPump(threading.Thread):
    """Copies a container's output to a file, keeping at most `cap` bytes and counting the rest.

    It reads an attach stream opened before the container starts, not the engine's log files:
    those rotate, and following them across a rotation repeats or loses bytes, which would make
    the count wrong exactly when a submission floods its output.
    """

    def __init__(self, stream: Any, name: str, path: Path, cap: int, on_line: Callable[[str], None] | None):
        super().__init__(daemon=True, name=f"logs-{name}")
        self.stream = stream
        self.path = path
        self.cap = cap
        self.on_line = on_line
        self.kept = 0
        self.dropped = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with open(self.path, "wb") as out:
                for chunk in self.stream:
                    room = self.cap - self.kept
                    keep = chunk[: max(room, 0)]
                    if keep:
                        out.write(keep)
                        self.kept += len(keep)
                        if self.on_line is not None:
                            self.on_line(keep.decode("utf-8", "replace"))
                    self.dropped += len(chunk) - len(keep)
        except BaseException as exc:  # the container vanished under us; the outcome says why
            self.error = exc


def create_container(client: Any, profile: SandboxProfile, spec: RunSpec, *, name: str | None = None) -> Any:
    """Create (not start) the container for a spec; the caller owns its removal."""
    from harness.sandbox import egress

    network = egress.network_for(client) if profile.stage(spec.stage).network else None
    return client.containers.create(**container_config(profile, spec, name=name or new_container_name(spec.stage),
                                                       network=network))


def run_stage(
    client: Any,
    profile: SandboxProfile,
    spec: RunSpec,
    log_path: Path,
    *,
    before_remove: Callable[[Any], None] | None = None,
    on_log: Callable[[str], None] | None = None,
    gpu_sampler_factory: Callable[[str, str, int], Any] | None = None,
    output_cap: tuple[Path, int] | None = None,
    watch: Callable[[Any], tuple[Outcome, str] | None] | None = None,
) -> RunResult:
    """Run `spec` to completion under `profile` and classify how it ended.

    Args:
        client: a connected Docker client (`harness.sandbox.engine.connect()`).
        profile: the sandbox envelope.
        spec: image, command, mounts.
        log_path: file receiving the container's output, capped at `profile.log_cap_bytes`.
        before_remove: called with the stopped container before it is removed (image builds
            commit it here); its exceptions propagate after the container is removed.
        on_log: called with each kept chunk of output (progress display).
        gpu_sampler_factory: builds the NVML sampler (tests inject a fake).
        output_cap: (host directory, bytes): the container is killed (`output_limit`) once what it
            wrote there passes the cap; polled, so it can overshoot by what it writes in 0.5 s.
        watch: called with the container every 0.5 s while it runs; returning (outcome, detail)
            kills it and makes that the result (a multi-task stage times each task this way).

    Returns:
        A RunResult; engine failures come back as `Outcome.INFRA_ERROR`, never as the work's failure.

    Raises:
        GpuUnavailable: a GPU was assigned but the engine cannot give one to a container.
        UsageError: the spec conflicts with the profile.
        KeyboardInterrupt: passed on after the container is removed.
    """
    import docker.errors
    import requests.exceptions

    policy = profile.stage(spec.stage)
    wall_clock = spec.wall_clock_s if spec.wall_clock_s is not None else policy.wall_clock_s
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    name = new_container_name(spec.stage)
    from harness.sandbox import egress

    network = egress.network_for(client) if profile.stage(spec.stage).network else None
    config = container_config(profile, spec, name=name, network=network)  # usage errors before engine calls
    if spec.gpu_uuid is not None or profile.runtime:
        info = eng.engine_info(client)
        if spec.gpu_uuid is not None:
            eng.require_nvidia(info)
        eng.require_runtime(info, profile.runtime)

    started = time.monotonic()
    started_wall = time.time()
    timed_out = threading.Event()
    gpu_killed = threading.Event()
    watch_verdict: list[tuple[Outcome, str]] = []
    stop_sampler = threading.Event()
    gpu_monitor_error: list[str] = []
    sampler = None
    pump: _LogPump | None = None
    memory: MemoryPeak | None = None
    container = None

    def result(outcome: Outcome, *, exit_code=None, oom=False, detail="") -> RunResult:
        return RunResult(
            stage=spec.stage,
            image=spec.image,
            container_name=name,
            outcome=outcome,
            exit_code=exit_code,
            oom_killed=oom,
            duration_s=round(time.monotonic() - started, 3),
            log_path=log_path,
            log_bytes=pump.kept if pump else 0,
            log_bytes_dropped=pump.dropped if pump else 0,
            detail=detail,
            gpu_uuid=spec.gpu_uuid,
            peak_gpu_bytes=sampler.peak_bytes if sampler is not None else None,
            peak_memory_bytes=memory.peak if memory is not None else None,
        )

    try:
        try:
            container = client.containers.create(**config)
            # Attached before start so that not a byte of output is missed.
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=False)
            container.start()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log_path.write_text(f"engine refused to start the container: {exc}\n")
            return result(Outcome.INFRA_ERROR, detail=f"create/start failed: {exc}")

        pump = _LogPump(stream, name, log_path, profile.log_cap_bytes, on_log)
        pump.start()
        memory = MemoryPeak(container.id, stop_sampler)
        memory.start()
        checks: list[Callable[[Any], tuple[Outcome, str] | None]] = [_stop_requested]
        if output_cap is not None:
            checks.append(size_cap(output_cap[0], output_cap[1], f"output in {output_cap[0].name}"))
        if watch is not None:
            checks.append(watch)

        def watcher() -> None:
            while not stop_sampler.wait(0.5):
                for check in checks:
                    verdict = check(container)
                    if verdict is not None:
                        watch_verdict.append(verdict)
                        _kill_quietly(container)
                        return

        threading.Thread(target=watcher, daemon=True, name=f"watch-{name}").start()
        if spec.gpu_uuid is not None and profile.gpu is not None:
            from harness.sandbox.gpu import GpuMemorySampler

            factory = gpu_sampler_factory or (lambda u, c, limit: GpuMemorySampler(u, c, limit))
            sampler = factory(spec.gpu_uuid, container.id, profile.gpu.memory_bytes)

            def on_exceed() -> None:
                gpu_killed.set()
                _kill_quietly(container)

            def watch_gpu() -> None:
                try:
                    sampler.run_until(stop_sampler, on_exceed)
                except Exception as exc:  # NVML broke: the GPU cap cannot be enforced, so stop the run
                    gpu_monitor_error.append(f"{type(exc).__name__}: {exc}")
                    _kill_quietly(container)

            threading.Thread(target=watch_gpu, daemon=True, name=f"gpu-{name}").start()

        try:
            remaining = max(0.0, wall_clock - (time.monotonic() - started))
            container.wait(timeout=remaining)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as waited:
            # docker-py surfaces a wait past its timeout as one of these, and an engine that went
            # away as the second: only a wait that lasted the whole wall clock is a timeout (the
            # submission's); one cut short is the engine's, whatever state it still reports.
            if time.monotonic() - started < wall_clock - 1.0:
                return result(Outcome.INFRA_ERROR, detail=f"the engine connection broke while waiting: {waited}")
            try:
                container.reload()
                if container.attrs["State"].get("Running"):
                    timed_out.set()
                    container.kill()
                    container.wait(timeout=60)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                return result(Outcome.INFRA_ERROR, detail=f"engine stopped answering: {exc}")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return result(Outcome.INFRA_ERROR, detail=f"waiting for the container failed: {exc}")

        stop_sampler.set()
        memory.join(timeout=5)
        try:
            container.reload()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return result(Outcome.INFRA_ERROR, detail=f"reading the container state failed: {exc}")
        pump.join(timeout=30)
        state = container.attrs["State"]
        exit_code = state.get("ExitCode")
        oom = bool(state.get("OOMKilled"))
        if before_remove is not None:
            before_remove(container)
        if watch_verdict and not timed_out.is_set():
            return result(watch_verdict[0][0], exit_code=exit_code, oom=oom, detail=watch_verdict[0][1])
        if gpu_monitor_error:
            return result(Outcome.INFRA_ERROR, exit_code=exit_code, oom=oom,
                          detail="GPU memory could not be measured, run stopped: " + gpu_monitor_error[0])
        if isinstance(exit_code, int) and exit_code > 128 and not (oom or timed_out.is_set() or gpu_killed.is_set()):
            signal = engine_kill_signal(client, container.id, started_wall)
            if signal is not None:
                return result(Outcome.INFRA_ERROR, exit_code=exit_code, oom=oom,
                              detail=f"the engine stopped the container (signal {signal}: a daemon shutdown or "
                                     "`docker stop`), not the submission")
        outcome, detail = classify(
            state,
            timed_out=timed_out.is_set(),
            gpu_exceeded=gpu_killed.is_set(),
            stage=spec.stage,
            wall_clock_s=wall_clock,
            memory_bytes=profile.memory_bytes,
            gpu_limit_bytes=profile.gpu.memory_bytes if profile.gpu else None,
            gpu_peak_bytes=sampler.peak_bytes if sampler is not None else None,
        )
        return result(outcome, exit_code=exit_code, oom=oom, detail=detail)
    finally:
        stop_sampler.set()
        _remove_quietly(client, container, name)


def engine_kill_signal(client: Any, container_id: str, since: float) -> str | None:
    """The signal the engine sent a container that the harness did not ask to kill (the daemon's own
    shutdown, an operator's `docker stop`), or None when it sent none. The engine records every kill
    it sends as an event; a process that signals itself leaves none, so a submission that ends itself
    with SIGTERM stays its own failure. An engine that cannot answer is going away: that counts too."""
    import docker.errors
    import requests.exceptions

    try:
        events = client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                               filters={"container": container_id, "event": "kill"})
        for event in events:
            return str(((event.get("Actor") or {}).get("Attributes") or {}).get("signal", "?"))
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return f"unknown: the engine did not answer ({type(exc).__name__})"
    return None


def classify(
    state: Mapping[str, Any],
    *,
    timed_out: bool,
    gpu_exceeded: bool,
    stage: Stage,
    wall_clock_s: float,
    memory_bytes: int,
    gpu_limit_bytes: int | None = None,
    gpu_peak_bytes: int | None = None,
) -> tuple[Outcome, str]:
    """How a finished container ended, from the engine's `State` and the harness's own kills.

    The harness's kills come first: a container it killed at the wall clock also exits 137, and
    one killed for GPU memory may have been OOM-flagged on the way. `OOMKilled` counts even with
    exit code 0: some process of the submission hit the memory cap, so the run is not clean.
    """
    exit_code = state.get("ExitCode")
    if timed_out:
        return Outcome.TIMEOUT, f"killed after the {Stage(stage).value} stage's wall-clock limit of {wall_clock_s:g} s"
    if gpu_exceeded:
        return Outcome.GPU_OOM, f"killed: GPU memory {gpu_peak_bytes} B passed the cap of {gpu_limit_bytes} B"
    if state.get("OOMKilled"):
        return Outcome.OOM, f"killed by the kernel at the {memory_bytes / 2**30:g} GiB memory cap"
    if exit_code == 0:
        return Outcome.OK, ""
    detail = f"exited with code {exit_code}"
    if isinstance(exit_code, int) and exit_code > 128:
        detail += f" (signal {exit_code - 128})"
    return Outcome.FAILED, detail


def _kill_quietly(container: Any) -> None:
    try:
        container.kill()
    except Exception:  # already gone; removal in run_stage's finally covers it
        pass


def _remove_quietly(client: Any, container: Any, name: str) -> None:
    """Remove by name even if `create` raised halfway; a second Ctrl-C is caught to finish the job."""
    import docker.errors

    for _attempt in range(3):
        try:
            target = container if container is not None else client.containers.get(name)
            target.remove(force=True, v=True)
            return
        except docker.errors.NotFound:
            return
        except KeyboardInterrupt:
            continue
        except Exception:
            return  # the engine is gone; `aecc cleanup` removes it later by label

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

import dataclasses
import enum
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from harness import engine as eng
from harness.errors import UsageError
from harness.profiles import SandboxProfile, Stage

#: where the in-container agent expects its working copy of the submission, etc.
CONTAINER_PREFIX = "aecc"


class Outcome(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"  # non-zero exit: the work inside failed
    OOM = "oom"  # the kernel killed it at the host-memory cap
    GPU_OOM = "gpu_oom"  # the host saw it pass the GPU memory cap and killed it
    TIMEOUT = "timeout"  # the harness killed it at the stage's wall-clock limit
    OUTPUT_LIMIT = "output_limit"  # the harness killed it for writing more than its output cap
    INFRA_ERROR = "infra_error"  # the engine failed; not the submission's fault

    @property
    def is_submission_failure(self) -> bool:
        return self in (Outcome.FAILED, Outcome.OOM, Outcome.GPU_OOM, Outcome.TIMEOUT, Outcome.OUTPUT_LIMIT)

    @property
    def is_infra_failure(self) -> bool:
        return self is Outcome.INFRA_ERROR


@dataclasses.dataclass(frozen=True)
class Mount:
    """A bind mount; read-only unless the stage's policy allows writing and `read_only=False`."""

    source: Path
    target: str
    read_only: bool = True

    def __post_init__(self) -> None:
        if not Path(self.source).is_absolute():
            raise UsageError("mount source must be an absolute path", expected="/abs/path", found=str(self.source))
        if not Path(self.source).exists():
            raise UsageError(
                "mount source does not exist", expected="an existing file or directory", found=str(self.source)
            )
        if not self.target.startswith("/") or ".." in Path(self.target).parts:
            raise UsageError("mount target must be an absolute container path", expected="/abs/path", found=self.target)

    def to_docker(self) -> dict:
        return {"Type": "bind", "Source": str(self.source), "Target": self.target, "ReadOnly": self.read_only}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What to run: image, command, mounts and environment, for one stage.

    `trusted_build` is for the harness's own image builds only: root, writable root file system
    and the engine's default capabilities (apt needs them); the profile's memory, pids, log and
    wall-clock limits still apply. It is refused for every stage but `build`.
    """

    stage: Stage
    image: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    gpu_uuid: str | None = None
    workdir: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    trusted_build: bool = False
    writable_root: bool = False  # untrusted builds (a submission's pip install) write its layer
    wall_clock_s: float | None = None  # overrides the profile's stage limit (tests scale it down)
    cpu_shares: int | None = None  # relative CPU weight under contention (warm starts wait at low weight)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", Stage(self.stage))
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "mounts", tuple(self.mounts))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        if not self.command:
            raise UsageError("empty command", expected="a command to run in the container", found="[]")
        if not self.image:
            raise UsageError("no image given", expected="an image reference", found=repr(self.image))
        if self.trusted_build and self.stage is not Stage.BUILD:
            raise UsageError(
                "trusted_build is only for the build stage",
                expected="stage=build",
                found=f"stage={self.stage.value}",
            )
        if self.writable_root and self.stage is not Stage.BUILD:
            raise UsageError(
                "writable_root is only for the build stage",
                expected="stage=build",
                found=f"stage={self.stage.value}",
            )
        targets = [m.target for m in self.mounts]
        if len(targets) != len(set(targets)):
            raise UsageError("two mounts share a target", expected="distinct targets", found=", ".join(targets))


@dataclasses.dataclass(frozen=True)
class RunResult:
    stage: Stage
    image: str
    container_name: str
    outcome: Outcome
    exit_code: int | None
    oom_killed: bool
    duration_s: float
    log_path: Path
    log_bytes: int
    log_bytes_dropped: int
    detail: str = ""
    gpu_uuid: str | None = None
    peak_gpu_bytes: int | None = None
    peak_memory_bytes: int | None = None  # host-side, from the container's memory cgroup

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["stage"] = self.stage.value
        data["outcome"] = self.outcome.value
        data["log_path"] = str(self.log_path)
        return data

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, self.log_bytes - max_bytes))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


def _own_start_time() -> str:
    import psutil

    return f"{psutil.Process().create_time():.2f}"


def owner_labels(stage: Stage, run_id: str) -> dict[str, str]:
    return {
        eng.LABEL_MANAGED: "1",
        eng.LABEL_OWNER_PID: str(os.getpid()),
        eng.LABEL_OWNER_START: _own_start_time(),
        eng.LABEL_OWNER_HOST: socket.gethostname(),
        eng.LABEL_STAGE: stage.value,
        eng.LABEL_RUN: run_id,
    }


def container_config(profile: SandboxProfile, spec: RunSpec, *, name: str, network: str | None = None) -> dict:
    """The exact keyword arguments for `client.containers.create`, a pure function of its inputs.

    Kept pure so that tests can compare it with what the daemon reports in `docker inspect`.
    `network` is the network of stages that have one (`harness.egress.network_for`).
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


_CGROUP_ROOT = Path("/sys/fs/cgroup")


def memory_peak_files(container_id: str, root: Path = _CGROUP_ROOT) -> list[Path]:
    """Where the kernel keeps a container's memory high-water mark, for the layouts Docker uses.

    cgroup v1 keeps the peak itself (`memory.max_usage_in_bytes`); v2 kernels from 5.19 keep
    `memory.peak`, older ones only `memory.current`, which the sampler then polls for a maximum.
    """
    return [
        root / "memory" / "docker" / container_id / "memory.max_usage_in_bytes",
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.peak",
        root / "docker" / container_id / "memory.peak",
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.current",
        root / "docker" / container_id / "memory.current",
    ]


class _MemoryPeak(threading.Thread):
    """Host-side peak memory of a container, read from its cgroup while it runs.

    Trusted where the in-container figure is not: the submission can lie about its own RSS but not
    about the cgroup the kernel charges. None when the engine is remote (no cgroup files here).
    """

    def __init__(self, container_id: str, stop: threading.Event, interval_s: float = 0.1):
        super().__init__(daemon=True, name=f"mem-{container_id[:12]}")
        self.files = memory_peak_files(container_id)
        self.stop = stop
        self.interval_s = interval_s
        self.peak: int | None = None

    def run(self) -> None:
        while True:
            for path in self.files:
                try:
                    value = int(path.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                self.peak = value if self.peak is None else max(self.peak, value)
                break
            if self.stop.wait(self.interval_s):
                return


def create_container(client: Any, profile: SandboxProfile, spec: RunSpec, *, name: str | None = None) -> Any:
    """Create (not start) the container for a spec; the caller owns its removal."""
    from harness import egress

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
        client: a connected Docker client (`harness.engine.connect()`).
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
    from harness import egress

    network = egress.network_for(client) if profile.stage(spec.stage).network else None
    config = container_config(profile, spec, name=name, network=network)  # usage errors before engine calls
    if spec.gpu_uuid is not None or profile.runtime:
        info = eng.engine_info(client)
        if spec.gpu_uuid is not None:
            eng.require_nvidia(info)
        eng.require_runtime(info, profile.runtime)

    started = time.monotonic()
    timed_out = threading.Event()
    gpu_killed = threading.Event()
    watch_verdict: list[tuple[Outcome, str]] = []
    stop_sampler = threading.Event()
    gpu_monitor_error: list[str] = []
    sampler = None
    pump: _LogPump | None = None
    memory: _MemoryPeak | None = None
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
        memory = _MemoryPeak(container.id, stop_sampler)
        memory.start()
        checks: list[Callable[[Any], tuple[Outcome, str] | None]] = []
        if output_cap is not None:
            checks.append(size_cap(output_cap[0], output_cap[1], f"output in {output_cap[0].name}"))
        if watch is not None:
            checks.append(watch)
        if checks:

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
            from harness.gpu import GpuMemorySampler

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
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            # docker-py surfaces a wait past its timeout as one of these; check the state to tell
            # a real timeout from an engine that went away.
            try:
                container.reload()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                return result(Outcome.INFRA_ERROR, detail=f"engine stopped answering: {exc}")
            if container.attrs["State"].get("Running"):
                timed_out.set()
                container.kill()
                container.wait(timeout=60)
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


def size_cap(directory: Path, cap: int, what: str) -> Callable[[Any], tuple[Outcome, str] | None]:
    """A `watch` for `run_stage`: `output_limit` once `directory` holds more than `cap` bytes."""

    def check(_container: Any) -> tuple[Outcome, str] | None:
        if directory_size(directory) > cap:
            return Outcome.OUTPUT_LIMIT, f"killed: {what} passed its cap of {cap} B"
        return None

    return check


def discard_over_cap(directory: Path, cap: int) -> bool:
    """Empty `directory` if it holds more than `cap` bytes (what a writer killed at a cap left: junk
    that would otherwise stay on the host disk). Best effort; True if it was over."""
    import shutil

    if directory_size(directory) <= cap:
        return False
    for child in list(directory.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    return True


def directory_size(root: Path) -> int:
    """Bytes under `root`, without following links (a container may plant them)."""
    total = 0
    stack = [Path(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


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


def cleanup(client: Any, *, everything: bool = False) -> list[str]:
    """Remove containers the harness left behind; returns their names.

    By default only those whose owning harness process is gone (on this host) are removed, so a
    cleanup never pulls the rug from under a running harness; `everything=True` removes all.
    """
    import psutil

    removed = []
    host = socket.gethostname()
    # The raw list, not `containers.list`: that inspects each container after listing it and
    # fails with 404 when one is removed in between (another harness finishing, say).
    for row in client.api.containers(all=True, filters={"label": f"{eng.LABEL_MANAGED}=1"}):
        labels = row.get("Labels") or {}
        name = (row.get("Names") or ["/?"])[0].lstrip("/")
        owner_alive = False
        try:
            pid = int(labels.get(eng.LABEL_OWNER_PID, "0"))
            if labels.get(eng.LABEL_OWNER_HOST) == host and pid > 0:
                # The start time guards against a recycled PID keeping a leftover alive forever.
                owner_alive = f"{psutil.Process(pid).create_time():.2f}" == labels.get(eng.LABEL_OWNER_START)
        except (ValueError, psutil.Error):
            pass
        if everything or not owner_alive:
            try:
                client.api.remove_container(row["Id"], force=True, v=True)
                removed.append(name)
            except Exception:
                pass
    return removed

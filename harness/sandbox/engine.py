"""The container engine: one place that connects to it and reads what it can do.

Every other module receives a connected `docker.DockerClient` from here, so an unreachable engine
is reported once, as an infrastructure error with the command that fixes it, before any work.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any

from harness.errors import EngineUnavailable, GpuUnavailable

#: label put on every container, image and volume the harness creates; `aecc cleanup` keys on it
LABEL_MANAGED = "org.aecc.managed"
LABEL_OWNER_PID = "org.aecc.owner-pid"
LABEL_OWNER_HOST = "org.aecc.owner-host"
LABEL_OWNER_START = "org.aecc.owner-start"
LABEL_STAGE = "org.aecc.stage"
LABEL_RUN = "org.aecc.run-id"

SETUP_SCRIPT = "scripts/engine-setup.sh"


def connect(timeout_s: float = 120.0) -> Any:
    """A Docker client that has answered a ping.

    Raises:
        EngineUnavailable: the engine does not answer, with how to start one.
    """
    import docker  # heavy-ish import kept out of module import time

    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
        return client
    except Exception as exc:  # DockerException, requests errors, FileNotFoundError for the socket
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise EngineUnavailable(
            "no container engine answers",
            expected=f"a Docker engine (API >= 1.41) listening at {host}",
            found=f"{type(exc).__name__}: {exc}",
            fix=f"run `sudo bash {SETUP_SCRIPT}` (installs Debian's docker.io and starts dockerd), "
            "or start your engine and set DOCKER_HOST",
        ) from None


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    server_version: str
    api_version: str
    storage_driver: str
    cgroup_version: str
    cgroup_driver: str
    runtimes: tuple[str, ...]
    default_runtime: str
    security_options: tuple[str, ...]
    docker_root_dir: str
    os: str
    kernel: str
    ncpu: int
    mem_total_bytes: int

    @property
    def seccomp(self) -> bool:
        return any("seccomp" in opt for opt in self.security_options)

    @property
    def nvidia(self) -> bool:
        return nvidia_support(self.runtimes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["nvidia_runtime"] = self.nvidia
        return data


def engine_info(client: Any) -> EngineInfo:
    info = client.info()
    version = client.version()
    return EngineInfo(
        server_version=str(info.get("ServerVersion", "?")),
        api_version=str(version.get("ApiVersion", "?")),
        storage_driver=str(info.get("Driver", "?")),
        cgroup_version=str(info.get("CgroupVersion", "1")),
        cgroup_driver=str(info.get("CgroupDriver", "?")),
        runtimes=tuple(sorted((info.get("Runtimes") or {}).keys())),
        default_runtime=str(info.get("DefaultRuntime", "runc")),
        security_options=tuple(info.get("SecurityOptions") or ()),
        docker_root_dir=str(info.get("DockerRootDir", "/var/lib/docker")),
        os=str(info.get("OperatingSystem", "?")),
        kernel=str(info.get("KernelVersion", "?")),
        ncpu=int(info.get("NCPU", 0)),
        mem_total_bytes=int(info.get("MemTotal", 0)),
    )


def nvidia_support(runtimes: tuple[str, ...]) -> bool:
    """Whether the engine can honour an NVIDIA device request.

    Docker passes `--gpus` requests to the NVIDIA Container Toolkit either through a registered
    `nvidia` runtime or through `nvidia-container-runtime-hook` on the daemon's PATH; either is enough.
    """
    return "nvidia" in runtimes or shutil.which("nvidia-container-runtime-hook") is not None


def require_nvidia(info: EngineInfo) -> None:
    """Raises GpuUnavailable naming the fix when the engine cannot start GPU containers."""
    if not info.nvidia:
        raise GpuUnavailable(
            "the engine has no NVIDIA container runtime, so a GPU cannot be given to a container",
            expected="the NVIDIA Container Toolkit: an 'nvidia' runtime or nvidia-container-runtime-hook",
            found="runtimes: " + ", ".join(info.runtimes),
            fix="install nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker` "
            "and restart the engine; or use --profile cpu",
        )


def require_runtime(info: EngineInfo, runtime: str | None) -> None:
    """Raises EngineUnavailable when a profile names an OCI runtime the engine lacks (e.g. gVisor)."""
    if runtime and runtime not in info.runtimes:
        raise EngineUnavailable(
            f"the profile asks for the {runtime!r} runtime, which the engine does not have",
            expected=f"{runtime!r} among the engine's runtimes",
            found=", ".join(info.runtimes),
            fix="install it (gVisor: `runsc install` then restart dockerd) or set \"runtime\": null",
        )

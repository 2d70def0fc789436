"""GPUs seen from the host through NVML: inventory, pinning and trusted memory measurement.

The cap a submission can set on itself (`torch.cuda.set_per_process_memory_fraction`) is
cooperative, so the harness measures GPU memory from the host: NVML lists the compute processes
on a device with their *host* PIDs (the driver ignores PID namespaces), and each PID is mapped to
its container through `/proc/<pid>/cgroup`. NVML is loaded lazily, never at import, so the harness
imports on machines without a driver.

NVML needs a GPU; on a CPU host only the logic around it is tested, with a fake NVML module.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from harness.errors import GpuUnavailable


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    compute_capability: str
    driver_version: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _load_nvml() -> Any:
    import pynvml  # from nvidia-ml-py; imports fine without a driver, nvmlInit is what fails

    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def list_gpus(nvml: Any | None = None) -> list[GpuInfo]:
    """Every GPU NVML reports, in NVML index order.

    Raises:
        GpuUnavailable: NVML cannot be initialised (no driver, no GPU) with NVML's own reason.
    """
    nvml = nvml or _load_nvml()
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError has many subclasses; all mean "no usable driver"
        raise GpuUnavailable(
            "NVML could not be initialised: no NVIDIA driver or GPU on this host",
            expected="an NVIDIA driver with at least one GPU (libnvidia-ml.so)",
            found=f"{type(exc).__name__}: {exc}",
            fix="install the NVIDIA driver, or run with --profile cpu on a machine without GPUs",
        ) from None
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_total_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                    compute_capability=f"{major}.{minor}",
                    driver_version=driver,
                )
            )
        return gpus
    finally:
        nvml.nvmlShutdown()


def pick_gpu(gpus: Iterable[GpuInfo], wanted: str | None, min_memory_bytes: int) -> GpuInfo:
    """Choose the GPU a container is pinned to: by UUID or index if asked, else the first that fits.

    Raises:
        GpuUnavailable: no GPU, the asked one is absent, or it has less memory than the profile.
    """
    gpus = list(gpus)
    if not gpus:
        raise GpuUnavailable(
            "the profile needs a GPU but none was found",
            expected="one NVIDIA GPU",
            found="none",
            fix="run on a GPU machine, or use --profile cpu",
        )
    if wanted is not None:
        chosen = [g for g in gpus if g.uuid == wanted or str(g.index) == wanted]
        if not chosen:
            raise GpuUnavailable(
                f"GPU {wanted!r} not found",
                expected="a UUID or index from `aecc doctor`",
                found=", ".join(f"{g.index}:{g.uuid}" for g in gpus),
                fix="pass --gpu with one of the listed UUIDs",
            )
        candidates = chosen
    else:
        candidates = gpus
    for gpu in candidates:
        if gpu.memory_total_bytes >= min_memory_bytes:
            return gpu
    raise GpuUnavailable(
        "no GPU has the memory the profile promises",
        expected=f">= {min_memory_bytes / 2**30:.1f} GiB",
        found=", ".join(f"{g.name} {g.memory_total_bytes / 2**30:.1f} GiB" for g in candidates),
        fix="use a larger GPU or a profile with a smaller gpu.memory",
    )


def pid_in_container(pid: int, container_id: str, proc: Path = Path("/proc")) -> bool:
    """Whether a host PID belongs to the container, from the cgroup paths the kernel lists for it.

    Works for cgroup v1 (`/docker/<id>` in each hierarchy) and v2 (`/system.slice/docker-<id>.scope`).
    """
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return False  # the process ended between NVML's listing and this read
    return container_id in text


@dataclasses.dataclass
class GpuMemorySampler:
    """Polls NVML for the GPU memory used by one container's processes on one GPU.

    `sample()` is one poll; `run_until(stop)` polls in a thread and calls `on_exceed` once when the
    container's sum passes `limit_bytes`. Polling can miss a spike shorter than the interval; the
    peak is therefore a lower bound, and the in-process allocator cap stays in place as well.
    """

    gpu_uuid: str
    container_id: str
    limit_bytes: int
    nvml: Any = None
    interval_s: float = 0.2
    proc: Path = Path("/proc")
    peak_bytes: int = 0
    exceeded: bool = False
    _handle: Any = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")

    def open(self) -> None:
        self.nvml = self.nvml or _load_nvml()
        self.nvml.nvmlInit()
        self._handle = self.nvml.nvmlDeviceGetHandleByUUID(self.gpu_uuid)

    def close(self) -> None:
        if self._handle is not None:
            self.nvml.nvmlShutdown()
            self._handle = None

    def sample(self) -> int:
        processes = self.nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        used = sum(
            int(p.usedGpuMemory or 0) for p in processes if pid_in_container(p.pid, self.container_id, self.proc)
        )
        self.peak_bytes = max(self.peak_bytes, used)
        if used > self.limit_bytes:
            self.exceeded = True
        return used

    def run_until(self, stop: threading.Event, on_exceed: Callable[[], None]) -> None:
        self.open()
        try:
            while not stop.is_set():
                self.sample()
                if self.exceeded:
                    on_exceed()
                    return
                stop.wait(self.interval_s)
        finally:
            self.close()


def pin_gpu(profile: Any, requested: str | None = None) -> str | None:
    """The UUID of the GPU a run under `profile` gets (None for a profile without a GPU).

    Raises:
        GpuUnavailable: the profile needs a GPU and none with enough memory is visible, or `requested`
            names none of them.
    """
    if profile.gpu is None:
        return None
    return pick_gpu(list_gpus(), requested, profile.gpu.memory_bytes).uuid

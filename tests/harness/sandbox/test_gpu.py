"""GPU logic around NVML: inventory, pinning choice and the host-side memory measure that maps
NVML's host PIDs to one container. NVML itself needs a GPU, so here it is a fake with NVML's
shape (the one thing the project allows to be faked); the real calls run only on GPU hosts."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from harness.errors import GpuUnavailable
from harness.sandbox.gpu import (
    GpuInfo,
    GpuMemorySampler,
    list_gpus,
    pick_gpu,
    pid_in_container,
)

GiB = 1024**3
CID = "a" * 64


class FakeNvml:
    def __init__(self, devices, processes=None, fail_init=False):
        self.devices = devices
        self.processes = processes or []
        self.fail_init = fail_init
        self.inits = 0
        self.shutdowns = 0

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return b"550.54.15"

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return [d["uuid"] for d in self.devices].index(uuid)

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return self.devices[h]["cc"]

    def nvmlDeviceGetUUID(self, h):
        return self.devices[h]["uuid"]

    def nvmlDeviceGetName(self, h):
        return self.devices[h]["name"]

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=self.devices[h]["mem"])

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return self.processes


T4 = {"uuid": "GPU-t4", "name": "Tesla T4", "mem": 15 * GiB + 360 * 1024**2, "cc": (7, 5)}
H100 = {"uuid": "GPU-h100", "name": "NVIDIA H100", "mem": 80 * GiB, "cc": (9, 0)}


def test_list_gpus_reads_nvml_and_shuts_it_down():
    nvml = FakeNvml([T4, H100])
    gpus = list_gpus(nvml)
    assert [(g.index, g.uuid, g.name, g.compute_capability) for g in gpus] == [
        (0, "GPU-t4", "Tesla T4", "7.5"),
        (1, "GPU-h100", "NVIDIA H100", "9.0"),
    ]
    assert gpus[0].driver_version == "550.54.15"
    assert nvml.inits == nvml.shutdowns == 1


def test_no_driver_is_gpu_unavailable_with_the_reason():
    with pytest.raises(GpuUnavailable) as err:
        list_gpus(FakeNvml([], fail_init=True))
    assert "Not Found" in str(err.value) and "--profile cpu" in str(err.value)


def _gpu(i, uuid, mem):
    return GpuInfo(i, uuid, "x", mem, "7.5", "1")


def test_pick_gpu_by_uuid_index_or_first_that_fits():
    gpus = [_gpu(0, "GPU-small", 8 * GiB), _gpu(1, "GPU-big", 16 * GiB)]
    assert pick_gpu(gpus, None, 15 * GiB).uuid == "GPU-big"
    assert pick_gpu(gpus, "GPU-big", 15 * GiB).index == 1
    assert pick_gpu(gpus, "1", 15 * GiB).uuid == "GPU-big"
    with pytest.raises(GpuUnavailable, match="memory"):
        pick_gpu(gpus, "GPU-small", 15 * GiB)
    with pytest.raises(GpuUnavailable, match="not found"):
        pick_gpu(gpus, "GPU-nope", 1)
    with pytest.raises(GpuUnavailable, match="none"):
        pick_gpu([], None, 1)


def _fake_proc(tmp_path, pids_to_cgroup):
    for pid, text in pids_to_cgroup.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(text)
    return tmp_path


def test_pid_mapping_for_cgroup_v1_and_v2(tmp_path):
    proc = _fake_proc(tmp_path, {
        10: f"12:memory:/docker/{CID}\n11:pids:/docker/{CID}\n",
        11: f"0::/system.slice/docker-{CID}.scope\n",
        12: "0::/user.slice/session-1.scope\n",
    })
    assert pid_in_container(10, CID, proc)
    assert pid_in_container(11, CID, proc)
    assert not pid_in_container(12, CID, proc)
    assert not pid_in_container(99, CID, proc)  # ended between listing and reading


def test_sampler_counts_only_the_containers_processes_and_flags_the_cap(tmp_path):
    proc = _fake_proc(tmp_path, {
        100: f"1:memory:/docker/{CID}\n",
        101: f"1:memory:/docker/{CID}\n",
        200: "1:memory:/docker/" + "b" * 64 + "\n",
    })
    nvml = FakeNvml([T4], processes=[
        SimpleNamespace(pid=100, usedGpuMemory=6 * GiB),
        SimpleNamespace(pid=101, usedGpuMemory=4 * GiB),
        SimpleNamespace(pid=200, usedGpuMemory=30 * GiB),  # another tenant's: not ours
    ])
    sampler = GpuMemorySampler("GPU-t4", CID, limit_bytes=15 * GiB, nvml=nvml, proc=proc)
    sampler.open()
    assert sampler.sample() == 10 * GiB and not sampler.exceeded
    nvml.processes.append(SimpleNamespace(pid=100, usedGpuMemory=6 * GiB))
    assert sampler.sample() == 16 * GiB and sampler.exceeded
    assert sampler.peak_bytes == 16 * GiB
    sampler.close()
    assert nvml.shutdowns == 1


def test_sampler_thread_calls_on_exceed_once(tmp_path):
    proc = _fake_proc(tmp_path, {100: f"1:memory:/docker/{CID}\n"})
    nvml = FakeNvml([T4], processes=[SimpleNamespace(pid=100, usedGpuMemory=20 * GiB)])
    sampler = GpuMemorySampler("GPU-t4", CID, limit_bytes=15 * GiB, nvml=nvml, proc=proc, interval_s=0.01)
    calls = []
    stop = threading.Event()
    t = threading.Thread(target=sampler.run_until, args=(stop, lambda: calls.append(1)))
    t.start()
    t.join(timeout=5)
    assert calls == [1] and not t.is_alive()
    assert nvml.inits == nvml.shutdowns == 1

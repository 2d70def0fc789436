"""On a GPU host, a GPU stage sees exactly the GPU it was pinned to and no other, torch inside it
can compute on that GPU, and the host's NVML sampler attributes the container's GPU memory to it.

Marked `gpu`: they need an NVIDIA GPU, its driver and the NVIDIA Container Toolkit, and are skipped,
with the reason, anywhere else. The CPU-host half of the same guarantees (the exact device request
by UUID, no NVIDIA_VISIBLE_DEVICES, the T4 envelope, the missing-runtime error) is in
test_run_gpu.py and test_gpu.py, which run everywhere.
"""

from __future__ import annotations

import json

import pytest

from harness.errors import GpuUnavailable
from harness.sandbox.profiles import load_profile
from harness.stage_names import Stage
from harness.sandbox.spec import Outcome, RunSpec

pytestmark = pytest.mark.gpu

# Allocates 1 GiB on the one visible device, does a matrix product on it, and prints what it saw.
PROBE = """
import json, torch
n = torch.cuda.device_count()
props = torch.cuda.get_device_properties(0)
x = torch.empty(256 * 1024 * 1024, dtype=torch.float32, device="cuda")  # 1 GiB, held while sampled
a = torch.randn(2048, 2048, device="cuda")
ok = bool(torch.isfinite(a @ a).all())
torch.cuda.synchronize()
import time; time.sleep(3)
print("AECC-PROBE " + json.dumps({"count": n, "uuid": str(props.uuid), "name": props.name, "ok": ok}))
"""


@pytest.fixture(scope="module")
def gpus(client):
    from harness.sandbox import engine, gpu

    if not engine.engine_info(client).nvidia:
        pytest.skip("this engine has no NVIDIA runtime (install the NVIDIA Container Toolkit, then "
                    "`nvidia-ctk runtime configure --runtime=docker`)")
    try:
        found = gpu.list_gpus()
    except GpuUnavailable as err:
        pytest.skip(f"NVML sees no GPU here: {err}")
    if not found:
        pytest.skip("NVML sees no GPU here")
    return found


@pytest.fixture(scope="module")
def torch_image(client, gpus) -> str:
    """The runtime's CUDA torch layer (a cache hit after `make images`)."""
    from harness.layers.build import build_chain
    from harness.layers.model import torch_layer

    return build_chain(client, torch_layer(), log=lambda m: None)[-1].image


def _probe(client, image: str, uuid: str, tmp_path) -> tuple[dict, object]:
    from harness.sandbox.run import run_stage

    spec = RunSpec(stage=Stage.ENCODE, image=image, command=("/opt/venv/bin/python", "-c", PROBE), gpu_uuid=uuid,
                   wall_clock_s=300)
    result = run_stage(client, load_profile("t4"), spec, tmp_path / f"probe-{uuid}.log")
    log = result.log_path.read_text(errors="replace")
    assert result.outcome is Outcome.OK, f"{result.outcome}: {result.detail}\n{log[-2000:]}"
    line = next(x for x in log.splitlines() if x.startswith("AECC-PROBE "))
    return json.loads(line.split(" ", 1)[1]), result


def _same_gpu(torch_uuid: str, nvml_uuid: str) -> bool:
    # NVML says "GPU-<uuid>", torch prints the bare uuid.
    return nvml_uuid.lower().removeprefix("gpu-") == torch_uuid.lower().removeprefix("gpu-")


def test_each_pinned_container_sees_exactly_its_own_gpu(client, gpus, torch_image, tmp_path):
    for info in gpus:
        seen, _ = _probe(client, torch_image, info.uuid, tmp_path)
        assert seen["count"] == 1, f"pinned to {info.uuid}, the container saw {seen['count']} GPUs"
        assert _same_gpu(seen["uuid"], info.uuid), f"pinned to {info.uuid}, the container saw {seen['uuid']}"
        assert seen["ok"]


def test_the_host_sampler_sees_the_containers_gpu_memory(client, gpus, torch_image, tmp_path):
    _, result = _probe(client, torch_image, gpus[0].uuid, tmp_path)
    assert result.gpu_uuid == gpus[0].uuid
    # The probe holds 1 GiB for 3 s while the sampler polls NVML for the container's processes.
    assert result.peak_gpu_bytes is not None and result.peak_gpu_bytes >= 1024**3, result.peak_gpu_bytes
    assert result.peak_gpu_bytes < load_profile("t4").gpu.memory_bytes


def test_validate_on_the_t4_profile_runs_the_cuda_check(client, gpus, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    out = tmp_path / "report.json"
    proc = subprocess.run([str(Path(sys.executable).parent / "aecc"), "validate", str(repo / "examples" / "good_encoder"),
                           "--profile", "t4", "--gpu", gpus[0].uuid, "--json-out", str(out)],
                          capture_output=True, text=True, timeout=1800, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["cuda"]["status"] == "passed", checks["cuda"]  # skipped only where no GPU is visible
    assert report["resources"]["peak_gpu_memory_bytes"] is not None

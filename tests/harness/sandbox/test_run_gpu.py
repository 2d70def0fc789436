"""GPU containers are pinned by UUID through an exact device request, carry the T4 envelope, and a
host without an NVIDIA runtime gets a clear infrastructure error instead of a failed submission.
(No GPU exists on CI: the request is checked in `docker inspect` of a created, never started,
container; starting one needs a GPU machine.)"""

from __future__ import annotations

import pytest

from harness.errors import GpuUnavailable, UsageError
from harness.sandbox.profiles import load_profile
from harness.stage_names import Stage
from harness.sandbox.run import create_container, run_stage
from harness.sandbox.spec import RunSpec

GiB = 1024**3
FAKE_UUID = "GPU-5f2b7c1e-0d3a-4b8e-9c61-2a7f0e4d9b13"


@pytest.fixture()
def created(client, base_image):
    made = []

    def make(profile, spec):
        c = create_container(client, profile, spec)
        made.append(c)
        c.reload()
        return c.attrs

    yield make
    for c in made:
        c.remove(force=True)


def test_device_request_pins_the_assigned_gpu_by_uuid(created, base_image):
    attrs = created(load_profile("t4"), RunSpec(stage=Stage.ENCODE, image=base_image, command=("true",),
                                                gpu_uuid=FAKE_UUID))
    requests = attrs["HostConfig"]["DeviceRequests"]
    assert requests == [
        {"Driver": "nvidia", "Count": 0, "DeviceIDs": [FAKE_UUID], "Capabilities": [["gpu"]], "Options": {}}
    ]
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert env["NVIDIA_TF32_OVERRIDE"] == "0"
    assert env["AECC_GPU_MEMORY_LIMIT_BYTES"] == str(15 * GiB)
    assert "NVIDIA_VISIBLE_DEVICES" not in env  # the device request, not an env var, selects the GPU


def test_t4_host_config_is_the_profile(created, base_image):
    host = created(load_profile("t4"), RunSpec(stage=Stage.CHECK, image=base_image, command=("true",),
                                               gpu_uuid=FAKE_UUID))["HostConfig"]
    assert host["Memory"] == 12 * GiB
    assert host["MemorySwap"] == 12 * GiB  # swap off
    assert host["MemorySwappiness"] == 0
    assert host["NanoCpus"] == 2 * 10**9
    assert host["PidsLimit"] == 1024
    assert host["ShmSize"] == 1 * GiB
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["Init"] is True
    assert host["NetworkMode"] == "none"
    assert "no-new-privileges" in host["SecurityOpt"]
    assert any(opt.startswith("seccomp=") and "SCMP_ACT_ERRNO" in opt for opt in host["SecurityOpt"])
    assert "size=2147483648" in host["Tmpfs"]["/tmp"]
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {"core": 0, "nofile": 4096}
    assert host["Privileged"] is False


def test_fetch_stage_gets_network(created, base_image, client):
    from harness.sandbox import egress

    host = created(load_profile("t4"), RunSpec(stage=Stage.FETCH, image=base_image, command=("true",)))["HostConfig"]
    assert host["NetworkMode"] == egress.network_for(client) == egress.NETWORK  # set up by engine-setup.sh
    assert not host.get("DeviceRequests")


def test_no_nvidia_runtime_is_a_clear_infra_error(client, base_image, tmp_path):
    from harness.sandbox import engine

    if engine.engine_info(client).nvidia:
        pytest.skip("this engine has an NVIDIA runtime; the error path cannot be shown here")
    spec = RunSpec(stage=Stage.ENCODE, image=base_image, command=("true",), gpu_uuid=FAKE_UUID)
    with pytest.raises(GpuUnavailable) as err:
        run_stage(client, load_profile("t4"), spec, tmp_path / "log")
    message = str(err.value)
    assert "nvidia-container-toolkit" in message and "--profile cpu" in message
    assert err.value.exit_code == 2  # infrastructure, never the submission's fault


def test_gpu_on_a_cpu_profile_is_a_usage_error(base_image, tmp_path, client):
    spec = RunSpec(stage=Stage.ENCODE, image=base_image, command=("true",), gpu_uuid=FAKE_UUID)
    with pytest.raises(UsageError, match="no GPU"):
        run_stage(client, load_profile("cpu"), spec, tmp_path / "log")

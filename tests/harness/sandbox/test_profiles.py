"""Sandbox profiles are data: the shipped ones say what the T4 envelope promises, and a profile
with an unknown key or a size without a unit is refused with the offending key named."""

from __future__ import annotations

import copy
import json

import pytest

from harness.errors import ConfigError
from harness.sandbox.profiles import (
    PROFILES_DIR,
    Stage,
    load_profile,
    parse_duration,
    parse_size,
    profile_from_dict,
)

GiB = 1024**3


def _raw(name: str) -> dict:
    return json.loads((PROFILES_DIR / f"{name}.json").read_text())


def test_t4_profile_is_the_colab_t4_envelope():
    p = load_profile("t4")
    assert p.memory_bytes == 12 * GiB
    assert p.swap_bytes == 0  # swap off: memory_swap == memory
    assert p.gpu is not None and p.gpu.memory_bytes == 15 * GiB
    assert p.gpu.emulate_compute_capability == "7.5"
    assert p.env["NVIDIA_TF32_OVERRIDE"] == "0"
    assert p.read_only_root and p.no_new_privileges and p.init
    assert p.cap_drop == ("ALL",)
    assert not p.user.startswith("0:")
    assert p.seccomp_path() is not None and p.seccomp_path().is_file()
    assert p.stage(Stage.FETCH).network is True
    for stage in (Stage.CHECK, Stage.PREPARE, Stage.ENCODE, Stage.SCORE):
        assert p.stage(stage).network is False, stage


def test_cpu_profile_is_t4_without_gpu():
    t4, cpu = load_profile("t4"), load_profile("cpu")
    assert cpu.gpu is None
    for field in ("memory_bytes", "swap_bytes", "cpus", "pids_limit", "shm_bytes", "tmp_bytes", "user", "cap_drop",
                  "seccomp", "log_cap_bytes"):
        assert getattr(cpu, field) == getattr(t4, field), field
    assert dict(cpu.stages) == dict(t4.stages)


def test_profile_is_frozen():
    p = load_profile("cpu")
    with pytest.raises(Exception):
        p.memory_bytes = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "path, bad",
    [
        (("pid_limit",), 10),
        (("stages", "check", "walltime"), "1s"),
        (("gpu", "vram"), "16GiB"),
        (("ulimits", "stack"), 8),
    ],
)
def test_unknown_key_is_refused_and_named(path, bad):
    data = _raw("t4")
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    with pytest.raises(ConfigError) as err:
        profile_from_dict(data, origin="t4.json")
    assert path[-1] in str(err.value)
    assert "unknown key" in str(err.value)


@pytest.mark.parametrize("key, value", [("memory", "12"), ("memory", 12), ("tmp_size", "2048"), ("log_cap", 10)])
def test_unitless_size_is_refused_and_named(key, value):
    data = _raw("cpu")
    data[key] = value
    with pytest.raises(ConfigError) as err:
        profile_from_dict(data, origin="cpu.json")
    message = str(err.value)
    assert f"'{key}'" in message and "unit" in message


def test_unitless_nested_size_and_duration_are_named():
    data = _raw("t4")
    data["gpu"]["memory"] = "15"
    with pytest.raises(ConfigError, match="gpu.memory"):
        profile_from_dict(copy.deepcopy(data))
    data = _raw("t4")
    data["stages"]["encode"]["wall_clock"] = 7200
    with pytest.raises(ConfigError, match="stages.encode.wall_clock"):
        profile_from_dict(data)


def test_root_user_is_refused():
    data = _raw("cpu")
    data["user"] = "0:0"
    with pytest.raises(ConfigError):
        profile_from_dict(data)


def test_missing_stage_is_refused():
    data = _raw("cpu")
    del data["stages"]["encode"]
    with pytest.raises(ConfigError, match="encode"):
        profile_from_dict(data)


def test_unknown_profile_name_lists_known_ones():
    with pytest.raises(ConfigError) as err:
        load_profile("a100")
    assert "t4" in str(err.value) and "cpu" in str(err.value)


@pytest.mark.parametrize(
    "text, expected", [("12GiB", 12 * GiB), ("512 MiB", 512 * 1024**2), ("0B", 0), ("1.5GB", 1_500_000_000)]
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text, expected", [("90s", 90.0), ("20min", 1200.0), ("2h", 7200.0), ("250ms", 0.25)])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["12", "12g", "twelve", ""])
def test_parse_size_refuses_missing_or_unknown_unit(text):
    with pytest.raises(ConfigError):
        parse_size(text)


def test_custom_profile_file_loads(tmp_path):
    data = _raw("cpu")
    data["name"] = "tiny"
    data["memory"] = "1GiB"
    (tmp_path / "tiny.json").write_text(json.dumps(data))
    (tmp_path / "seccomp.json").write_text((PROFILES_DIR / "seccomp.json").read_text())
    p = load_profile(tmp_path / "tiny.json")
    assert p.memory_bytes == GiB
    assert p.seccomp_path() == (tmp_path / "seccomp.json").resolve()

"""`aecc doctor` reports required vs found for every prerequisite, as a table and as JSON valid
against its schema, and exits non-zero exactly when the harness cannot work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema

from harness import doctor
from harness.errors import EngineUnavailable, GpuUnavailable
from harness.sandbox.gpu import GpuInfo

AECC = str(Path(sys.executable).parent / "aecc")
SCHEMA = json.loads((Path(doctor.__file__).parent / "schemas" / "doctor.schema.json").read_text())


def _by_id(report):
    return {c.id: c for c in report.checks}


def _no_gpu():
    raise GpuUnavailable("no NVML", found="NVMLError_LibraryNotFound")


def test_real_engine_passes_the_cpu_profile(client):
    report = doctor.run_doctor("cpu", list_gpus=_no_gpu)
    checks = _by_id(report)
    assert report.ok, [c for c in report.checks if c.status is doctor.Status.FAIL]
    assert checks["engine"].status is doctor.Status.OK and "API" in checks["engine"].found
    assert checks["storage_driver"].found == report.engine["storage_driver"]
    assert checks["seccomp"].status is doctor.Status.OK
    assert checks["gpus"].status is doctor.Status.INFO and checks["gpus"].found.startswith("none")
    jsonschema.validate(report.to_dict(), SCHEMA)


def test_t4_profile_without_gpu_or_nvidia_runtime_fails_with_fixes(client):
    report = doctor.run_doctor("t4", list_gpus=_no_gpu)
    checks = _by_id(report)
    assert not report.ok
    assert checks["gpus"].status is doctor.Status.FAIL and "--profile cpu" in checks["gpus"].fix
    if not report.engine["nvidia_runtime"]:
        assert checks["nvidia_runtime"].status is doctor.Status.FAIL
        assert "nvidia-ctk" in checks["nvidia_runtime"].fix


def test_gpus_from_nvml_are_listed_with_uuid_memory_and_capability(client):
    t4 = GpuInfo(0, "GPU-1234", "Tesla T4", 15 * 2**30 + 2**28, "7.5", "550.54.15")
    report = doctor.run_doctor("cpu", list_gpus=lambda: [t4])
    found = _by_id(report)["gpus"].found
    assert "Tesla T4" in found and "GPU-1234" in found and "15.2 GiB" in found and "sm_75" in found
    assert report.to_dict()["gpus"][0]["uuid"] == "GPU-1234"


def test_unreachable_engine_fails_and_says_how_to_start_one():
    def down():
        raise EngineUnavailable("no engine", expected="a Docker engine", found="connection refused",
                                fix="run `sudo bash scripts/engine-setup.sh`")

    report = doctor.run_doctor("cpu", connect=down, list_gpus=_no_gpu)
    checks = _by_id(report)
    assert not report.ok
    assert checks["engine"].status is doctor.Status.FAIL and "engine-setup.sh" in checks["engine"].fix
    assert checks["storage_driver"].status is doctor.Status.SKIPPED
    jsonschema.validate(report.to_dict(), SCHEMA)


def test_cli_exit_codes_and_json(client):
    ok = subprocess.run([AECC, "doctor", "--profile", "cpu", "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    jsonschema.validate(json.loads(ok.stdout), SCHEMA)
    down = subprocess.run([AECC, "doctor", "--profile", "cpu"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert down.returncode == 2
    assert "engine" in down.stderr and "fail" in down.stderr


def test_bad_ca_bundle_is_reported(client, monkeypatch, tmp_path):
    monkeypatch.setenv("AECC_CA_BUNDLE", str(tmp_path / "missing.pem"))
    check = _by_id(doctor.run_doctor("cpu", list_gpus=_no_gpu))["build_network"]
    assert check.status is doctor.Status.FAIL and "missing.pem" in check.found

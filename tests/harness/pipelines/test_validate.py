"""`aecc validate` gives a participant the verdict the organizers will reach: a good submission
passes (exit 0), a contract violation fails under its check id (exit 1), a bad archive or broken
requirements fail at intake or build (exit 1), and a broken engine is an error, never the
participant's failure (exit 2). Reports are valid against the published schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import jsonschema

from harness import schemas

REPO = Path(__file__).resolve().parents[3]
AECC = str(Path(sys.executable).parent / "aecc")
FIXTURES = REPO / "tests" / "fixtures" / "encoders"
GOOD = REPO / "examples" / "good_encoder"


def aecc_validate(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[int, dict, str]:
    out = tmp_path / "report.json"
    proc = subprocess.run([AECC, "validate", *args, "--json-out", str(out), "--junit-out", str(tmp_path / "j.xml")],
                          capture_output=True, text=True, timeout=1800, env={**os.environ, **(env or {})})
    report = json.loads(out.read_text()) if out.exists() else {}
    if report:
        jsonschema.validate(report, schemas.load("validation-report"))
    return proc.returncode, report, proc.stderr


def by_id(report: dict) -> dict:
    return {c["id"]: c for c in report["checks"]}


def test_bundled_example_passes(client, tmp_path):
    # A copy with a unique comment: a new sha, so the submission image is really built (and
    # committed) in every run, not found in the cache of an earlier one.
    sub = tmp_path / "example"
    shutil.copytree(GOOD, sub)
    with open(sub / "encoder.py", "a") as fh:
        fh.write(f"# run {uuid.uuid4().hex}\n")
    code, report, err = aecc_validate(tmp_path, str(sub))
    assert code == 0, err
    assert report["status"] == "passed"
    checks = by_id(report)
    for step in ("intake", "build", "fetch", "sandbox", "output_dim_match", "frames_track_hop", "batch_independence"):
        assert checks[step]["status"] == "passed", checks[step]
    assert not [c for c in report["checks"] if c["status"] == "failed"]
    assert report["submission"]["encoder_class"] == "SpectralEncoder"
    assert report["submission"]["torch_version"] == "2.11.0"
    peak = report["resources"]["peak_host_memory_bytes"]
    assert peak is not None and 0 < peak < report["resources"]["host_memory_limit_bytes"]
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert int(suite.get("tests")) == len(report["checks"]) and suite.get("failures") == "0"


def test_contract_violation_fails_under_its_id(client, tmp_path):
    code, report, err = aecc_validate(tmp_path, str(FIXTURES / "wrong_dim"))
    assert code == 1, err
    assert report["status"] == "failed"
    assert by_id(report)["output_dim_match"]["status"] == "failed"
    suite = ET.parse(tmp_path / "j.xml").getroot()
    failed = [c.get("name") for c in suite if c.find("failure") is not None]
    assert "output_dim_match" in failed


def test_hostile_archive_fails_at_intake(client, tmp_path):
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("encoder.py", (GOOD / "encoder.py").read_text())
        zf.writestr("../escape.py", "print('out')\n")
    code, report, err = aecc_validate(tmp_path, str(bad))
    assert code == 1, err
    assert [c["id"] for c in report["checks"]] == ["intake"]
    assert "escape.py" in report["checks"][0]["message"] + report["checks"][0].get("found", "")
    assert not (tmp_path.parent / "escape.py").exists()


def test_uninstallable_requirements_fail_the_build(client, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "encoder.py").write_text((GOOD / "encoder.py").read_text())
    (sub / "requirements.txt").write_text("aecc-no-such-package-7f3a9==1.0\n")
    code, report, err = aecc_validate(tmp_path, str(sub))
    assert code == 1, err
    build = by_id(report)["build"]
    assert build["status"] == "failed" and Path(build["log"]).is_file()
    assert "aecc-no-such-package-7f3a9" in Path(build["log"]).read_text()


def test_memory_cap_in_the_check_stage_is_oom(client, tmp_path):
    profile = json.loads((REPO / "sandbox_profiles" / "cpu.json").read_text())
    profile.update(name="small", memory="1GiB")
    (tmp_path / "small.json").write_text(json.dumps(profile))
    (tmp_path / "seccomp.json").write_text((REPO / "sandbox_profiles" / "seccomp.json").read_text())
    sub = tmp_path / "hog"
    sub.mkdir()
    (sub / "encoder.py").write_text(
        (GOOD / "encoder.py").read_text()
        + "\n\n_original = SpectralEncoder.forward\n\n"
        "def _hog(self, audio):\n"
        "    self._keep = [torch.ones(256 * 1024 * 1024 // 4) for _ in range(8)]\n"
        "    return _original(self, audio)\n\n"
        "SpectralEncoder.forward = _hog\n"
    )
    code, report, err = aecc_validate(tmp_path, str(sub), "--profile", str(tmp_path / "small.json"))
    assert code == 1, err
    check = by_id(report)["sandbox"]
    assert check["status"] == "failed" and "oom" in check["message"] and check["level"] == "scoring"
    # The hog hit the cap on the warm-up, before X-ARES's own call: what X-ARES checks was never established.
    assert report["verdict"]["outcome"] == "excluded", report["verdict"]
    assert by_id(report)["forward_basic"]["status"] in ("failed", "skipped")


def test_unreachable_engine_is_an_error_not_a_failure(tmp_path):
    code, report, err = aecc_validate(tmp_path, str(GOOD), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert code == 2, err
    assert report["status"] == "error"
    assert report["checks"][0]["id"] == "infrastructure"

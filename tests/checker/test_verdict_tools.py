"""The same verdict in every tool a participant or an organizer sees, one fixture per level: the same
level, the same first line, the exit codes of the README (0 unless a rule or scoring check failed,
1 otherwise; --strict: advice fails too).

    aecc validate (the sandbox) | python -m checker (in place) | the CI gate's summary and JUnit |
    aecc score, result.json and aecc status

Each tool is run as its user runs it: the console scripts and the gate's own summary command, on the
real engine. The whole gate (the composite action with its +cpu torch layer) runs the good and the
broken fork in tests/ci/test_action.py, which checks the same first line there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "encoders"
BIN = Path(sys.executable).parent
TASK = REPO / "demo_tasks" / "tiny_crop_task.py"

#: fixture -> (outcome, exit code without --strict, the check whose level decides)
LEVELS = {
    "wrong_dim": ("excluded", 1, "output_dim_match"),
    "nan_output": ("scored_with_problems", 1, "finite"),
    "nondeterministic": ("passes", 0, "deterministic"),
    "good": ("passes", 0, None),
}

pytestmark = pytest.mark.slow


def run(*argv: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=1200, cwd=cwd,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def data(tmp_path_factory, client) -> Path:
    from harness import demodata

    root = tmp_path_factory.mktemp("xares-env")
    demodata.generate(root, ["tiny_crop"], seed=0)
    os.system(f"chmod -R a+rX {root}")
    return root


@pytest.mark.parametrize("fixture", sorted(LEVELS))
def test_one_verdict_in_every_tool(fixture, client, data, in_place_python, tmp_path):
    outcome, code, deciding = LEVELS[fixture]
    source = FIXTURES / fixture

    # aecc validate, in the sandbox
    validate = run(BIN / "aecc", "validate", source, "--json-out", tmp_path / "v.json", "--junit-out",
                   tmp_path / "v.xml", cwd=tmp_path)
    report = json.loads((tmp_path / "v.json").read_text())
    headline = report["verdict"]["headline"]
    assert (validate.returncode, report["verdict"]["outcome"]) == (code, outcome), validate.stdout[-3000:]
    assert f"\n{headline}\n" in f"\n{validate.stdout}{validate.stderr}", "the console prints the verdict's first line"
    if deciding:
        assert any(i["id"] == deciding for i in report["verdict"]["items"]), report["verdict"]
    strict = run(BIN / "aecc", "validate", source, "--strict", "--json-out", tmp_path / "s.json", cwd=tmp_path)
    assert strict.returncode == (1 if deciding else 0), strict.stdout[-2000:]

    # python -m checker, in place: the same first line and exit code
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    in_place = subprocess.run([in_place_python, "-m", "checker", str(source), "--json-out", str(tmp_path / "i.json")],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    mine = json.loads((tmp_path / "i.json").read_text())["verdict"]
    assert in_place.returncode == code, in_place.stdout[-3000:]
    # In place, the missing sandbox is one more advisory: the count may differ, never the words before it.
    assert mine["headline"].split(" (")[0] == headline.split(" (")[0], (mine["headline"], headline)
    assert f"\n{mine['headline']}\n" in f"\n{in_place.stdout}"

    # the CI gate's summary and outputs, from the same report (scripts/ci-gate.sh calls exactly this)
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    gate = run(BIN / "python", "-m", "harness.report.github", "summary", "--report", tmp_path / "v.json",
               "--junit", tmp_path / "v.xml", "--exit-code", str(validate.returncode), "--summary-file", summary,
               "--output-file", outputs, cwd=REPO)
    assert gate.returncode == 0, gate.stderr
    text = summary.read_text()
    assert f"```text\n{headline}\n" in text, "the summary's verdict block opens with the same line"
    assert f"verdict<<" in outputs.read_text() and headline in outputs.read_text()
    suite = ET.parse(tmp_path / "v.xml").getroot()
    failures = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failures == ({deciding} if code else set()), failures
    assert suite.find("system-out").text.splitlines()[0] == headline

    # aecc score: result.json and aecc status carry the same first line; a rule failure excludes
    out = tmp_path / "results"
    score = run(BIN / "aecc", "score", source, "--data", data, "--tasks", TASK, "--out", out, "--repeats", "1",
                cwd=tmp_path)
    status = json.loads(run(BIN / "aecc", "status", out, "--json", cwd=tmp_path).stdout)
    (sub,) = status["submissions"]
    assert sub["verdict"] == headline, (sub["verdict"], headline, score.stderr[-2000:])
    if outcome == "excluded":
        assert sub["state"] == "excluded" and score.returncode == 1
        assert any(headline in f["reason"] for f in sub["failures"]), sub["failures"]
    else:
        result = json.loads((out / sub["sha256"] / "result.json").read_text())
        assert result["checks"]["summary"]["headline"] == headline
        assert f"check: {headline}" in score.stdout + score.stderr

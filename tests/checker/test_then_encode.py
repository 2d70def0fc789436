"""The check's process encodes, after the host's go, exactly what a fresh encode process does.

`aecc score` runs the checks and the encode in one container (`checker.contract --then-encode`): the
agent writes its report, says it is final (`<report>.done`), waits for the host's go file and runs
`checker.encode` in the same process. That must change nothing but the clock: the embeddings are
byte for byte those of `python -m checker.encode` in a process of its own, for an encoder whose
output depends on torch's generator at construction and on its module mode (tests/fixtures/encoders/
train_mode_bn). A cancel ends the run without encoding, and no decision ends it with the gate's code.
Runs in the in-place Python (torch, no Docker): the agent is standard library plus torch.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "encoders"
SPEC = "encoder.py:TrainModeBnEncoder"


def _audio(python: str, root: Path) -> Path:
    """Two splits of padded 16 kHz batches, as the prepare stage writes them (checker.batchio)."""
    script = f'''
import json, torch
from pathlib import Path
from checker.batchio import write_tensor
root = Path({str(root)!r})
generator = torch.Generator().manual_seed(7)
order = []
for split, sizes in (("train", (3, 2)), ("test", (4,))):
    (root / split).mkdir(parents=True)
    for i, b in enumerate(sizes):
        write_tensor(root / split / f"{{i:06d}}", torch.randn(b, 16000 + 3200 * i, generator=generator))
    order.append({{"split": split, "dir": split}})
(root / "order.json").write_text(json.dumps(order))
'''
    subprocess.run([python, "-P", "-c", script], check=True, timeout=120)
    return root


def _jobs(path: Path, audio: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    path.write_text(json.dumps([{"audio": str(audio), "out": str(out)}]))
    return path


def _embeddings(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.bin"))}


def _contract(python: str, tmp: Path, go: Path, max_wait: float = 60) -> subprocess.Popen:
    return subprocess.Popen([python, "-P", "-m", "checker.contract", "--submission", str(FIXTURES / "train_mode_bn"),
                             "--encoder", SPEC, "--report", str(tmp / "check.json"), "--max-seconds", "60",
                             "--then-encode", str(go), "--max-wait", f"{max_wait:g}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_encoding_after_the_checks_equals_a_fresh_encode(in_place_python, tmp_path):
    audio = _audio(in_place_python, tmp_path / "audio")
    fresh = tmp_path / "fresh"
    subprocess.run([in_place_python, "-P", "-m", "checker.encode", "--submission", str(FIXTURES / "train_mode_bn"),
                    "--encoder", SPEC, "--jobs", str(_jobs(tmp_path / "fresh.json", audio, fresh))],
                   check=True, timeout=300, capture_output=True)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    proc = _contract(in_place_python, tmp_path, ctl / "go.json")
    _wait_for(tmp_path / "check.json.done", proc)
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["complete"] and {c["id"] for c in report["checks"]} >= {"forward_basic", "deterministic"}
    assert not (tmp_path / "after").exists(), "nothing is encoded before the go"
    jobs = _jobs(ctl / "jobs.json", audio, tmp_path / "after")
    (ctl / "go.json").write_text(json.dumps({"argv": ["--submission", str(FIXTURES / "train_mode_bn"),
                                                       "--encoder", SPEC, "--jobs", str(jobs)]}))
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    assert "encoding in the same process" in output
    expected, got = _embeddings(fresh), _embeddings(tmp_path / "after")
    assert len(expected) == 3 and got.keys() == expected.keys()
    assert got == expected, "the same process encoded other embeddings than a fresh one"


def test_cancel_ends_without_encoding_and_no_decision_ends_with_the_gates_code(in_place_python, tmp_path):
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    proc = _contract(in_place_python, tmp_path, ctl / "go.json")
    _wait_for(tmp_path / "check.json.done", proc)
    (ctl / "go.json").write_text(json.dumps({"cancel": True}))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "no encode (the host's decision)" in output, output[-2000:]
    assert "encoding in the same process" not in output

    quiet = tmp_path / "quiet"
    quiet.mkdir()
    proc = _contract(in_place_python, quiet, quiet / "never.json", max_wait=2)
    timer = threading.Timer(300, proc.kill)
    timer.start()
    try:
        output, _ = proc.communicate()
    finally:
        timer.cancel()
    assert proc.returncode == 3 and "no decision" in output, output[-2000:]
    assert json.loads((quiet / "check.json").read_text())["complete"], "the report stands without a decision"

"""The check's container encodes only after the host's go, and a cancel is final.

`aecc score` checks and encodes in one container (`harness.stages.check.check_then_encode`). For a
submission a rule check excludes, the host cancels: the test audio is never linked in, a report the
submission's code rewrites after the decision is never read (the exclusion and the `check.json` kept
beside the results are those of the decision), the control folder the decision came through is
read-only, and a process that will not exit after the cancel (a thread of its own keeps it alive)
is killed within the grace, not left to the stage's wall clock. The go path has its hostile case:
`tests/hostile/cases/seam_check_to_encode`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import demodata as taskgen
from harness.bulk.run import score_path
from harness.errors import SubmissionError
from harness.journal import read_events
from harness.pipelines.score import ScoreSettings
from harness.sandbox import engine
from harness.stages import check as check_stage
from harness.tasks.arguments import resolve_tasks
from tests.support.runs import record_runs

REPO = Path(__file__).resolve().parents[3]
GOOD = REPO / "examples" / "good_encoder"

pytestmark = pytest.mark.slow

MEDDLER = '''

import json as _json
import os as _os
import threading as _threading
import time as _time


def _meddle():
    audio = False
    while not _os.path.exists("/ctl/go.json"):
        audio = audio or _os.path.exists("/audio/0/order.json")
        _time.sleep(0.02)
    with open("/ctl/go.json") as fh:
        decision = fh.read()
    try:
        with open("/ctl/go.json", "w") as fh:
            fh.write('{"argv": []}')
        ctl = "written"
    except OSError as exc:
        ctl = exc.errno
    report = _json.load(open("/report/check.json"))
    for check in report["checks"]:
        check.update(status="passed", message="FORGED-AFTER-CANCEL")
    _json.dump(report, open("/report/check.json", "w"))
    print("MEDDLE", _json.dumps({"decision": decision, "ctl": ctl, "audio": audio,
                                 "audio_now": _os.path.exists("/audio/0/order.json")}), flush=True)
    while True:  # not a daemon: the interpreter never exits on its own
        _time.sleep(1)


if _os.path.isdir("/report"):
    _threading.Thread(target=_meddle).start()


_forward = SpectralEncoder.forward


def _wrong_dim(self, audio):
    return _forward(self, audio)[..., :-1]  # D = output_dim - 1: X-ARES's own checker refuses it


SpectralEncoder.forward = _wrong_dim
'''


def test_a_cancel_is_final_and_a_process_that_stays_is_killed(client, tmp_path, monkeypatch):
    env = tmp_path / "env"
    taskgen.generate(env, ["tiny_tones"], seed=0)
    os.system(f"chmod -R a+rX {env}")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "encoder.py").write_text((GOOD / "encoder.py").read_text() + MEDDLER)
    seen = record_runs(monkeypatch, (check_stage,))
    out = tmp_path / "out"
    settings = ScoreSettings(data=env, tasks=resolve_tasks([str(REPO / "demo_tasks" / "tiny_tones_task.py")]),
                             repeats=1)
    with pytest.raises(SubmissionError) as err:
        score_path(engine.connect(), sub, settings=settings, out=out)
    assert "output_dim_match" in str(err.value)

    [(spec, run)] = seen
    assert "--then-encode" in spec.command, "the check's container was started to encode after a go"
    assert "after the host's cancel" in run.detail, run.detail
    assert run.duration_s < 300, "killed within the grace, not at the check stage's wall clock (20 min)"
    [line] = [json.loads(text.split(" ", 1)[1]) for text in run.log_path.read_text().splitlines()
               if text.startswith("MEDDLE ")]
    assert json.loads(line["decision"]) == {"cancel": True}
    assert line["ctl"] in (30, 13), line  # EROFS (read-only mount) or EACCES
    assert line["audio"] is False and line["audio_now"] is False, "the test audio is linked in only at a go"

    [sha] = [p.name for p in out.iterdir() if (p / "check.json").is_file()]
    kept = (out / sha / "check.json").read_text()
    assert "FORGED-AFTER-CANCEL" not in kept and "output_dim_match" in kept
    events = [e for e in read_events(out) if e.stage == "check"]
    assert events[-1].state == "failed" and "FORGED" not in json.dumps(events[-1].data)
    assert not [e for e in read_events(out) if e.stage == "encode"], "nothing was encoded"

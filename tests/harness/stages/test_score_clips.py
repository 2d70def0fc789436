"""Per-clip capture agrees with X-ARES's own metric code: for every metric X-ARES 0.1.3 defines, its
own Trainer / KNNTrainer evaluate generated outputs in the runtime image while `checker.capture`
records them, and the per-clip data recomputes X-ARES's number to 1e-6 (accuracy, k-fold accuracy,
mAP, segment F1 macro and micro, recall@1, WER_inv, MSE, MAE, Track B's kNN accuracy). EER cannot be
compared: X-ARES 0.1.3's `compute_eer` fails under its own pinned scikit-learn (no task uses it), so
its recompute is held to hand-derived values in tests/checker/test_clips.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.layers.build import build_chain
from harness.layers.model import runtime_layer
from harness.sandbox.agent import agent_mount
from harness.sandbox.profiles import load_profile
from harness.sandbox.run import run_stage
from harness.sandbox.spec import Mount, Outcome, RunSpec
from harness.stage_names import Stage

HERE = Path(__file__).resolve().parent
SCRIPT = "clips_metrics_script.py"
COMPARED = {"accuracy", "accuracy_kfold", "mAP", "segmentf1_macro", "segmentf1_micro", "recallatk_r1", "WER_inv",
            "MSE", "MAE", "knn_accuracy"}


def test_capture_recomputes_every_xares_metric(client, tmp_path):
    runtime = build_chain(client, runtime_layer(), log=lambda m: None)[-1].image
    spec = RunSpec(stage=Stage.SCORE, image=runtime, command=("python", f"/s/{SCRIPT}", "3"),
                   mounts=(agent_mount(), Mount(HERE / SCRIPT, f"/s/{SCRIPT}")), workdir="/tmp", wall_clock_s=300.0)
    result = run_stage(client, load_profile("cpu"), spec, tmp_path / "clips.log")
    assert result.outcome is Outcome.OK, result.log_tail()
    line = [l for l in result.log_path.read_text().splitlines() if l.startswith('{"clips_parity"')][-1]
    found = json.loads(line)["clips_parity"]
    assert set(found) == COMPARED | {"EER"}
    for case in COMPARED:
        got = found[case]
        assert got["recomputed"] == pytest.approx(got["xares"], abs=1e-6), case
        assert got["clips"] == (12 if case == "recallatk_r1" else 30 if case == "WER_inv" else 50), case
    # the generated cases are not degenerate: the metrics took values strictly inside their range
    assert all(0.0 < found[c]["xares"] < 1.0 for c in COMPARED - {"MSE", "MAE"})
    assert found["knn_accuracy"]["metric"] == "accuracy"
    assert "positional" in found["EER"]["xares_error"]

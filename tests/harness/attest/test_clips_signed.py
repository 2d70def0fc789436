"""The signature covers the per-clip outputs: a result names its clips.npz by sha256, so any changed
byte of that file, or its absence, fails `aecc verify` (and hence the leaderboard's input check) with
`clips_mismatch` and a message saying what changed; a result without clips needs no file. The host
side of the score stage (`gather_clips`) keeps only clip runs that are the result's own scoring."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from checker import clips
from harness import attest, schemas
from harness.attest import ENVELOPE_NAME, VerifyProblem, sign_result, verify_envelope, write_envelope
from harness.cli import main
from harness.results import ScoreResult, TaskOutcome, TaskResult, TrackA
from harness.safeio import sha256_file
from harness.stages import score as score_stage
from harness.tasks.arguments import resolve_tasks

ZIP_BYTES = b"PK\x05\x06" + bytes(18)
ZIP_SHA = hashlib.sha256(ZIP_BYTES).hexdigest()
DEMO = Path(__file__).resolve().parents[3] / "demo_tasks"


def clip_run(task="esc50", track="A", run=0, seed=11, reported=None, n=20) -> clips.ClipRun:
    rng = np.random.default_rng(run + 7 * (track == "B"))
    arrays = {"pred": rng.integers(0, 3, n), "target": rng.integers(0, 3, n)}
    keys, arrays = clips.canonical_order([f"test/clip{i:03d}" for i in range(n)], arrays)
    value = float((arrays["pred"] == arrays["target"]).mean())
    return clips.ClipRun(task=task, track=track, run=run, seed=seed if track == "A" else None, metric="accuracy",
                         reported=value if reported is None else reported, keys=keys, arrays=arrays)


def make_result(clips_entry: dict | None) -> dict:
    return ScoreResult(
        submission={"sha256": ZIP_SHA, "encoder_file": "encoder.py", "encoder_class": "TinyEncoder",
                    "image": f"aecc/submission-{ZIP_SHA[:12]}:latest", "torch_version": "2.2.1",
                    "sampling_rate": 16000, "output_dim": 64, "hop_size_in_ms": 20.0},
        versions={"harness": "0.1.0", "harness_commit": "0" * 40, "xares": "0.1.3", "runtime_image": "aecc/runtime:t"},
        settings={"profile": "cpu", "mode": "unique", "repeats": 1, "seed": 0},
        tasks=(TaskResult("esc50", "registry", "scored", metric="accuracy", track_a=0.5, track_b=0.25, weight=400),),
        timings={"total_s": 1.0},
        extra={"clips": clips_entry},
    ).to_dict()


@pytest.fixture(scope="module")
def keypair(tmp_path_factory) -> attest.KeyPair:
    return attest.generate_keypair(tmp_path_factory.mktemp("keys") / "k")


def publish(folder: Path, keypair: attest.KeyPair, with_clips: bool = True) -> Path:
    folder.mkdir(parents=True)
    entry = None
    if with_clips:
        path = clips.write_clips(folder / clips.CLIPS_NAME, [clip_run(), clip_run(track="B")])
        entry = {"file": clips.CLIPS_NAME, "sha256": sha256_file(path), "runs": 2, "skipped": []}
    result = make_result(entry)
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    (folder / "submission.zip").write_bytes(ZIP_BYTES)
    key = attest.load_private_key(keypair.private_path)
    write_envelope(folder, sign_result(result, key, zip_sha256=ZIP_SHA, image_digest=None))
    return folder


def test_any_changed_byte_of_the_clips_file_is_refused(tmp_path: Path, keypair) -> None:
    public_key = attest.load_public_key(keypair.public_path)
    folder = publish(tmp_path / "RESULTS" / ZIP_SHA, keypair)
    assert verify_envelope(folder / ENVELOPE_NAME, public_key).ok
    original = (folder / clips.CLIPS_NAME).read_bytes()
    for index in range(0, len(original), max(1, len(original) // 40)):  # spread over the whole file
        changed = bytearray(original)
        changed[index] ^= 0x01
        (folder / clips.CLIPS_NAME).write_bytes(bytes(changed))
        outcome = verify_envelope(folder / ENVELOPE_NAME, public_key)
        assert not outcome.ok and outcome.problem is VerifyProblem.CLIPS_MISMATCH, index
        assert "changed after signing" in outcome.message and outcome.result is None
    (folder / clips.CLIPS_NAME).write_bytes(original)
    assert verify_envelope(folder / ENVELOPE_NAME, public_key).ok
    assert "per-clip outputs checked" in verify_envelope(folder / ENVELOPE_NAME, public_key).message
    # A published copy leaves them out (per-clip labels, hidden tasks' too): said, not refused ...
    (folder / clips.CLIPS_NAME).unlink()
    outcome = verify_envelope(folder / ENVELOPE_NAME, public_key)
    assert outcome.ok and "per-clip outputs not in this copy" in outcome.message
    # ... but something else in its place is refused
    (folder / clips.CLIPS_NAME).symlink_to(tmp_path)
    outcome = verify_envelope(folder / ENVELOPE_NAME, public_key)
    assert outcome.problem is VerifyProblem.CLIPS_MISMATCH and "not a regular file" in outcome.message


def test_aecc_verify_fails_on_a_changed_clips_file(tmp_path: Path, keypair, capsys) -> None:
    folder = publish(tmp_path / "RESULTS" / ZIP_SHA, keypair)
    argv = ["verify", str(tmp_path / "RESULTS"), "--pubkey", str(keypair.public_path), "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    data = bytearray((folder / clips.CLIPS_NAME).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / clips.CLIPS_NAME).write_bytes(bytes(data))
    assert main(argv) == 1
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    schemas.validate("verify-report", report)
    assert report["files"][0]["problem"] == "clips_mismatch"
    assert "clips_mismatch" in " ".join(out.split()) and "per-clip outputs were changed" in report["files"][0]["message"]


def test_a_result_without_clips_needs_no_file(tmp_path: Path, keypair) -> None:
    public_key = attest.load_public_key(keypair.public_path)
    folder = publish(tmp_path / "R" / ZIP_SHA, keypair, with_clips=False)
    assert json.loads((folder / "result.json").read_text())["clips"] is None
    assert verify_envelope(folder / ENVELOPE_NAME, public_key).ok


def test_gather_keeps_only_the_results_own_runs(tmp_path: Path) -> None:
    tasks = resolve_tasks([str(DEMO / "tiny_tones_task.py"), str(DEMO / "tiny_tags_task.py")])
    tones, tags = tasks
    runs = tmp_path / "runs"
    a0, a1, b = clip_run("tiny_tones", "A", 0, seed=5), clip_run("tiny_tones", "A", 1, seed=6), \
        clip_run("tiny_tones", "B", 0)
    for task, kept in ((tones, [a0, a1, b]), (tags, [clip_run("tiny_tags", "A", 0, seed=9)])):
        score_stage.work_dir(runs, task).mkdir(parents=True)
        clips.write_clips(score_stage.task_clips(runs, task), kept)
    (score_stage.work_dir(runs, tags) / "score.json").write_text(json.dumps({"clips": {"skipped": [
        {"track": "B", "run": 0, "reason": "no kNN here"}]}}))
    entries = {
        # repeat 1's value differs from its clip run: an older scoring's file must not slip in
        tones.label: TaskResult("tiny_tones", "f", TaskOutcome.SCORED, metric="accuracy", track_a=0.5,
                                track_b=b.reported, track_a_detail=TrackA(0.5, (a0.reported, a1.reported + 0.25),
                                                                          (5, 6))),
        tags.label: TaskResult("tiny_tags", "f", TaskOutcome.FAILED, reason="encode failed"),
    }
    out = tmp_path / "result" / clips.CLIPS_NAME
    out.parent.mkdir()
    entry = score_stage.gather_clips(runs, tuple(tasks), entries, out)
    assert entry["file"] == clips.CLIPS_NAME and entry["sha256"] == sha256_file(out) and entry["runs"] == 2
    assert [(s["task"], s["track"], s["run"]) for s in entry["skipped"]] == [("tiny_tones", "A", 1)]
    assert "another scoring" in entry["skipped"][0]["reason"]
    back = clips.read_clips(out)
    assert [(r.task, r.track, r.run) for r in back] == [("tiny_tones", "A", 0), ("tiny_tones", "B", 0)]
    # a failed task's clips never enter; nothing kept at all: no file, null entry
    entries[tones.label] = TaskResult("tiny_tones", "f", TaskOutcome.FAILED, reason="x")
    assert score_stage.gather_clips(runs, tuple(tasks), entries, out) is None and not out.exists()

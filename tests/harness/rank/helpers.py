"""Builders shared by the ranking tests: schema-valid results made with the harness's own
`ScoreResult`, signed with a fresh Ed25519 key exactly as the scoring run signs them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import attest
from harness.results import ScoreResult, TaskResult, TrackA


def sha_of(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def task(name: str, a: float | None = None, b: float | None = None, *, outcome: str = "scored", reason: str = "",
         repeats: Iterable[float] | None = None, weight: int | None = None) -> TaskResult:
    """One task entry. `repeats`: the Track A runs (their mean is the value)."""
    detail = None
    if repeats is not None:
        runs = tuple(repeats)
        mean = sum(runs) / len(runs)
        std = (sum((r - mean) ** 2 for r in runs) / len(runs)) ** 0.5
        detail = TrackA(mean, runs, tuple(range(len(runs))), std)
        a = mean
    if outcome != "scored":
        return TaskResult(name, "registry", outcome, reason=reason or outcome)
    return TaskResult(name, "registry", "scored", metric="accuracy", track_a=a, track_b=b, weight=weight,
                      track_a_detail=detail)


def result_doc(label: str, tasks: Iterable[TaskResult], *, encoder_class: str = "TinyEncoder",
               xares: str = "0.1.3", lock: str | None = None) -> dict[str, Any]:
    sha = sha_of(label)
    submission = {"sha256": sha, "encoder_file": "encoder.py", "encoder_class": encoder_class,
                  "image": f"aecc/submission-{sha[:12]}:latest", "torch_version": "2.2.1", "sampling_rate": 16000,
                  "output_dim": 64, "hop_size_in_ms": 20.0}
    if lock:
        submission["lock_sha256"] = lock
    return ScoreResult(
        submission=submission,
        versions={"harness": "0.1.0", "harness_commit": "0" * 40, "xares": xares, "runtime_image": "aecc/runtime:t"},
        settings={"profile": "cpu", "mode": "unique", "repeats": 1, "seed": 0},
        tasks=tuple(tasks),
        timings={"total_s": 1.0},
    ).to_dict()


class Signer:
    """A fresh key pair; its public half written as PEM at `public_path`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.private = Ed25519PrivateKey.generate()
        self.public_path = folder / "signing.pub"
        self.public_path.write_bytes(self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.key_id = attest.key_id(self.private)


def write_result(root: Path, result: dict, signer: Signer | None = None) -> Path:
    """RESULTS/<sha>/result.json, and its result.dsse.json when `signer` is given."""
    sha = result["submission"]["sha256"]
    folder = root / sha
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    if signer is not None:
        attest.write_envelope(folder, attest.sign_result(result, signer.private, zip_sha256=sha, image_digest=None))
    return folder


HOSTILE_CLASS = '<img src=x onerror="alert(1)">Encoder'


def scenario(root: Path) -> tuple[Path, Signer]:
    """RESULTS under `root`/RESULTS, signed with a fresh key: three verified results (one with Track A
    repeats, one with a failed task, one with a hostile class name), one with an infrastructure error,
    and one tampered after signing. Returns (RESULTS, signer)."""
    signer = Signer(root / "keys")
    results = root / "RESULTS"
    tasks_ok = ("esc50", "cremad", "subway_broadcast")
    write_result(results, result_doc("alpha", [
        task("esc50", repeats=(0.95, 0.96, 0.97), b=0.90), task("cremad", repeats=(0.80, 0.82, 0.84), b=0.75),
        task("subway_broadcast", repeats=(0.97, 0.98, 0.99), b=0.96)], lock="a" * 64), signer)
    write_result(results, result_doc("beta", [
        task("esc50", 0.93, 0.89), task("cremad", outcome="failed", reason="encode: out of memory (12 GiB)"),
        task("subway_broadcast", 0.97, 0.95)], encoder_class="BetaEncoder"), signer)
    write_result(results, result_doc("hostile", [task(t, 0.5, 0.4) for t in tasks_ok],
                                     encoder_class=HOSTILE_CLASS), signer)
    write_result(results, result_doc("gamma", [
        task("esc50", 0.99, 0.99), task("cremad", outcome="error", reason="engine went away"),
        task("subway_broadcast", 0.99, 0.99)], encoder_class="GammaEncoder"), signer)
    tampered = write_result(results, result_doc("tampered", [task(t, 0.2, 0.2) for t in tasks_ok],
                                                encoder_class="TamperedEncoder"), signer)
    data = json.loads((tampered / "result.json").read_text())
    data["tasks"][0]["track_a"] = 1.0
    (tampered / "result.json").write_text(json.dumps(data))
    return results, signer


#: reference rows over the scenario's tasks: Baseline matches its published value, Twin does not
REFERENCE_CSV = """# hand-made reference rows for the tests
name,track,published,esc50,cremad,subway_broadcast
Baseline,A,0.921,0.9,0.8,0.95
Twin,A,0.950,0.95,0.82,0.975
Baseline,B,0.920,0.9,0.75,0.96
"""


def write_reference(root: Path) -> Path:
    path = root / "reference.csv"
    path.write_text(REFERENCE_CSV)
    return path


def clip_runs(task_name: str, tracks: dict[str, list[Any]], n: int) -> list[Any]:
    """Accuracy ClipRuns for one task: `tracks` maps "A"/"B" to a list of boolean arrays (one per run:
    where the prediction is right)."""
    import numpy as np

    from checker.clips import ClipRun

    keys = np.array([f"{task_name}-{i:05d}" for i in range(n)])
    target = np.arange(n) % 7
    runs = []
    for track, corrects in tracks.items():
        for i, correct in enumerate(corrects):
            pred = np.where(correct, target, (target + 1) % 7)
            runs.append(ClipRun(task=task_name, track=track, run=i, seed=i, metric="accuracy",
                                reported=float(np.mean(correct)), keys=keys, arrays={"pred": pred, "target": target}))
    return runs


def write_result_with_clips(root: Path, result: dict, runs: list[Any], signer: Signer | None = None) -> Path:
    """RESULTS/<sha>/clips.npz written first, its digest recorded in result.json ("clips"), then the
    result (and its envelope) as `write_result` writes them: the signature covers the record."""
    from checker.clips import CLIPS_NAME, write_clips

    folder = root / result["submission"]["sha256"]
    folder.mkdir(parents=True, exist_ok=True)
    path = write_clips(folder / CLIPS_NAME, runs)
    result = dict(result, clips={"file": CLIPS_NAME, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                 "runs": len(runs)})
    return write_result(root, result, signer)


def bootstrap_scenario(root: Path, n: int = 400) -> tuple[Path, Signer]:
    """Signed results with per-clip data on esc50 and cremad (Track A: 2 repeats; Track B): "strong"
    (about 90 % right), "copy" (the same predictions, another package: another digest), "weak" (about
    60 %), and "plain" (scored without clips.npz). Returns (RESULTS, signer)."""
    import numpy as np

    signer = Signer(root / "keys")
    results = root / "RESULTS"
    rng = np.random.default_rng(11)
    quality = {"strong": 0.9, "weak": 0.6}
    made = {name: {t: [rng.random(n) < p for _ in range(3)] for t in ("esc50", "cremad")}
            for name, p in quality.items()}
    made["copy"] = made["strong"]
    for label, encoder in (("strong", "StrongEncoder"), ("copy", "StrongEncoder"), ("weak", "WeakEncoder")):
        arrays = made[label]
        runs, tasks = [], []
        for t in ("esc50", "cremad"):
            a_runs, b_run = arrays[t][:2], arrays[t][2]
            runs += clip_runs(t, {"A": a_runs, "B": [b_run]}, n)
            tasks.append(task(t, repeats=[float(np.mean(c)) for c in a_runs], b=float(np.mean(b_run))))
        write_result_with_clips(results, result_doc(label, tasks, encoder_class=encoder), runs, signer)
    write_result(results, result_doc("plain", [task("esc50", repeats=(0.7, 0.72), b=0.7), task("cremad", 0.7, 0.7)],
                                     encoder_class="PlainEncoder"), signer)
    return results, signer

"""A signed run (issue 12): every result the batch writes has an envelope that `aecc verify` accepts,
and the private key is in none of what the run produced: not in RESULTS (results, journal, logs,
inbox copies), not in the harness's logs, not in the submission image's layers, and not in the
mounts or environment of any container the run started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import attest
from tests.support import REPO
from tests.support.secrets import find_secret

pytestmark = pytest.mark.slow

AECC = str(Path(sys.executable).parent / "aecc")
GOOD = REPO / "examples" / "good_encoder"
DEMO = REPO / "demo_tasks"


def test_a_signed_run_verifies_and_leaks_no_key(client, tmp_path, monkeypatch):
    from harness.bulk.run import BatchSpec, run_batch
    from harness.pipelines.score import ScoreSettings
    from harness import demodata as demo
    from harness.tasks.arguments import resolve_tasks
    from tests.support.runs import record_runs

    env = tmp_path / "env"
    demo.generate(env, ["tiny_tones"], seed=0)
    os.system(f"chmod -R a+rX {env}")
    keys = attest.generate_keypair(tmp_path / "keys")
    pem = Path(keys.private_path).read_bytes()
    sub = tmp_path / "sub"
    shutil.copytree(GOOD, sub)
    (sub / "encoder.py").write_text((GOOD / "encoder.py").read_text() + f"\n# signed {tmp_path.name}\n")
    runs = record_runs(monkeypatch)
    out = tmp_path / "results"
    settings = ScoreSettings(data=env, tasks=resolve_tasks([str(DEMO / "tiny_tones_task.py")]), repeats=1)
    outcome = run_batch(client, BatchSpec(inputs=(sub,), out=out, settings=settings, key=Path(keys.private_path)))
    assert outcome.exit_code == 0
    [result] = outcome.results.values()
    sha = result.submission["sha256"]
    assert (out / sha / attest.ENVELOPE_NAME).is_file()
    verify = subprocess.run([AECC, "verify", str(out), "--pubkey", str(keys.public_path), "--json"],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] and report["checked"] == 1 and all(f["ok"] for f in report["files"])
    # The key is nowhere the run wrote or the containers could see.
    image = result.submission["image"]
    saved = tmp_path / "image.tar"
    with open(saved, "wb") as fh:
        for chunk in client.images.get(image).save():
            fh.write(chunk)
    assert find_secret([out, Path(os.environ["AECC_HOME"]) / "logs", saved], pem) == []
    assert runs, "the run started containers"
    for spec, _ in runs:
        assert str(keys.private_path) not in json.dumps({k: str(v) for k, v in spec.env.items()})
        for mount in spec.mounts:
            sources = [mount.source] if mount.source.is_file() else []
            assert Path(keys.private_path).parent not in [mount.source, *mount.source.parents], mount
            assert find_secret(sources, pem) == []
    # ...while the search itself finds a planted copy (it can fail).
    (out / "planted.txt").write_bytes(b"x" + pem)
    assert find_secret([out], pem)

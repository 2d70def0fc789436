"""Command-line invariant for signing: `aecc keys init` makes a pair once and never overwrites it;
`aecc verify` exits 0 only when every result verifies, names each failure with its own message, and
`--json` prints a report that follows verify-report.schema.json. Neither command ever prints the
private key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from harness import attest, schemas
from harness.cli import main
from harness.results import ScoreResult, TaskResult
from tests.support.secrets import find_secret

ZIP_BYTES = b"PK\x05\x06" + bytes(18)
ZIP_SHA = hashlib.sha256(ZIP_BYTES).hexdigest()


def make_result(sha: str = ZIP_SHA) -> dict:
    return ScoreResult(
        submission={"sha256": sha, "encoder_file": "encoder.py", "encoder_class": "TinyEncoder",
                    "image": f"aecc/submission-{sha[:12]}:latest", "torch_version": "2.2.1", "sampling_rate": 16000,
                    "output_dim": 64, "hop_size_in_ms": 20.0},
        versions={"harness": "0.1.0", "harness_commit": "0" * 40, "xares": "0.1.3", "runtime_image": "aecc/runtime:t"},
        settings={"profile": "cpu", "mode": "unique", "repeats": 1, "seed": 0},
        tasks=(TaskResult("esc50", "registry", "scored", metric="accuracy", track_a=0.5, track_b=0.25, weight=400),),
        timings={"total_s": 1.0},
    ).to_dict()


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    # Messages are matched as text: however the console wraps them, words stay in order.
    return code, captured.out, " ".join(captured.err.split())


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    code, out, _ = run(capsys, "keys", "init", "--out", tmp_path / "keys")
    assert code == 0
    return tmp_path / "keys"


@pytest.fixture
def results(tmp_path: Path, keys: Path) -> Path:
    """RESULTS/ with one signed result and its ZIP."""
    result_dir = tmp_path / "RESULTS" / ZIP_SHA
    result_dir.mkdir(parents=True)
    result = make_result()
    (result_dir / "result.json").write_text(json.dumps(result, indent=1))
    (result_dir / "submission.zip").write_bytes(ZIP_BYTES)
    key = attest.load_private_key(keys / "signing.key")
    attest.write_envelope(result_dir, attest.sign_result(result, key, zip_sha256=ZIP_SHA, image_digest=None))
    return tmp_path / "RESULTS"


def test_keys_init_prints_the_key_id_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "keys", "init", "--out", tmp_path / "k")
    assert code == 0, err
    private, public = tmp_path / "k" / "signing.key", tmp_path / "k" / "signing.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    expected_id = attest.key_id(attest.load_public_key(public))
    assert out == f"key id: {expected_id}\n"
    assert str(public) in err
    before = (private.read_bytes(), public.read_bytes())
    code, out, err = run(capsys, "keys", "init", "--out", tmp_path / "k")
    assert code == 2
    assert "refusing to overwrite" in err and out == ""
    assert (private.read_bytes(), public.read_bytes()) == before
    code, out, _ = run(capsys, "keys", "id", public)
    assert (code, out) == (0, expected_id + "\n")


def test_verify_passes_a_good_folder(results: Path, keys: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "verify", results, "--pubkey", keys / "signing.pub")
    assert code == 0, err
    assert "1 of 1 verified" in err
    code, out, err = run(capsys, "verify", results / ZIP_SHA / "result.json", "--pubkey", keys / "signing.pub",
                         "--zip", results / ZIP_SHA / "submission.zip", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert schemas.problems("verify-report", report) == []
    assert report["ok"] and report["files"][0]["submission_sha256"] == ZIP_SHA


def _tamper(results: Path) -> None:
    path = results / ZIP_SHA / attest.ENVELOPE_NAME
    envelope = json.loads(path.read_text())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[-20] ^= 0x01
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    path.write_text(json.dumps(envelope))


@pytest.mark.parametrize("damage, problem, words", [
    ("tamper", "bad_signature", "changed after signing"),
    ("wrong_key", "unknown_key", "not by the given key"),
    ("unsigned", "missing_envelope", "unsigned"),
    ("truncate", "truncated", "stops early"),
    ("zip", "zip_mismatch", "submission.zip has sha256"),
])
def test_verify_fails_with_its_own_message(results: Path, keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                           damage: str, problem: str, words: str) -> None:
    pubkey = keys / "signing.pub"
    envelope = results / ZIP_SHA / attest.ENVELOPE_NAME
    if damage == "tamper":
        _tamper(results)
    elif damage == "wrong_key":
        run(capsys, "keys", "init", "--out", tmp_path / "other")
        pubkey = tmp_path / "other" / "signing.pub"
    elif damage == "unsigned":
        envelope.unlink()
    elif damage == "truncate":
        envelope.write_bytes(envelope.read_bytes()[:100])
    elif damage == "zip":
        (results / ZIP_SHA / "submission.zip").write_bytes(b"another archive")
    code, out, err = run(capsys, "verify", results, "--pubkey", pubkey, "--json")
    assert code == 1
    assert f"[{problem}]" in err and words in err, err
    assert "0 of 1 verified" in err
    report = json.loads(out)
    assert schemas.problems("verify-report", report) == []
    assert [(f["ok"], f["problem"]) for f in report["files"]] == [(False, problem)]


def test_verify_usage_errors_exit_2(results: Path, keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "verify", results, "--pubkey", tmp_path / "absent.pub")
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "verify", results, "--pubkey", keys / "signing.key")
    assert code == 2 and "private key, not a public key" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "verify", tmp_path / "empty", "--pubkey", keys / "signing.pub")
    assert code == 2 and "nothing to verify" in err


def test_no_command_output_or_result_file_holds_the_private_key(results: Path, keys: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    transcript = tmp_path / "transcript.txt"
    chunks = []
    for argv in (("keys", "init", "--out", tmp_path / "again"), ("keys", "init", "--out", keys),
                 ("keys", "id", keys / "signing.pub"),
                 ("verify", results, "--pubkey", keys / "signing.pub", "--json"),
                 ("verify", results, "--pubkey", keys / "signing.key")):
        code, out, err = run(capsys, *argv)
        chunks.append(out + err)
    transcript.write_text("\n".join(chunks))
    pem = (keys / "signing.key").read_bytes()
    assert find_secret([results, transcript], pem) == []
    # The search itself can fail: the same transcript with the key pasted in is caught.
    transcript.write_text("\n".join(chunks) + pem.decode())
    assert find_secret([results, transcript], pem) == [transcript]

"""Signing invariant: a result verifies only as it was signed, by the key it was signed with. No single
changed byte, cut, wrong key, missing or extra signature, wrong payload type or unsigned result
verifies, and each is told apart by its own stable problem id. What we write is plain DSSE over an
in-toto Statement v1 that two independent implementations (securesystemslib, the openssl command line)
verify too; a rescore never destroys an earlier envelope; and the key-leak search finds the private
key in any form, also inside image tarballs, and nothing where it is absent.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import attest, schemas
from harness.attest import (
    ENVELOPE_NAME,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    VerifyOutcome,
    VerifyProblem,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    sign_result,
    statement,
    verify_envelope,
    verify_paths,
    verify_report,
    write_envelope,
)
from harness.errors import UsageError
from harness.results import ScoreResult, TaskResult
from tests.support import secrets
from tests.support.secrets import find_secret

P = VerifyProblem
ZIP_BYTES = b"PK\x05\x06" + bytes(18)  # an empty ZIP: only its digest matters here
ZIP_SHA = hashlib.sha256(ZIP_BYTES).hexdigest()
IMAGE_DIGEST = "sha256:" + "b" * 64


def make_result(sha: str = ZIP_SHA, track_a: float = 0.5) -> dict:
    return ScoreResult(
        submission={"sha256": sha, "encoder_file": "encoder.py", "encoder_class": "TinyEncoder",
                    "image": f"aecc/submission-{sha[:12]}:latest", "torch_version": "2.2.1", "sampling_rate": 16000,
                    "output_dim": 64, "hop_size_in_ms": 20.0},
        versions={"harness": "0.1.0", "harness_commit": "0" * 40, "xares": "0.1.3", "runtime_image": "aecc/runtime:t"},
        settings={"profile": "cpu", "mode": "unique", "repeats": 1, "seed": 0},
        tasks=(TaskResult("esc50", "registry", "scored", metric="accuracy", track_a=track_a, track_b=0.25, weight=400),
               TaskResult("vox", "registry", "failed", reason="encode: out of memory (12 GiB)")),
        timings={"total_s": 12.5},
    ).to_dict()


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> attest.KeyPair:
    return generate_keypair(tmp_path_factory.mktemp("keys") / "k")


@pytest.fixture(scope="module")
def private_key(keypair: attest.KeyPair) -> Ed25519PrivateKey:
    return load_private_key(keypair.private_path)


@pytest.fixture(scope="module")
def public_key(keypair: attest.KeyPair):
    return load_public_key(keypair.public_path)


@pytest.fixture
def published(tmp_path: Path, private_key) -> Path:
    """RESULTS/<sha>/ as the scoring run leaves it: result.json, its envelope, the submission ZIP."""
    result_dir = tmp_path / "RESULTS" / ZIP_SHA
    result_dir.mkdir(parents=True)
    result = make_result()
    (result_dir / "result.json").write_text(json.dumps(result, indent=1))
    (result_dir / "submission.zip").write_bytes(ZIP_BYTES)
    write_envelope(result_dir, sign_result(result, private_key, zip_sha256=ZIP_SHA, image_digest=IMAGE_DIGEST))
    return result_dir


def raw_envelope(payload: bytes, private_key, *, payload_type: str = PAYLOAD_TYPE, keyid: str | None = None) -> dict:
    """An envelope signed correctly over arbitrary payload bytes: the verifier must judge the content."""
    sig = private_key.sign(attest.pae(payload_type, payload))
    return {"payload": base64.b64encode(payload).decode(), "payloadType": payload_type,
            "signatures": [{"keyid": keyid or key_id(private_key), "sig": base64.b64encode(sig).decode()}]}


def signed_statement(body: dict, private_key) -> dict:
    return raw_envelope(json.dumps(body).encode(), private_key)


def put(path: Path, envelope: dict | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(envelope if isinstance(envelope, bytes) else json.dumps(envelope, indent=2).encode() + b"\n")
    return path


def refused(outcome: VerifyOutcome, problem: VerifyProblem) -> VerifyOutcome:
    assert not outcome.ok, outcome
    assert outcome.problem is problem, (outcome.problem, outcome.message)
    assert outcome.result is None, "a refused envelope must not hand out its predicate"
    assert outcome.message
    return outcome


# ---------------------------------------------------------------------------------------------- keys


def test_keypair_files_modes_and_key_id_agree_with_openssl(keypair: attest.KeyPair, tmp_path: Path) -> None:
    assert stat.S_IMODE(keypair.private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keypair.private_path.parent.stat().st_mode) == 0o700
    assert keypair.private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert keypair.public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", keypair.public_path, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    assert keypair.key_id == hashlib.sha256(der).hexdigest()
    assert key_id(load_public_key(keypair.public_path)) == keypair.key_id
    # openssl reads the private key too (standard PKCS#8) and derives the same public key.
    derived = subprocess.run(["openssl", "pkey", "-in", keypair.private_path, "-pubout"], check=True,
                             capture_output=True).stdout
    assert derived == keypair.public_path.read_bytes()


def test_keypair_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        pair = generate_keypair(tmp_path / "k")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pair.public_path.stat().st_mode) == 0o644, "the public half is meant to be read"


def test_keypair_never_overwrites(tmp_path: Path) -> None:
    first = generate_keypair(tmp_path / "k")
    before = {p: p.read_bytes() for p in (first.private_path, first.public_path)}
    with pytest.raises(UsageError, match="refusing to overwrite"):
        generate_keypair(tmp_path / "k")
    assert {p: p.read_bytes() for p in before} == before
    # Either file alone is enough to refuse: a half pair is not completed with a new half.
    other = tmp_path / "only-pub"
    other.mkdir()
    (other / attest.PUBLIC_KEY_NAME).write_bytes(b"published\n")
    with pytest.raises(UsageError):
        generate_keypair(other)
    assert not (other / attest.PRIVATE_KEY_NAME).exists()
    assert (other / attest.PUBLIC_KEY_NAME).read_bytes() == b"published\n"


def test_a_key_file_appearing_after_the_check_is_not_overwritten(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / attest.PRIVATE_KEY_NAME).write_bytes(b"the only copy\n")
    monkeypatch.setattr(os.path, "lexists", lambda path: False)  # the race: the check saw nothing
    with pytest.raises(UsageError, match="refusing to overwrite"):
        generate_keypair(tmp_path / "k")
    monkeypatch.undo()
    assert (tmp_path / "k" / attest.PRIVATE_KEY_NAME).read_bytes() == b"the only copy\n"
    assert not (tmp_path / "k" / attest.PUBLIC_KEY_NAME).exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700])
def test_private_key_with_loose_mode_is_refused(keypair: attest.KeyPair, tmp_path: Path, mode: int) -> None:
    copy_ = tmp_path / "signing.key"
    shutil.copyfile(keypair.private_path, copy_)
    copy_.chmod(mode)
    with pytest.raises(UsageError, match="readable or writable by others") as info:
        load_private_key(copy_)
    assert f"chmod 600 {copy_}" in info.value.render()
    copy_.chmod(0o400)
    assert key_id(load_private_key(copy_)) == keypair.key_id


def _pem_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_bad_private_keys_are_refused_without_quoting_them(keypair: attest.KeyPair, tmp_path: Path) -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    encrypted = load_private_key(keypair.private_path).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"))
    damaged = keypair.private_path.read_bytes().replace(b"MC4C", b"MC4D")
    cases = {
        "rsa.key": (rsa_pem, "not an Ed25519 key"),
        "enc.key": (encrypted, "encrypted"),
        "pub.key": (keypair.public_path.read_bytes(), "public key"),
        "junk.key": (b"hello\n", "not a private key"),
        "damaged.key": (damaged, "cannot be parsed"),
    }
    secret_body = keypair.private_path.read_bytes().splitlines()[1]
    for name, (data, words) in cases.items():
        with pytest.raises(UsageError, match=words) as info:
            load_private_key(_pem_file(tmp_path, name, data))
        assert secret_body not in info.value.render().encode()
    with pytest.raises(UsageError, match="does not exist"):
        load_private_key(tmp_path / "absent.key")
    with pytest.raises(UsageError, match="not a regular file"):
        load_private_key(tmp_path)


def test_bad_public_keys_are_refused(keypair: attest.KeyPair, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="private key, not a public key"):
        load_public_key(keypair.private_path)
    with pytest.raises(UsageError, match="cannot be parsed"):
        load_public_key(_pem_file(
            tmp_path, "junk.pub", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
    rsa_pub = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(UsageError, match="not an Ed25519 key"):
        load_public_key(_pem_file(tmp_path, "rsa.pub", rsa_pub))


def test_key_path_comes_from_the_flag_then_the_environment() -> None:
    assert attest.resolve_key_path("a.key", {"AECC_SIGNING_KEY": "b.key"}) == Path("a.key")
    assert attest.resolve_key_path(None, {"AECC_SIGNING_KEY": "b.key"}) == Path("b.key")
    assert attest.resolve_key_path(None, {}) is None
    assert attest.resolve_key_path("", {"AECC_SIGNING_KEY": ""}) is None


# ------------------------------------------------------------------------------------------ signing


def test_statement_names_the_zip_and_the_image_and_carries_the_result() -> None:
    result = make_result()
    body = statement(result, zip_sha256=ZIP_SHA, image_digest=IMAGE_DIGEST)
    assert body["_type"] == "https://in-toto.io/Statement/v1"
    assert body["predicateType"] == PREDICATE_TYPE
    assert body["predicate"] == result
    assert body["subject"] == [{"name": "submission.zip", "digest": {"sha256": ZIP_SHA}},
                               {"name": result["submission"]["image"], "digest": {"sha256": "b" * 64}}]
    assert statement(result, zip_sha256=ZIP_SHA, image_digest="b" * 64)["subject"] == body["subject"]
    assert statement(result, zip_sha256=ZIP_SHA, image_digest=None)["subject"] == body["subject"][:1]


@pytest.mark.parametrize("change, words", [
    ({"zip_sha256": "c" * 64}, "another submission"),
    ({"zip_sha256": "XYZ"}, "malformed"),
    ({"image_digest": "sha256:short"}, "image digest is malformed"),
    ({"image_digest": "md5:" + "b" * 64}, "image digest is malformed"),
])
def test_statement_refuses_what_verify_would_refuse(change: dict, words: str) -> None:
    kwargs = {"zip_sha256": ZIP_SHA, "image_digest": IMAGE_DIGEST, **change}
    with pytest.raises(UsageError, match=words):
        statement(make_result(), **kwargs)


def test_signing_refuses_an_invalid_or_non_finite_result(private_key) -> None:
    broken = make_result()
    del broken["versions"]
    with pytest.raises(UsageError, match="does not follow its schema"):
        sign_result(broken, private_key, zip_sha256=ZIP_SHA, image_digest=None)
    with pytest.raises(UsageError, match="NaN"):
        sign_result(make_result(track_a=float("nan")), private_key, zip_sha256=ZIP_SHA, image_digest=None)


def test_envelope_is_dsse_over_the_exact_payload_bytes(private_key, public_key) -> None:
    result = make_result()
    envelope = sign_result(result, private_key, zip_sha256=ZIP_SHA, image_digest=IMAGE_DIGEST)
    assert set(envelope) == {"payload", "payloadType", "signatures"}
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    assert json.loads(payload) == statement(result, zip_sha256=ZIP_SHA, image_digest=IMAGE_DIGEST)
    [entry] = envelope["signatures"]
    assert entry["keyid"] == key_id(public_key)
    expected_pae = b"DSSEv1 28 application/vnd.in-toto+json %d " % len(payload) + payload
    assert attest.pae(PAYLOAD_TYPE, payload) == expected_pae
    public_key.verify(base64.b64decode(entry["sig"]), expected_pae)  # raises if not


def test_round_trip(published: Path, public_key) -> None:
    outcome = verify_envelope(published / ENVELOPE_NAME, public_key)
    assert outcome.ok, outcome.message
    assert outcome.problem is None
    assert outcome.result == json.loads((published / "result.json").read_text())
    assert outcome.key_id == key_id(public_key)
    assert outcome.subject == {"submission.zip": {"sha256": ZIP_SHA},
                               outcome.result["submission"]["image"]: {"sha256": "b" * 64}}
    [again] = verify_paths([published.parent], public_key)
    assert again == outcome


# --------------------------------------------------------------------------------------- tampering


def _flip_in_base64(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("where, problem", [
    ("payload", P.BAD_SIGNATURE),
    ("payload_last", P.BAD_SIGNATURE),
    ("signature", P.BAD_SIGNATURE),
    ("signature_last", P.BAD_SIGNATURE),
    ("payload_type", P.PAYLOAD_TYPE),
])
def test_one_flipped_byte_is_refused(published: Path, public_key, where: str, problem: VerifyProblem) -> None:
    path = published / ENVELOPE_NAME
    envelope = json.loads(path.read_text())
    if where.startswith("payload") and where != "payload_type":
        envelope["payload"] = _flip_in_base64(envelope["payload"], -1 if where.endswith("last") else 40)
    elif where.startswith("signature"):
        envelope["signatures"][0]["sig"] = _flip_in_base64(envelope["signatures"][0]["sig"],
                                                           -1 if where.endswith("last") else 0)
    else:
        envelope["payloadType"] = "application/vnd.in-toto+jsoo"
    outcome = refused(verify_envelope(put(path, envelope), public_key), problem)
    if problem is P.PAYLOAD_TYPE:
        assert "jsoo" in outcome.message and PAYLOAD_TYPE in outcome.message
    else:
        assert "changed after signing" in outcome.message


def test_no_single_byte_change_anywhere_in_the_file_verifies(published: Path, public_key) -> None:
    path = published / ENVELOPE_NAME
    original = path.read_bytes()
    assert verify_envelope(path, public_key).ok
    survivors = []
    for i in range(len(original)):
        for mask in (0x01, 0x20):
            changed = bytearray(original)
            changed[i] ^= mask
            path.write_bytes(bytes(changed))
            if verify_envelope(path, public_key).ok:
                survivors.append((i, mask, original[i:i + 1]))
    assert survivors == [], "these changes still verified"


def test_every_truncation_is_reported_as_truncated(published: Path, public_key) -> None:
    path = published / ENVELOPE_NAME
    original = path.read_bytes()
    for cut in range(len(original.rstrip())):
        path.write_bytes(original[:cut])
        outcome = verify_envelope(path, public_key)
        assert outcome.problem is P.TRUNCATED, (cut, outcome.problem, outcome.message)


def test_a_wrong_key_is_named_as_such(published: Path, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    outcome = refused(verify_envelope(published / ENVELOPE_NAME, other.public_key()), P.UNKNOWN_KEY)
    assert key_id(other) in outcome.message
    assert outcome.key_id != key_id(other)


def test_a_signature_by_another_key_claiming_ours_is_a_bad_signature(published: Path, private_key, public_key) -> None:
    impostor = Ed25519PrivateKey.generate()
    envelope = sign_result(make_result(), impostor, zip_sha256=ZIP_SHA, image_digest=None)
    envelope["signatures"][0]["keyid"] = key_id(public_key)
    refused(verify_envelope(put(published / ENVELOPE_NAME, envelope), public_key), P.BAD_SIGNATURE)


def test_an_edited_keyid_is_refused_even_with_a_valid_signature(published: Path, public_key) -> None:
    envelope = json.loads((published / ENVELOPE_NAME).read_text())
    envelope["signatures"][0]["keyid"] = "0" * 64
    outcome = refused(verify_envelope(put(published / ENVELOPE_NAME, envelope), public_key), P.KEYID_MISMATCH)
    assert "edited" in outcome.message


def test_missing_and_extra_signatures(published: Path, private_key, public_key) -> None:
    path = published / ENVELOPE_NAME
    envelope = json.loads(path.read_text())
    none = {**envelope, "signatures": []}
    refused(verify_envelope(put(path, none), public_key), P.NO_SIGNATURE)
    # Even a second valid signature is refused: results are signed by one key, and a reader must not
    # have to decide which of two signers to believe.
    two = {**envelope, "signatures": envelope["signatures"] * 2}
    refused(verify_envelope(put(path, two), public_key), P.EXTRA_SIGNATURE)
    other = sign_result(make_result(), Ed25519PrivateKey.generate(), zip_sha256=ZIP_SHA, image_digest=None)
    mixed = {**envelope, "signatures": envelope["signatures"] + other["signatures"]}
    refused(verify_envelope(put(path, mixed), public_key), P.EXTRA_SIGNATURE)


@pytest.mark.parametrize("text", [
    b'{"payload": "", "payloadType": "application/vnd.in-toto+json", "signatures": [], "extra": 1}',
    b'{"payload": "", "payload": "", "payloadType": "application/vnd.in-toto+json", "signatures": []}',
    b'["payload", "payloadType", "signatures"]',
    b'{"payload": "not base64!", "payloadType": "application/vnd.in-toto+json", "signatures": []}',
    b'{"payload": 5, "payloadType": "application/vnd.in-toto+json", "signatures": []}',
    b'{"payload": "", "payloadType": 5, "signatures": []}',
    b'{"payload": "", "payloadType": "application/vnd.in-toto+json", "signatures": {}}',
    b'{"payload": "", "payloadType": "application/vnd.in-toto+json", "signatures": [{"sig": ""}]}',
    b'{"payload": "QQ==", "payloadType": "application/vnd.in-toto+json", "signatures": [{"keyid": "", "sig": "QR=="}]}',
    b'{"payload": "QR==", "payloadType": "application/vnd.in-toto+json", "signatures": [{"keyid": "", "sig": "QQ=="}]}',
    b'{"payload": "",, "payloadType": "x", "signatures": []}',
])
def test_what_is_not_a_dsse_envelope(tmp_path: Path, public_key, text: bytes) -> None:
    refused(verify_envelope(put(tmp_path / ENVELOPE_NAME, text), public_key), P.NOT_DSSE)


def test_unreadable_files(tmp_path: Path, public_key) -> None:
    refused(verify_envelope(put(tmp_path / "a" / ENVELOPE_NAME, b'{"payload": "\xff"}'), public_key), P.UNREADABLE)
    (tmp_path / "b" / ENVELOPE_NAME).mkdir(parents=True)
    refused(verify_envelope(tmp_path / "b" / ENVELOPE_NAME, public_key), P.UNREADABLE)
    refused(verify_envelope(tmp_path / "absent.json", public_key), P.UNREADABLE)
    os.mkfifo(tmp_path / "fifo.json")  # must not block the verifier
    refused(verify_envelope(tmp_path / "fifo.json", public_key), P.UNREADABLE)
    refused(verify_envelope(put(tmp_path / "c" / ENVELOPE_NAME, b" \n"), public_key), P.TRUNCATED)


def _statement(**change) -> dict:
    body = statement(make_result(), zip_sha256=ZIP_SHA, image_digest=IMAGE_DIGEST)
    body.update(change)
    return body


@pytest.mark.parametrize("payload, problem", [
    (b"\xff\xfe not json", P.PAYLOAD_NOT_JSON),
    (b'{"_type": 1} trailing', P.PAYLOAD_NOT_JSON),
    (json.dumps(_statement(_type="https://in-toto.io/Statement/v0.1")).encode(), P.NOT_A_STATEMENT),
    (json.dumps([1, 2]).encode(), P.NOT_A_STATEMENT),
    (json.dumps(_statement(subject=[])).encode(), P.NOT_A_STATEMENT),
    (json.dumps(_statement(subject=[{"name": "submission.zip", "digest": {"sha256": 5}}])).encode(), P.NOT_A_STATEMENT),
    (json.dumps(_statement(subject=[{"name": "a", "digest": {"sha256": "x"}}] * 2)).encode(), P.NOT_A_STATEMENT),
    (json.dumps(_statement(predicateType="https://in-toto.io/attestation/test-result/v0.1")).encode(),
     P.PREDICATE_TYPE),
    (json.dumps(_statement(predicate={"schema_version": 1})).encode(), P.SCHEMA),
    (json.dumps(_statement(predicate={**make_result(), "status": "splendid"})).encode(), P.SCHEMA),
    (json.dumps(_statement(subject=[{"name": "submission.zip", "digest": {"sha256": "c" * 64}}])).encode(),
     P.SUBJECT_MISMATCH),
    (json.dumps(_statement(subject=[{"name": "other.zip", "digest": {"sha256": ZIP_SHA}}])).encode(),
     P.SUBJECT_MISMATCH),
    (json.dumps(_statement(subject=[{"name": "submission.zip", "digest": {"sha256": ZIP_SHA}},
                                    {"name": "aecc/someone-else:latest", "digest": {"sha256": "b" * 64}}])).encode(),
     P.SUBJECT_MISMATCH),
])
def test_a_correctly_signed_but_wrong_payload_is_refused(tmp_path: Path, private_key, public_key, payload: bytes,
                                                         problem: VerifyProblem) -> None:
    path = put(tmp_path / "x" / "signed.json", raw_envelope(payload, private_key))
    outcome = refused(verify_envelope(path, public_key), problem)
    assert outcome.key_id == key_id(public_key)


def test_the_zip_at_hand_must_be_the_signed_one(published: Path, public_key, tmp_path: Path) -> None:
    envelope = published / ENVELOPE_NAME
    other_zip = tmp_path / "other.zip"
    other_zip.write_bytes(ZIP_BYTES + b"x")
    outcome = refused(verify_envelope(envelope, public_key, zip_path=other_zip), P.ZIP_MISMATCH)
    assert hashlib.sha256(other_zip.read_bytes()).hexdigest() in outcome.message
    refused(verify_envelope(envelope, public_key, zip_path=tmp_path / "absent.zip"), P.ZIP_MISMATCH)
    assert verify_envelope(envelope, public_key, zip_path=published / "submission.zip").ok
    # Beside the result, RESULTS/<sha>/submission.zip is checked without being asked.
    (published / "submission.zip").write_bytes(ZIP_BYTES + b"y")
    refused(verify_envelope(envelope, public_key), P.ZIP_MISMATCH)
    (published / "submission.zip").unlink()
    assert verify_envelope(envelope, public_key).ok


def test_an_edited_result_json_beside_a_valid_envelope_is_refused(published: Path, public_key) -> None:
    result = json.loads((published / "result.json").read_text())
    result["tasks"][0]["track_a"] = 0.99
    (published / "result.json").write_text(json.dumps(result))
    outcome = refused(verify_envelope(published / ENVELOPE_NAME, public_key), P.RESULT_MISMATCH)
    assert "changed after signing" in outcome.message


def test_verify_never_raises_on_garbage(tmp_path: Path, public_key) -> None:
    import random

    rng = random.Random(12)
    for i in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        if i % 2:
            data = b'{"payload": "' + base64.b64encode(data) + b'", "payloadType": "' + PAYLOAD_TYPE.encode() \
                + b'", "signatures": [{"keyid": "k", "sig": "' + base64.b64encode(data[:64]) + b'"}]}'
        outcome = verify_envelope(put(tmp_path / f"{i}.json", data), public_key)
        assert not outcome.ok and isinstance(outcome.problem, VerifyProblem)


# ---------------------------------------------------------------------------- folders and reports


def test_a_folder_needs_an_envelope_for_every_result(published: Path, public_key, private_key) -> None:
    results = published.parent
    unsigned = results / ("d" * 64)
    unsigned.mkdir()
    (unsigned / "result.json").write_text(json.dumps(make_result("d" * 64)))
    outcomes = verify_paths([results], public_key)
    assert sorted((o.path, o.ok, o.problem) for o in outcomes) == sorted([
        (published / ENVELOPE_NAME, True, None),
        (unsigned / "result.json", False, P.MISSING_ENVELOPE),
    ])
    assert [o.path for o in outcomes] == sorted(o.path for o in outcomes), "folders are walked in a stable order"
    assert all("unsigned" in o.message for o in outcomes if not o.ok)
    # Named directly, a result.json is checked through its envelope, and nothing twice.
    again = verify_paths([published / "result.json", published / ENVELOPE_NAME, results], public_key)
    assert [o.path for o in again] == [published / ENVELOPE_NAME, unsigned / "result.json"]
    write_envelope(unsigned, sign_result(make_result("d" * 64), private_key, zip_sha256="d" * 64, image_digest=None))
    assert all(o.ok for o in verify_paths([results], public_key))


def test_verify_paths_refuses_what_the_operator_mistyped(published: Path, public_key, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        verify_paths([tmp_path / "nope"], public_key)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="nothing to verify"):
        verify_paths([tmp_path / "empty"], public_key)
    second = published.parent / ("e" * 64)
    second.mkdir()
    put(second / ENVELOPE_NAME, b"{}")
    with pytest.raises(UsageError, match="--zip"):
        verify_paths([published.parent], public_key, zip_path=published / "submission.zip")


def test_report_follows_its_schema_and_lists_every_problem(published: Path, public_key) -> None:
    (published.parent / ("d" * 64)).mkdir()
    (published.parent / ("d" * 64) / "result.json").write_text("{}")
    report = verify_report(verify_paths([published.parent], public_key), public_key)
    assert schemas.problems("verify-report", report) == []
    assert report["schema_version"] == schemas.SCHEMA_VERSION
    assert (report["ok"], report["checked"], report["failed"]) == (False, 2, 1)
    files = {Path(f["path"]).parent.name: f for f in report["files"]}
    assert files[ZIP_SHA]["ok"] and files[ZIP_SHA]["submission_sha256"] == ZIP_SHA
    assert (files["d" * 64]["problem"], files["d" * 64]["submission_sha256"]) == ("missing_envelope", None)
    enum_in_schema = schemas.load("verify-report")["properties"]["files"]["items"]["properties"]["problem"]["enum"]
    assert enum_in_schema == [None] + [p.value for p in VerifyProblem]


# ------------------------------------------------------------------------------------------- rescoring


def test_rewriting_is_atomic_idempotent_and_keeps_older_envelopes(published: Path, private_key, public_key) -> None:
    path = published / ENVELOPE_NAME
    first = path.read_bytes()
    same = sign_result(make_result(), private_key, zip_sha256=ZIP_SHA, image_digest=IMAGE_DIGEST)
    assert write_envelope(published, same) == path
    assert path.read_bytes() == first
    assert not (published / "history").exists(), "an identical envelope must not be archived"

    rescored = make_result(track_a=0.75)
    (published / "result.json").write_text(json.dumps(rescored))
    write_envelope(published, sign_result(rescored, private_key, zip_sha256=ZIP_SHA, image_digest=IMAGE_DIGEST))
    second = path.read_bytes()
    assert second != first
    [kept] = sorted((published / "history").iterdir())
    assert kept.name.startswith("result.dsse.") and kept.name.endswith("Z.json")
    assert kept.read_bytes() == first
    old = verify_envelope(kept, public_key)
    assert old.ok and old.result["tasks"][0]["track_a"] == 0.5
    assert verify_envelope(path, public_key).result["tasks"][0]["track_a"] == 0.75

    third = make_result(track_a=0.8)
    write_envelope(published, sign_result(third, private_key, zip_sha256=ZIP_SHA, image_digest=IMAGE_DIGEST))
    history = sorted((published / "history").iterdir())
    assert [p.read_bytes() for p in history] == [first, second]
    assert sorted(p.name for p in published.iterdir() if p.name.endswith(".tmp")) == []
    # A folder check looks at the current envelopes only; the history is there to be named.
    (published / "result.json").write_text(json.dumps(third))
    assert [o.path for o in verify_paths([published.parent], public_key)] == [path]


# ------------------------------------------------------------------------------- independent checks


def test_securesystemslib_verifies_our_envelopes_and_signs_identically(published: Path, private_key,
                                                                       public_key) -> None:
    from securesystemslib import exceptions
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner, SSlibKey

    ours = json.loads((published / ENVELOPE_NAME).read_text())
    key = SSlibKey.from_crypto(public_key, keyid=key_id(public_key))
    envelope = Envelope.from_dict(copy.deepcopy(ours))  # from_dict edits the dict it is given
    assert envelope.payload_type == PAYLOAD_TYPE
    assert envelope.verify([key], 1) == {key.keyid: key}
    # Ed25519 is deterministic: their PAE and signer give our signature byte for byte.
    theirs = Envelope(envelope.payload, PAYLOAD_TYPE, {})
    theirs.sign(CryptoSigner(private_key, key))
    assert theirs.to_dict() == ours

    tampered = copy.deepcopy(ours)
    tampered["payload"] = _flip_in_base64(tampered["payload"], 10)
    with pytest.raises(exceptions.VerificationError):
        Envelope.from_dict(tampered).verify([key], 1)
    retyped = Envelope.from_dict(copy.deepcopy(ours))
    retyped.payload_type = "application/json"
    with pytest.raises(exceptions.VerificationError):
        retyped.verify([key], 1)


def _openssl_verify(tmp_path: Path, public_pem: Path, envelope: dict) -> subprocess.CompletedProcess:
    payload = base64.b64decode(envelope["payload"])
    (tmp_path / "pae.bin").write_bytes(attest.pae(envelope["payloadType"], payload))
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(envelope["signatures"][0]["sig"]))
    return subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", public_pem, "-rawin",
                           "-in", tmp_path / "pae.bin", "-sigfile", tmp_path / "sig.bin"],
                          capture_output=True, text=True)


def test_openssl_verifies_our_envelopes(published: Path, keypair: attest.KeyPair, tmp_path: Path) -> None:
    envelope = json.loads((published / ENVELOPE_NAME).read_text())
    ok = _openssl_verify(tmp_path, keypair.public_path, envelope)
    assert ok.returncode == 0, ok.stderr
    assert "Signature Verified Successfully" in ok.stdout
    for change in ("payload", "payloadType"):
        bad = copy.deepcopy(envelope)
        if change == "payload":
            bad["payload"] = _flip_in_base64(bad["payload"], 100)
        else:
            bad["payloadType"] = "application/json"
        assert _openssl_verify(tmp_path, keypair.public_path, bad).returncode != 0, change
    other = tmp_path / "other.pub"
    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert _openssl_verify(tmp_path, other, envelope).returncode != 0


def test_openssl_signs_the_same_bytes_from_our_key_file(published: Path, keypair: attest.KeyPair,
                                                        tmp_path: Path) -> None:
    envelope = json.loads((published / ENVELOPE_NAME).read_text())
    (tmp_path / "pae.bin").write_bytes(attest.pae(PAYLOAD_TYPE, base64.b64decode(envelope["payload"])))
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", keypair.private_path, "-rawin",
                          "-in", tmp_path / "pae.bin"], check=True, capture_output=True).stdout
    assert base64.b64encode(sig).decode() == envelope["signatures"][0]["sig"]


# ------------------------------------------------------------------------------------------ key leaks


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _raw(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


@pytest.fixture
def clean_tree(tmp_path: Path, published: Path) -> Path:
    """Results, logs and an image-like tarball that hold no key."""
    root = published.parent.parent
    (root / "logs").mkdir()
    (root / "logs" / "score.log").write_text("signed with key id " + "f" * 64 + "\n")
    layer = _tar_bytes({"app/agent.py": b"print('hi')\n", "etc/os-release": b"ID=debian\n"})
    (root / "image.tar").write_bytes(_tar_bytes({"abc/layer.tar": layer, "blobs/sha256/1": gzip.compress(layer),
                                                 "manifest.json": b"[]"}))
    return root


def test_find_secret_finds_nothing_where_the_key_is_not(clean_tree: Path, keypair: attest.KeyPair) -> None:
    assert find_secret([clean_tree], keypair.private_path.read_bytes()) == []
    # Another key planted is not ours: no false alarm.
    other = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption())
    (clean_tree / "other.key").write_bytes(other)
    assert find_secret([clean_tree], keypair.private_path.read_bytes()) == []
    assert find_secret([clean_tree], other) == [clean_tree / "other.key"]


def test_find_secret_finds_the_key_in_every_form(clean_tree: Path, keypair: attest.KeyPair) -> None:
    pem = keypair.private_path.read_bytes()
    raw = _raw(pem)
    body = pem.splitlines()[1]
    planted = {
        clean_tree / "copied.pem": pem,
        clean_tree / "logs" / "env.log": b"AECC_KEY=" + body + b"\n",
        clean_tree / "weights.bin": os.urandom(1000) + raw + os.urandom(1000),
        clean_tree / "debug.txt": b"key bytes: " + raw.hex().encode() + b"\n",
        clean_tree / "jwk.json": b'{"kty":"OKP","crv":"Ed25519","d":"'
                                 + base64.urlsafe_b64encode(raw).rstrip(b"=") + b'"}',
        clean_tree / "big.bin": bytes(3 * secrets.SCAN_CHUNK) + raw + bytes(100),
    }
    for path, data in planted.items():
        path.write_bytes(data)
    assert sorted(find_secret([clean_tree], pem)) == sorted(planted)
    assert find_secret([clean_tree / "weights.bin"], pem) == [clean_tree / "weights.bin"]


def test_find_secret_sees_a_key_that_straddles_two_reads(tmp_path: Path, keypair: attest.KeyPair,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pem = keypair.private_path.read_bytes()
    monkeypatch.setattr(secrets, "SCAN_CHUNK", 64)  # small reads: every offset below crosses a boundary somewhere
    for offset in range(1000, 1070, 3):
        path = tmp_path / f"at-{offset}.bin"
        path.write_bytes(b"\x01" * offset + _raw(pem) + b"\x01" * 300)
        assert find_secret([path], pem) == [path], offset


def test_find_secret_looks_inside_image_tarballs(tmp_path: Path, keypair: attest.KeyPair) -> None:
    pem = keypair.private_path.read_bytes()
    leaky_layer = _tar_bytes({"root/.aecc/keys/signing.key": pem, "app/ok.py": b"x = 1\n"})
    raw_layer = _tar_bytes({"opt/blob.bin": b"\0" * 700 + _raw(pem)})
    image = tmp_path / "image.tar"
    image.write_bytes(_tar_bytes({
        "abc/layer.tar": leaky_layer,  # docker save: uncompressed layer tars
        "blobs/sha256/def": gzip.compress(raw_layer),  # OCI layout: gzip-compressed layers
        "blobs/sha256/ghi": gzip.compress(_tar_bytes({"clean.txt": b"clean\n"})),
    }))
    assert find_secret([image], pem) == [
        Path(f"{image}!/abc/layer.tar!/root/.aecc/keys/signing.key"),
        Path(f"{image}!/blobs/sha256/def!/opt/blob.bin"),
    ]
    gz = tmp_path / "image.tar.gz"
    gz.write_bytes(gzip.compress(image.read_bytes()))
    assert len(find_secret([gz], pem)) == 2
    # A damaged archive is still searched as bytes.
    (tmp_path / "cut.tar").write_bytes(image.read_bytes()[:3000])
    assert find_secret([tmp_path / "cut.tar"], pem) != []

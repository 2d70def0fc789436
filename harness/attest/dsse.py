"""Signed results: an in-toto Statement v1 in a DSSE envelope, written beside `result.json`.

A result is only worth publishing if a reader can tell that the organizers produced it and that no
byte changed since. Each `result.json` therefore gets a sibling `result.dsse.json`: an in-toto
Statement v1 (subjects: the submission ZIP by sha256, the submission image by digest; predicate: the
result exactly as result.json holds it) inside a DSSE envelope signed with Ed25519. DSSE signs
`PAE = "DSSEv1" SP len(type) SP type SP len(body) SP body` over the exact payload bytes, so no JSON
canonicalisation is needed and the payload type is bound by the signature; a third party checks it
with `cryptography` or with `openssl pkeyutl -verify -rawin` in a few lines.

Formats, fixed here (and read back by `harness.attest.verify`):
- `PREDICATE_TYPE` is a URI of our own (the vetted in-toto predicates have no place for scores); the
  `.invalid` host says it is a name, not a page to fetch. A new result shape gets a new `/vN`.
- The envelope holds exactly `payload`, `payloadType` and `signatures: [{keyid, sig}]`, in canonical
  base64; the verifier refuses anything else, so that no single-byte change to the file verifies.
- Rescoring never destroys a signature: a differing older envelope is first kept as
  `history/result.dsse.<UTC timestamp>.json` (its predicate is the old result), then replaced.

`Signer` is what a scoring run holds: the private key, loaded before any work, and the one call
the pipeline makes after writing a result.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import schemas
from harness.attest.keys import key_id, load_private_key
from harness.errors import InfraError, UsageError
from harness.safeio import fsync_dir, write_atomic

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://aecc-harness.invalid/attestation/evaluation-result/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
ENVELOPE_NAME = "result.dsse.json"
RESULT_NAME = "result.json"
ZIP_NAME = "submission.zip"
#: the subject name of the submission archive (for a folder submission: its aecc-folder-v1 digest)
ZIP_SUBJECT = ZIP_NAME
HISTORY_DIR = "history"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _image_subject(image: str, image_digest: str) -> dict[str, Any]:
    digest = image_digest.removeprefix("sha256:")
    if not _HEX64.match(digest):
        raise UsageError("the image digest is malformed", expected="sha256:<64 lowercase hex digits>",
                         found=repr(image_digest)[:100], fix="pass the image id or repo digest the engine reported")
    return {"name": image, "digest": {"sha256": digest}}


def statement(result: dict, *, zip_sha256: str, image_digest: str | None) -> dict:
    """The in-toto Statement v1 for one result: subjects are the submission ZIP (by sha256) and, when
    `image_digest` is given, the submission image (named by its reference); the predicate is `result`.

    Raises UsageError when the result is not a valid result document or names another submission:
    an envelope `verify` would refuse is never written."""
    found = schemas.problems("result", result)
    if found:
        raise UsageError("refusing to sign a result that does not follow its schema",
                         expected="a result.json document (harness/schemas/result.schema.json)",
                         found="; ".join(found), fix="sign what ScoreResult.to_dict() returned")
    if not _HEX64.match(zip_sha256 or ""):
        raise UsageError("the submission digest is malformed", expected="64 lowercase hex digits",
                         found=repr(zip_sha256)[:100], fix="pass the submission's sha256 from intake")
    if result["submission"]["sha256"] != zip_sha256:
        raise UsageError("the result belongs to another submission", expected=f"submission.sha256 == {zip_sha256}",
                         found=result["submission"]["sha256"], fix="sign each result with its own submission's digest")
    subject = [{"name": ZIP_SUBJECT, "digest": {"sha256": zip_sha256}}]
    if image_digest is not None:
        subject.append(_image_subject(result["submission"]["image"], image_digest))
    return {"_type": STATEMENT_TYPE, "subject": subject, "predicateType": PREDICATE_TYPE, "predicate": result}


def sign_result(result: dict, private_key: Ed25519PrivateKey, *, zip_sha256: str, image_digest: str | None) -> dict:
    """The DSSE envelope of `result`'s statement, signed with `private_key`."""
    body = statement(result, zip_sha256=zip_sha256, image_digest=image_digest)
    try:
        # Strict JSON: a NaN would make a payload that jq, openssl users and browsers cannot read.
        payload = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("ascii")
    except ValueError:
        raise UsageError("refusing to sign a result holding NaN or infinity", expected="finite numbers only",
                         found="a non-finite number in the result",
                         fix="record a failed task with a null value and a reason instead") from None
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key_id(private_key), "sig": base64.b64encode(signature).decode("ascii")}],
    }


def _envelope_bytes(envelope: dict) -> bytes:
    return (json.dumps(envelope, indent=2) + "\n").encode("ascii")


def _utc_stamp() -> str:
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1_000_000):06d}Z"


def write_envelope(result_dir: Path, envelope: dict) -> Path:
    """Write `result_dir/result.dsse.json` atomically (tmp, fsync, rename, fsync of the folder).

    Idempotent: the same envelope again changes nothing (Ed25519 and the payload serialisation are
    deterministic, so re-signing an unchanged result gives the same bytes). A differing older
    envelope is kept as `history/result.dsse.<UTC>.json` before the new one replaces it, so a
    reader can still check what was published before a rescore."""
    result_dir = Path(result_dir)
    target = result_dir / ENVELOPE_NAME
    data = _envelope_bytes(envelope)
    try:
        old = target.read_bytes()
    except FileNotFoundError:
        old = None
    if old == data:
        return target
    if old is not None:
        history = result_dir / HISTORY_DIR
        history.mkdir(exist_ok=True)
        while True:
            kept = history / f"result.dsse.{_utc_stamp()}.json"
            try:
                # A hard link keeps the old bytes under the new name in one step, before the
                # replace below: no moment exists without a current envelope.
                os.link(target, kept)
                break
            except FileExistsError:
                continue
            except OSError:
                write_atomic(kept, old)  # a file system without hard links
                break
        fsync_dir(history)
    write_atomic(target, data)
    return target


def sign_and_write(result_dir: Path, result: dict, private_key: Ed25519PrivateKey, *, zip_sha256: str,
                   image_digest: str | None) -> Path:
    """`sign_result` then `write_envelope`: the one call the scoring run needs per result."""
    return write_envelope(result_dir, sign_result(result, private_key, zip_sha256=zip_sha256,
                                                  image_digest=image_digest))



@dataclasses.dataclass(frozen=True)
class Signer:
    """Signs a run's results with one private key. Made before any work (`from_key_file`: a bad key
    is a usage error then, not after hours of scoring); the pipeline calls `sign` once per result."""

    private_key: Ed25519PrivateKey = dataclasses.field(repr=False)

    @classmethod
    def from_key_file(cls, path: Path) -> Signer:
        """The signer for a 0600 PEM key file (`load_private_key`'s refusals are UsageErrors)."""
        return cls(load_private_key(Path(path)))

    @property
    def key_id(self) -> str:
        return key_id(self.private_key)

    def sign(self, result_dir: Path, result: dict, *, zip_sha256: str, image_digest: str | None) -> Path:
        """Sign `result` (as written to `result_dir/result.json`) and write its envelope beside it.

        Raises:
            InfraError: the result cannot be signed (off-schema, a NaN): the harness wrote it, so it is
                the harness's bug, never the submission's; the result stays unranked until a run signs it.
        """
        try:
            envelope = sign_result(result, self.private_key, zip_sha256=zip_sha256, image_digest=image_digest)
        except UsageError as exc:
            raise InfraError("the result could not be signed", expected=exc.expected, found=exc.found,
                             fix="report it as a harness bug with the result file",
                             log_path=Path(result_dir) / RESULT_NAME) from None
        return write_envelope(result_dir, envelope)

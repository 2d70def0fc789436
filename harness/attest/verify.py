"""Checking signed results offline, with nothing but the organizer's public key.

The leaderboard ranks only what verifies (`harness.rank.inputs`) and `aecc verify` reports on any
envelope, so the verifier is strict and precise: exactly the envelope shape `harness.attest.dsse`
writes (any single changed byte, a cut, a foreign key, a missing or extra signature, a wrong
payload type are each refused), then the statement, the predicate type, the result schema, the
subjects against the result, the ZIP's digest where the ZIP is at hand, a `result.json` beside
the envelope against what was signed, and the per-clip outputs (`clips.npz`) the signed result
names against their signed digest. Every refusal has its own stable id (`VerifyProblem`), and a
bad envelope is an outcome, never an exception. `verify_paths` on a folder checks the current
envelopes only; name a `history/` file to check an older one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import json
import os
import stat
from pathlib import Path
from typing import Any, Iterable, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from harness import schemas
from harness.attest.dsse import (
    ENVELOPE_NAME,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    RESULT_NAME,
    STATEMENT_TYPE,
    ZIP_NAME,
    ZIP_SUBJECT,
    pae,
)
from harness.attest.keys import key_id
from harness.errors import UsageError
from harness.safeio import sha256_file

#: an envelope is a few kB; anything far larger is not one of ours and is not read whole
ENVELOPE_CAP = 32 * 1024 * 1024


class VerifyProblem(str, enum.Enum):
    """Why an envelope did not verify; stable ids, one per kind of failure."""

    MISSING_ENVELOPE = "missing_envelope"  # a result.json without its result.dsse.json
    UNREADABLE = "unreadable"  # cannot be opened or read, not a regular file, not UTF-8, too large
    TRUNCATED = "truncated"  # empty, or JSON that stops before its end
    NOT_DSSE = "not_dsse"  # not JSON, or not exactly {payload, payloadType, signatures} in canonical base64
    PAYLOAD_TYPE = "payload_type"
    NO_SIGNATURE = "no_signature"
    EXTRA_SIGNATURE = "extra_signature"
    UNKNOWN_KEY = "unknown_key"  # signed by another key than the one given
    BAD_SIGNATURE = "bad_signature"  # the keyid is ours but the signature does not match: content changed
    KEYID_MISMATCH = "keyid_mismatch"  # a valid signature whose keyid field was altered
    PAYLOAD_NOT_JSON = "payload_not_json"
    NOT_A_STATEMENT = "not_a_statement"
    PREDICATE_TYPE = "predicate_type"
    SCHEMA = "schema"  # the predicate does not follow the result schema
    SUBJECT_MISMATCH = "subject_mismatch"  # subjects disagree with the predicate's submission
    ZIP_MISMATCH = "zip_mismatch"  # the ZIP at hand is not the one the statement names
    RESULT_MISMATCH = "result_mismatch"  # result.json beside the envelope is not what was signed
    CLIPS_MISMATCH = "clips_mismatch"  # the per-clip file the signed result names is changed, or not a file


@dataclasses.dataclass(frozen=True)
class VerifyOutcome:
    """The verdict on one file. `result` is the signed predicate, set only when `ok`; `subject` maps
    each subject name to its digests, set once the statement was read."""

    path: Path
    ok: bool
    problem: VerifyProblem | None
    message: str
    key_id: str | None = None
    result: dict | None = None
    subject: dict | None = None

    def __post_init__(self) -> None:
        if self.problem is not None:
            object.__setattr__(self, "problem", VerifyProblem(self.problem))
        if self.ok != (self.problem is None):
            raise ValueError("an outcome is ok exactly when it has no problem")

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": self.ok, "problem": self.problem.value if self.problem else None,
                "message": self.message, "key_id": self.key_id, "subject": self.subject,
                "submission_sha256": (self.result or {}).get("submission", {}).get("sha256") if self.ok else None}


class _Refused(Exception):
    def __init__(self, problem: VerifyProblem, message: str, **found: Any) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.found = found


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        # Two "payload" members would let different readers see different envelopes.
        raise ValueError(f"duplicate member {sorted(k for k in keys if keys.count(k) > 1)[0]!r}")
    return dict(pairs)


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise _Refused(VerifyProblem.NOT_DSSE, f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused(VerifyProblem.NOT_DSSE, f"{what} is not valid base64") from None
    # Non-canonical base64 (stray bits in the last character) decodes to the same bytes: refusing it
    # means that every byte of the file matters.
    if base64.b64encode(raw).decode("ascii") != text:
        raise _Refused(VerifyProblem.NOT_DSSE, f"{what} is not canonical base64 (a character was changed)")
    return raw


def _read_envelope(path: Path) -> dict:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _Refused(VerifyProblem.UNREADABLE, "no such file") from None
    except OSError as exc:
        raise _Refused(VerifyProblem.UNREADABLE, f"cannot open: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused(VerifyProblem.UNREADABLE, f"not a regular file ({stat.filemode(info.st_mode)})")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > ENVELOPE_CAP:
                raise _Refused(VerifyProblem.UNREADABLE, f"larger than {ENVELOPE_CAP} bytes: not an envelope")
        data = b"".join(chunks)
    except OSError as exc:
        raise _Refused(VerifyProblem.UNREADABLE, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(VerifyProblem.UNREADABLE, f"not UTF-8 text (byte {exc.start})") from None
    stripped = text.rstrip(" \t\r\n")
    if not stripped:
        raise _Refused(VerifyProblem.TRUNCATED, "the file is empty")
    try:
        envelope = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        # A cut file either stops inside a value or fails exactly at its end; a changed byte elsewhere
        # leaves a complete document with an error in the middle.
        if exc.pos >= len(stripped) or (exc.msg.startswith("Unterminated string") and not stripped.endswith("}")):
            raise _Refused(VerifyProblem.TRUNCATED, f"the JSON stops early ({len(data)} bytes; {exc.msg})") from None
        raise _Refused(VerifyProblem.NOT_DSSE, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    except ValueError as exc:
        raise _Refused(VerifyProblem.NOT_DSSE, f"not a DSSE envelope: {exc}") from None
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "payloadType", "signatures"}:
        members = sorted(envelope) if isinstance(envelope, dict) else type(envelope).__name__
        raise _Refused(VerifyProblem.NOT_DSSE, "not a DSSE envelope: expected exactly the members payload, "
                       f"payloadType, signatures; found {members}")
    return envelope


def _check_signature(envelope: dict, public_key: Ed25519PublicKey) -> tuple[bytes, str]:
    """The authenticated payload bytes and the key id that signed them."""
    ours = key_id(public_key)
    kind = envelope["payloadType"]
    if not isinstance(kind, str):
        raise _Refused(VerifyProblem.NOT_DSSE, "payloadType is not a string")
    if kind != PAYLOAD_TYPE:
        raise _Refused(VerifyProblem.PAYLOAD_TYPE, f"payloadType is {kind[:80]!r}; expected {PAYLOAD_TYPE!r}")
    payload = _b64(envelope["payload"], "payload")
    signatures = envelope["signatures"]
    if not isinstance(signatures, list):
        raise _Refused(VerifyProblem.NOT_DSSE, "signatures is not a list")
    if not signatures:
        raise _Refused(VerifyProblem.NO_SIGNATURE, "the envelope holds no signature")
    if len(signatures) > 1:
        raise _Refused(VerifyProblem.EXTRA_SIGNATURE, f"the envelope holds {len(signatures)} signatures; "
                       "results are signed by exactly one key")
    entry = signatures[0]
    if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"} or not isinstance(entry["keyid"], str):
        raise _Refused(VerifyProblem.NOT_DSSE, "the signature is not exactly {keyid (string), sig (base64)}")
    signature = _b64(entry["sig"], "the signature")
    claimed = entry["keyid"]
    try:
        public_key.verify(signature, pae(kind, payload))
    except InvalidSignature:
        if claimed != ours:
            raise _Refused(VerifyProblem.UNKNOWN_KEY, f"signed by key {claimed[:64]!r}, not by the given key {ours}; "
                           "verify with the public key published with these results",
                           key_id=claimed) from None
        raise _Refused(VerifyProblem.BAD_SIGNATURE, "the signature does not match the content: the payload, its "
                       "type or the signature was changed after signing", key_id=claimed) from None
    if claimed != ours:
        raise _Refused(VerifyProblem.KEYID_MISMATCH, f"the signature is valid but its keyid field reads "
                       f"{claimed[:64]!r} instead of {ours}: the envelope was edited", key_id=claimed)
    return payload, ours


def _subject_map(subjects: Any) -> dict[str, dict[str, str]] | None:
    """name -> digests of a well-formed subject list (non-empty, distinct names, string digests), else None."""
    if not isinstance(subjects, list) or not subjects:
        return None
    found: dict[str, dict[str, str]] = {}
    for item in subjects:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item["name"] in found:
            return None
        digest = item.get("digest")
        if not isinstance(digest, dict) or not digest or not all(isinstance(v, str) for v in digest.values()):
            return None
        found[item["name"]] = digest
    return found


def _check_statement(payload: bytes) -> tuple[dict, dict]:
    """The predicate and the subject map of an authenticated payload."""
    try:
        body = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused(VerifyProblem.PAYLOAD_NOT_JSON, f"the signed payload is not JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        found = body.get("_type") if isinstance(body, dict) else type(body).__name__
        raise _Refused(VerifyProblem.NOT_A_STATEMENT, f"the payload is not an in-toto Statement v1: _type is "
                       f"{str(found)[:100]!r}, expected {STATEMENT_TYPE!r}")
    subject = _subject_map(body.get("subject"))
    if subject is None or "predicate" not in body:
        raise _Refused(VerifyProblem.NOT_A_STATEMENT, "the statement needs a non-empty subject list of "
                       "{name, digest: {algorithm: hex}} with distinct names, and a predicate")
    if body.get("predicateType") != PREDICATE_TYPE:
        raise _Refused(VerifyProblem.PREDICATE_TYPE, f"predicateType is {str(body.get('predicateType'))[:100]!r}; "
                       f"expected {PREDICATE_TYPE!r}", subject=subject)
    predicate = body["predicate"]
    found = schemas.problems("result", predicate)
    if found:
        raise _Refused(VerifyProblem.SCHEMA, "the signed result does not follow result.schema.json: "
                       + "; ".join(found), subject=subject)
    zip_digest = subject.get(ZIP_SUBJECT, {}).get("sha256")
    if zip_digest != predicate["submission"]["sha256"]:
        raise _Refused(VerifyProblem.SUBJECT_MISMATCH, f"subject {ZIP_SUBJECT} has sha256 {str(zip_digest)[:64]!r} "
                       f"but the result is for submission {predicate['submission']['sha256']}", subject=subject)
    images = [name for name in subject if name != ZIP_SUBJECT]
    if images and images != [predicate["submission"]["image"]]:
        raise _Refused(VerifyProblem.SUBJECT_MISMATCH, f"the image subject {images!r} is not the result's image "
                       f"{predicate['submission']['image']!r}", subject=subject)
    return predicate, subject


def verify_envelope(path: Path, public_key: Ed25519PublicKey, *, zip_path: Path | None = None) -> VerifyOutcome:
    """Check one envelope file: form, payload type, one signature by `public_key`, statement, predicate
    type, result schema, subjects; the ZIP's sha256 when it is at hand (`zip_path`, else a
    `submission.zip` beside the envelope); and, where a `result.json` sits beside a `result.dsse.json`,
    that it holds what was signed. Never raises for a bad envelope: the outcome says what is wrong."""
    path = Path(path)
    found: dict[str, Any] = {}
    try:
        envelope = _read_envelope(path)
        payload, signer = _check_signature(envelope, public_key)
        found["key_id"] = signer
        predicate, subject = _check_statement(payload)
        found["subject"] = subject
        zip_at_hand = Path(zip_path) if zip_path is not None else path.parent / ZIP_NAME
        if zip_path is not None or zip_at_hand.is_file():
            try:
                actual = sha256_file(zip_at_hand)
            except OSError as exc:
                raise _Refused(VerifyProblem.ZIP_MISMATCH, f"the ZIP {zip_at_hand} cannot be read: {exc.strerror}") \
                    from None
            if actual != subject[ZIP_SUBJECT]["sha256"]:
                raise _Refused(VerifyProblem.ZIP_MISMATCH, f"the ZIP {zip_at_hand} has sha256 {actual}, but the "
                               f"signed result is for {subject[ZIP_SUBJECT]['sha256']}")
        beside = path.parent / RESULT_NAME
        if path.name == ENVELOPE_NAME and beside.is_file():
            try:
                shown = json.loads(beside.read_bytes())
            except (OSError, ValueError) as exc:
                raise _Refused(VerifyProblem.RESULT_MISMATCH, f"{RESULT_NAME} beside it cannot be read: "
                               f"{str(exc)[:200]}") from None
            if shown != predicate:
                raise _Refused(VerifyProblem.RESULT_MISMATCH, f"{RESULT_NAME} beside it differs from the signed "
                               "result: it was changed after signing (the envelope holds the signed one)")
        clips_note = _check_clips(path.parent, predicate) if path.name == ENVELOPE_NAME else ""
    except _Refused as refused:
        found.update(refused.found)
        return VerifyOutcome(path, False, refused.problem, refused.message, key_id=found.get("key_id"),
                             subject=found.get("subject"))
    return VerifyOutcome(path, True, None, f"signed by {signer} for submission {subject[ZIP_SUBJECT]['sha256']}"
                         + (f"; {clips_note}" if clips_note else ""), key_id=signer, result=predicate, subject=subject)


def _check_clips(folder: Path, predicate: dict) -> str:
    """The per-clip outputs the signed result names (`clips`: file and sha256), where they are beside
    it, are unchanged; what was found, in words.

    They are signed through their digest in the result, so the bootstrap's intervals rest on signed
    data exactly as the scores do. A result without `clips` (null, or older than them) names none.
    Their absence is not a failure, as a ZIP's is not: a published copy of the results leaves them
    out (they hold per-clip labels, the hidden tasks' among them), and whoever holds the file can
    check it against the signed digest. Something else in its place (a link, a folder) is refused."""
    named = predicate.get("clips")
    if not named:
        return ""
    file = folder / named["file"]  # the schema fixes the name: no path of the envelope's choosing
    if not file.exists() and not file.is_symlink():
        return f"per-clip outputs not in this copy (their sha256 {named['sha256'][:12]}... is signed)"
    if not file.is_file() or file.is_symlink():
        raise _Refused(VerifyProblem.CLIPS_MISMATCH, f"the signed result names its per-clip outputs {file}, but "
                       "that is not a regular file: copy the file itself with the result, or rescore")
    try:
        actual = sha256_file(file)
    except OSError as exc:
        raise _Refused(VerifyProblem.CLIPS_MISMATCH, f"{file} cannot be read: {exc.strerror}") from None
    if actual != named["sha256"]:
        raise _Refused(VerifyProblem.CLIPS_MISMATCH, f"{file} has sha256 {actual}, but the signed result names "
                       f"{named['sha256']}: the per-clip outputs were changed after signing")
    return "per-clip outputs checked"


def _walk(top: Path) -> Iterator[Path]:
    """Every result.json and result.dsse.json under `top`, in a stable order (kept envelopes in
    history/ have other names and are not among them)."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            if name in (RESULT_NAME, ENVELOPE_NAME):
                yield Path(dirpath, name)


def verify_paths(paths: Iterable[Path], public_key: Ed25519PublicKey, *,
                 zip_path: Path | None = None) -> list[VerifyOutcome]:
    """Verify what `paths` name: an envelope file; a result.json (its envelope must be beside it); a
    folder, where every result.json must have an envelope and each result.dsse.json is checked.

    Raises UsageError only for what the operator typed: a path that does not exist, nothing to check
    at all, or `zip_path` with more than one envelope (one ZIP cannot be every submission)."""
    envelopes: list[Path] = []
    outcomes: dict[Path, VerifyOutcome] = {}
    order: list[Path] = []

    def consider(file: Path) -> None:
        if file.name == RESULT_NAME:
            envelope = file.with_name(ENVELOPE_NAME)
            if not os.path.lexists(envelope):
                outcomes.setdefault(file, VerifyOutcome(file, False, VerifyProblem.MISSING_ENVELOPE,
                                                        f"{file} has no {ENVELOPE_NAME} beside it: it is unsigned"))
                order.append(file)
                return
            file = envelope
        if file not in envelopes:
            envelopes.append(file)
            order.append(file)

    for given in paths:
        given = Path(given)
        if given.is_dir():
            for file in _walk(given):
                consider(file)
        elif os.path.lexists(given):
            consider(given)
        else:
            raise UsageError(f"{given} does not exist", found="no such file or folder", fix="check the path",
                             expected="a result.dsse.json, a result.json or a RESULTS folder")
    if not order:
        raise UsageError("nothing to verify", expected=f"at least one {RESULT_NAME} or {ENVELOPE_NAME}",
                         found="none under " + ", ".join(str(p) for p in paths),
                         fix="point at the RESULTS folder or at result files")
    if zip_path is not None and len(envelopes) > 1:
        raise UsageError("--zip names one submission but several results were given",
                         expected="exactly one result with --zip", found=f"{len(envelopes)} envelopes",
                         fix="verify that result alone, or put each ZIP beside its result as submission.zip")
    for envelope in envelopes:
        outcomes[envelope] = verify_envelope(envelope, public_key, zip_path=zip_path)
    seen: set[Path] = set()
    return [outcomes[p] for p in order if not (p in seen or seen.add(p))]


def verify_report(outcomes: list[VerifyOutcome], public_key: Ed25519PublicKey) -> dict:
    """The `--json` report of a verify run, checked against verify-report.schema.json."""
    failed = sum(not o.ok for o in outcomes)
    data = {
        "schema_version": schemas.SCHEMA_VERSION,
        "ok": failed == 0 and bool(outcomes),
        "key_id": key_id(public_key),
        "predicate_type": PREDICATE_TYPE,
        "checked": len(outcomes),
        "failed": failed,
        "files": [o.to_dict() for o in outcomes],
    }
    return schemas.validate("verify-report", data)


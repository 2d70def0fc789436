"""Signed results that anyone can verify offline with standard tools (issue 12).

A result is only worth publishing if a reader can tell that the organizers produced it and that no
byte changed since. Each `result.json` therefore gets a sibling `result.dsse.json`: an in-toto
Statement v1 (subjects: the submission ZIP by sha256, the submission image by digest; predicate: the
result exactly as result.json holds it) inside a DSSE envelope signed with Ed25519. DSSE signs
`PAE = "DSSEv1" SP len(type) SP type SP len(body) SP body` over the exact payload bytes, so no JSON
canonicalisation is needed and the payload type is bound by the signature; a third party checks it
with `cryptography` or with `openssl pkeyutl -verify -rawin` in a few lines (see the signing notes).

Formats, fixed here:
- `PREDICATE_TYPE` is a URI of our own (the vetted in-toto predicates have no place for scores); the
  `.invalid` host says it is a name, not a page to fetch. A new result shape gets a new `/vN`.
- The key id is the sha256 hex of the public key's DER SubjectPublicKeyInfo:
  `openssl pkey -pubin -in signing.pub -outform DER | sha256sum` gives the same string.
- The envelope holds exactly `payload`, `payloadType` and `signatures: [{keyid, sig}]`, in canonical
  base64; the verifier refuses anything else, so that no single-byte change to the file verifies.
- Rescoring never destroys a signature: a differing older envelope is first kept as
  `history/result.dsse.<UTC timestamp>.json` (its predicate is the old result), then replaced.
  `verify` on a folder checks the current envelopes only; name a history file to check it.

The private key lives on the host only: it is loaded from a 0600 PEM file, never printed (no message
here quotes key material) and `find_secret` searches files and image tarballs for it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import gzip
import hashlib
import json
import os
import re
import stat
import tarfile
import time
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from harness import schemas
from harness.errors import UsageError
from harness.safeio import write_atomic

__all__ = [
    "ENVELOPE_NAME", "HISTORY_DIR", "PAYLOAD_TYPE", "PREDICATE_TYPE", "PRIVATE_KEY_NAME", "PUBLIC_KEY_NAME",
    "SIGNING_KEY_ENV", "STATEMENT_TYPE", "ZIP_SUBJECT", "KeyPair", "VerifyOutcome", "VerifyProblem",
    "find_secret", "generate_keypair", "key_id", "load_private_key", "load_public_key", "pae",
    "resolve_key_path", "sign_and_write", "sign_result", "statement", "verify_envelope", "verify_paths",
    "verify_report", "write_envelope",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://aecc-harness.invalid/attestation/evaluation-result/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
ENVELOPE_NAME = "result.dsse.json"
RESULT_NAME = "result.json"
ZIP_NAME = "submission.zip"
#: the subject name of the submission archive (for a folder submission: its aecc-folder-v1 digest)
ZIP_SUBJECT = ZIP_NAME
HISTORY_DIR = "history"
PRIVATE_KEY_NAME = "signing.key"
PUBLIC_KEY_NAME = "signing.pub"
SIGNING_KEY_ENV = "AECC_SIGNING_KEY"

#: an envelope is a few kB; anything far larger is not one of ours and is not read whole
ENVELOPE_CAP = 32 * 1024 * 1024
#: a key file is under 200 bytes
KEY_FILE_CAP = 64 * 1024

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------------------------- keys


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """What `generate_keypair` wrote: the two files and the key id."""

    private_path: Path
    public_path: Path
    key_id: str


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """sha256 hex of the public key's DER SubjectPublicKeyInfo (a private key is taken to its public half)."""
    if isinstance(public_key, Ed25519PrivateKey):
        public_key = public_key.public_key()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def resolve_key_path(flag: str | os.PathLike[str] | None, environ: dict[str, str] | None = None) -> Path | None:
    """The signing key the operator asked for: `--key FILE`, else `$AECC_SIGNING_KEY`, else None (unsigned)."""
    value = flag if flag else (os.environ if environ is None else environ).get(SIGNING_KEY_ENV)
    return Path(value).expanduser() if value else None


def generate_keypair(out_dir: Path) -> KeyPair:
    """Write a new Ed25519 key pair into `out_dir` (created 0700 if missing): `signing.key` (PKCS#8 PEM,
    mode 0600) and `signing.pub` (SubjectPublicKeyInfo PEM). Never overwrites: an existing file of
    either name refuses the whole operation, so a published key cannot be lost by a typo."""
    out_dir = Path(out_dir)
    private_path, public_path = out_dir / PRIVATE_KEY_NAME, out_dir / PUBLIC_KEY_NAME
    existing = [p for p in (private_path, public_path) if os.path.lexists(p)]
    if existing:
        raise UsageError(
            "refusing to overwrite a signing key",
            expected=f"no {PRIVATE_KEY_NAME} or {PUBLIC_KEY_NAME} in {out_dir}",
            found="already there: " + ", ".join(str(p) for p in existing),
            fix="choose another --out folder; results signed with the existing key only verify with it",
        )
    try:
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the key folder {out_dir}", expected="a writable folder",
                         found=exc.strerror or str(exc), fix="choose another --out folder") from None
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
    public_pem = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    _create_exclusive(private_path, private_pem, 0o600)
    try:
        _create_exclusive(public_path, public_pem, 0o644)
    except BaseException:
        # Half a pair is worse than none: the private half would have no published counterpart.
        private_path.unlink(missing_ok=True)
        raise
    return KeyPair(private_path, public_path, key_id(private_key))


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    try:
        # O_EXCL: a file that appeared since the check above is not overwritten either.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        raise UsageError("refusing to overwrite a signing key", expected=f"no {path.name} in {path.parent}",
                         found=f"{path} appeared while the key was being written",
                         fix="choose another --out folder") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}", expected="a writable folder", found=exc.strerror or str(exc),
                         fix="choose another --out folder") from None
    try:
        os.fchmod(fd, mode)  # the umask can only narrow the mode; this makes it exact
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path, what: str) -> tuple[bytes, os.stat_result]:
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"the {what} is not a regular file", expected=f"a PEM file ({what})",
                             found=f"{path}: {stat.filemode(info.st_mode)}", fix="pass the key file itself")
        if info.st_size > KEY_FILE_CAP:
            raise UsageError(f"the {what} is not a key", expected="an Ed25519 PEM file (under 1 kB)",
                             found=f"{path}: {info.st_size} bytes", fix="pass the file `aecc keys init` wrote")
        with open(path, "rb") as fh:
            return fh.read(KEY_FILE_CAP + 1), info
    except FileNotFoundError:
        raise UsageError(f"the {what} does not exist", expected=f"a PEM file at {path}", found="no such file",
                         fix="create a pair with `aecc keys init --out DIR`, or give the right path") from None
    except OSError as exc:
        raise UsageError(f"the {what} cannot be read", expected=f"a readable PEM file at {path}",
                         found=exc.strerror or str(exc), fix="check the path and its permissions") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 signing key from a PKCS#8 PEM file that only its owner can read (mode 0600 or
    narrower). Every refusal is a UsageError; none quotes the file's content."""
    path = Path(path)
    data, info = _read_key_file(path, "signing key")
    loose = stat.S_IMODE(info.st_mode) & 0o177
    if loose:
        raise UsageError(
            "the signing key file is readable or writable by others",
            expected="mode 0600 (or narrower): only its owner may read it",
            found=f"{path}: mode {stat.S_IMODE(info.st_mode):04o}",
            fix=f"chmod 600 {path}",
        )
    if b"PRIVATE KEY" not in data:
        hint = " (this is a public key)" if b"PUBLIC KEY" in data else ""
        raise UsageError(f"the signing key is not a private key{hint}",
                         expected="an Ed25519 private key, PEM PKCS#8 (-----BEGIN PRIVATE KEY-----)",
                         found=f"{path}: no PEM private key block",
                         fix="pass the signing.key that `aecc keys init` wrote")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UsageError("the signing key is encrypted", expected="an unencrypted Ed25519 PEM key, mode 0600",
                         found=f"{path}: a password-protected key",
                         fix="decrypt it to a 0600 file (openssl pkey -in KEY -out PLAIN) or make a new pair "
                             "with `aecc keys init`") from None
    except (ValueError, binascii.Error):
        raise UsageError("the signing key cannot be parsed", expected="an Ed25519 private key, PEM PKCS#8",
                         found=f"{path}: not a readable PEM key",
                         fix="pass the signing.key that `aecc keys init` wrote") from None
    except Exception as exc:  # cryptography's unsupported-algorithm errors have no common base
        raise UsageError("the signing key cannot be parsed", expected="an Ed25519 private key, PEM PKCS#8",
                         found=f"{path}: {type(exc).__name__}",
                         fix="pass the signing.key that `aecc keys init` wrote") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError("the signing key is not an Ed25519 key", expected="an Ed25519 private key",
                         found=f"{path}: {type(key).__name__.lstrip('_')}",
                         fix="make an Ed25519 pair with `aecc keys init --out DIR`")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 verification key from a SubjectPublicKeyInfo PEM file."""
    path = Path(path)
    data, _ = _read_key_file(path, "public key")
    if b"PRIVATE KEY" in data:
        raise UsageError("this is a private key, not a public key", expected="the public key (signing.pub)",
                         found=f"{path}: a PEM private key block",
                         fix="pass signing.pub; never hand the private key to a verifier")
    try:
        key = serialization.load_pem_public_key(data)
    except Exception:  # ValueError for bad PEM, UnsupportedAlgorithm for odd keys
        raise UsageError("the public key cannot be parsed", expected="an Ed25519 public key, PEM SubjectPublicKeyInfo "
                         "(-----BEGIN PUBLIC KEY-----)", found=f"{path}: not a readable PEM public key",
                         fix="pass the signing.pub published with the results") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError("the public key is not an Ed25519 key", expected="an Ed25519 public key",
                         found=f"{path}: {type(key).__name__.lstrip('_')}",
                         fix="pass the signing.pub published with the results")
    return key


# ------------------------------------------------------------------------------------------ signing


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
        _fsync_dir(history)
    write_atomic(target, data)
    return target


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sign_and_write(result_dir: Path, result: dict, private_key: Ed25519PrivateKey, *, zip_sha256: str,
                   image_digest: str | None) -> Path:
    """`sign_result` then `write_envelope`: the one call the scoring run needs per result."""
    return write_envelope(result_dir, sign_result(result, private_key, zip_sha256=zip_sha256,
                                                  image_digest=image_digest))


# ------------------------------------------------------------------------------------------- verify


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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
                actual = _sha256_file(zip_at_hand)
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
    except _Refused as refused:
        found.update(refused.found)
        return VerifyOutcome(path, False, refused.problem, refused.message, key_id=found.get("key_id"),
                             subject=found.get("subject"))
    return VerifyOutcome(path, True, None, f"signed by {signer} for submission {subject[ZIP_SUBJECT]['sha256']}",
                         key_id=signer, result=predicate, subject=subject)


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


# --------------------------------------------------------------------------------------- key leaks


_SCAN_CHUNK = 1 << 20
_MAX_DEPTH = 4


def _needles(private_key_pem: bytes) -> list[bytes]:
    """Every form the key could leak in: the PEM body (joined, and each long line), its DER, and the
    raw 32-byte private key as bytes, hex and base64 (a JWK's `d`)."""
    lines = [ln.strip() for ln in private_key_pem.splitlines()]
    body_lines = [ln for ln in lines if ln and not ln.startswith(b"-----")]
    needles = {b"".join(body_lines)} | {ln for ln in body_lines if len(ln) >= 40}
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        needles.add(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        if isinstance(key, Ed25519PrivateKey):
            raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
            needles |= {raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw).rstrip(b"="),
                        base64.urlsafe_b64encode(raw).rstrip(b"=")}
    except Exception:  # not parseable: the PEM body is still worth finding
        pass
    needles.discard(b"")
    if not needles:
        raise UsageError("no key material to search for", expected="a PEM private key",
                         found="no PEM body", fix="pass the content of signing.key")
    return sorted(needles, key=len)


class _Watch:
    """A read-only stream that looks for the needles in every byte passing through it, so that one
    pass both feeds an archive parser and searches the raw bytes (a layer is read once, never held)."""

    def __init__(self, stream: Any, needles: list[bytes]) -> None:
        self._stream = stream
        self._needles = needles
        self._overlap = max(len(n) for n in needles) - 1
        self._tail = b""
        self._pushback = b""
        self.found = False

    def _see(self, data: bytes) -> None:
        if not self.found and data:
            window = self._tail + data
            self.found = any(n in window for n in self._needles)
            self._tail = window[-self._overlap:] if self._overlap else b""

    def read(self, size: int | None = -1) -> bytes:
        if self._pushback:
            n = len(self._pushback) if size is None or size < 0 else min(size, len(self._pushback))
            data, self._pushback = self._pushback[:n], self._pushback[n:]
            return data
        data = self._stream.read(_SCAN_CHUNK if size is None or size < 0 else size)
        self._see(data)
        return data

    def peek(self, size: int) -> bytes:
        head = b""
        while len(head) < size:
            data = self.read(size - len(head))
            if not data:
                break
            head += data
        self._pushback = head + self._pushback
        return head

    def drain(self) -> None:
        try:
            while self.read(_SCAN_CHUNK):
                pass
        except (OSError, EOFError, zlib.error, tarfile.TarError):
            pass  # a cut or corrupt archive: what was read so far was searched


def _scan(stream: Any, label: str, needles: list[bytes], depth: int) -> list[str]:
    """Where in `stream` the key is: the innermost archive members holding it, else `label` itself."""
    watch = _Watch(stream, needles)
    head = watch.peek(512)
    inner: list[str] = []
    if depth < _MAX_DEPTH:
        try:
            if head[:2] == b"\x1f\x8b":
                inner = _scan(gzip.GzipFile(fileobj=watch, mode="rb"), label, needles, depth + 1)
            elif len(head) >= 262 and head[257:262] == b"ustar":
                # Stream mode: members in order, nothing sought back, nothing held in memory.
                with tarfile.open(fileobj=watch, mode="r|") as archive:
                    for member in archive:
                        content = archive.extractfile(member) if member.isfile() else None
                        if content is not None:
                            inner += _scan(content, f"{label}!/{member.name}", needles, depth + 1)
        except (OSError, EOFError, zlib.error, tarfile.TarError):
            pass  # not the archive it looked like, or corrupt: the raw bytes are still searched
    watch.drain()
    return inner or ([label] if watch.found else [])


def find_secret(paths: Iterable[Path], private_key_pem: bytes) -> list[Path]:
    """Every file under `paths` that holds the private key, in any of its forms (`_needles`).

    Folders are walked without following links. Tar files (a `docker save` image, its layer tars) and
    gzip files (compressed layers) are opened, nested up to four deep, and a hit inside one is named
    `ARCHIVE!/MEMBER[!/MEMBER...]`, a path that names a member, not a file on disk. zstd-compressed
    layers are not opened (save images uncompressed to search them)."""
    needles = _needles(private_key_pem)
    hits: list[Path] = []
    for given in paths:
        given = Path(given)
        if given.is_dir() and not given.is_symlink():
            files: Iterable[Path] = (Path(d, f) for d, dirnames, names in sorted(os.walk(given)) for f in sorted(names))
        else:
            files = [given]
        for file in files:
            try:
                if not stat.S_ISREG(file.lstat().st_mode):
                    continue
                with open(file, "rb") as fh:
                    hits += [Path(h) for h in _scan(fh, str(file), needles, 0)]
            except OSError:
                continue
    return hits

"""The organizer's Ed25519 key pair: made once, read from disk, never shown.

Signing is only worth something while the private key stays on the host, so everything that
touches a key file is here and nowhere else: `generate_keypair` writes a pair without ever
overwriting one (a published key cannot be lost by a typo), `load_private_key` refuses a file
that anyone but its owner can read, and no message quotes key material. The key id, the sha256
hex of the public key's DER SubjectPublicKeyInfo, is what envelopes and reports name a key by:
`openssl pkey -pubin -in signing.pub -outform DER | sha256sum` gives the same string.
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from harness.errors import UsageError

PRIVATE_KEY_NAME = "signing.key"
PUBLIC_KEY_NAME = "signing.pub"
SIGNING_KEY_ENV = "AECC_SIGNING_KEY"
#: a key file is under 200 bytes
KEY_FILE_CAP = 64 * 1024


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


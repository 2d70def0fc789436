"""Inbox: the paths an organizer hands to `aecc score` become arrivals, one per submission.

Submissions come by e-mail: one ZIP and one PDF technical report (at most 6 pages, the rules say)
per mail. Organizers save them however their client does, so `read_inbox` accepts any mix of ZIP
files, folders of ZIPs, `.eml` files, mbox files, Maildirs and plain submission folders, and returns
every usable submission as an `Arrival` and every mail it cannot use as an `Unusable`, with a stable
reason. Deduplication by sha256 and "latest per sender" are the batch runner's decisions; this
module only supplies the data (sender, date, subject, Message-ID, hashes, the report's page count).

Policy:

* **Nothing in a mail is trusted, nothing is extracted.** Attachments are only decoded, hashed and
  saved as bytes, content-addressed (`attachments_dir/<sha256>.zip|.pdf`, written to a temporary
  file and renamed, mode 0644); ZIPs are opened later by `harness.stages.intake`, never here. The
  one parser run on attachment content is pypdf, to count the report's pages. Names, subjects and
  senders are kept raw in the fields and shown escaped (`escape_name`) in every `detail` and
  warning, so ANSI and bidi characters never reach a terminal.
* **What is an attachment.** Every leaf of the MIME tree, at any depth, forwarded messages
  (message/rfc822) included. A ZIP by its file name (`.zip`), then its content type
  (application/zip and its x- variants), then the `PK\\x03\\x04` magic on a generic
  (application/octet-stream-like) part whose name is not a known ZIP-based document (`.docx`,
  `.npz`, `.pt`...: those are ZIP files too, but never the submission). A PDF likewise (`.pdf`,
  application/pdf, `%PDF-`). Identical bytes attached twice are one attachment.
* **A mail is unusable** with no ZIP, with two distinct ZIPs, with broken MIME, with an attachment
  over `max_attachment_bytes`, or when it cannot be read; it is listed, never raised. The report is
  not a reason to refuse: a missing, unreadable or over-long report, or several PDFs (the first is
  kept), is a warning on the arrival.
* **Broken MIME** means the parts we see may not be the parts the sender attached, so a ZIP could be
  missing or cut short: a multipart without a boundary, whose boundary never appears, or without
  its closing boundary (a truncated mail), or a ZIP/PDF attachment that cannot be decoded exactly
  (base64 with characters outside the alphabet or an impossible length, an unknown transfer
  encoding), anywhere in the tree, forwarded messages included. An undecodable generic part (one
  only its magic could have made the ZIP) is fatal only if no ZIP is found; else it is a warning.
  Header oddities (undecodable bytes, a misplaced envelope line, a bad address or date), whitespace
  inside base64 and missing base64 padding lose no data and are accepted; bad padding is a warning.
  We decode base64 ourselves because the standard library silently drops invalid characters and,
  for an impossible length, returns the still-encoded text as if it were the content.
* **Paths.** A `.zip` file is a ZIP arrival; `.eml` is one mail; `.mbox`, or a file whose first line
  is an mbox envelope line ("From <sender> <date>"; for a file named explicitly, any "From " line),
  is many mails; a file named explicitly that starts with the ZIP magic is a ZIP; a folder with
  `cur/` and `new/` is a Maildir (read only: messages are never moved; `tmp/` may be missing, as it
  often is in copies); a folder holding any of those at its top level is an inbox folder (read
  non-recursively, by name; other entries and dot-files are ignored); any other folder, and any
  folder with top-level `.py` files or an `aecc.json` (a submission that ships a weights ZIP stays a
  submission), is one submission. A missing or unreadable path, or a file of no known kind named
  explicitly, is a `UsageError` before any work.
* **IMAP folders.** An address `imaps://USER@HOST[:PORT]/FOLDER` (or `imap://`, STARTTLS) is read
  through the `remote` reader `read_inbox` is given (`harness.mailbox.imap` via `harness.bulk.mail_source`):
  each mail's bytes go through the same parser as a file's, so a mail gives the same arrival from
  IMAP as from an mbox; `received` is the server's time (INTERNALDATE). A mail whose parts are over
  the cap by its BODYSTRUCTURE arrives without its body and is `too_large`; a mail the server
  received after `deadline` is `late` (or, with `accept_late`, an arrival with a warning).
* **Who may be answered.** Every mail carries `no_reply`: why an automatic answer must not be sent
  to it (RFC 3834 `Auto-Submitted`, `Precedence: bulk|list|junk`, a mailing list, an autoresponder's
  own headers, a mailer-daemon or no-reply sender, a bounce, a reply to one of our answers, a From
  the receiving server's top `Authentication-Results` says failed DMARC, or no sender address),
  else None; and `references`, the thread an answer continues.
* **Dates** are UTC ISO 8601 (`2025-03-04T09:30:00Z`): from the Date header for mail (None when
  absent or unparseable), from the file's mtime otherwise. Arrivals and unusables are sorted by date
  (None last), then by source, so a resend comes after the first send.
"""

from __future__ import annotations

import binascii
import contextlib
import dataclasses
import datetime as _dt
import email.errors
import email.header
import email.message
import email.parser
import email.policy
import email.utils
import enum
import hashlib
import io
import logging
import mailbox
import os
import quopri
import re
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.errors import InfraError, UsageError
from harness.mailbox.config import REPLY_ID_PREFIX
from harness.safeio import sha256_file, write_atomic
from harness.stages.rejection import escape_name, scrub

__all__ = ["MAX_REPORT_PAGES", "REPLY_ID_PREFIX", "Arrival", "ArrivalKind", "Inbox", "RemoteReader", "Report",
           "Unusable", "UnusableReason", "read_inbox"]

MiB = 1024 * 1024
MAX_REPORT_PAGES = 6  # the challenge rules: a technical report of at most 6 pages
MAX_ATTACHMENT_BYTES = 4 * 1024**3
# A mail is base64 (4/3 of its attachments) plus text: one far beyond that cannot hold an attachment
# within the cap, and is refused before the parser holds it in memory several times over.
_MAIL_SLACK = 64 * MiB
# Multiparts within multiparts and forwarded messages: a real mail is a few levels deep, even
# forwarded twice; hundreds of levels is a parser attack.
_MAX_NESTING = 32
_ZIP_MAGIC = b"PK\x03\x04"
_PDF_MAGIC = b"%PDF-"
_ZIP_TYPES = frozenset({"application/zip", "application/x-zip", "application/x-zip-compressed",
                        "application/zip-compressed"})
_PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
# What mail clients call a file they know nothing about: only these are sniffed for magic bytes.
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", "application/binary",
                            "application/x-download", "application/download",
                            "application/force-download", "application/unknown"})
# ZIP-based formats a participant may attach next to the submission (Office/OpenDocument reports,
# NumPy and PyTorch files, Java/Python packages): ZIP magic, never the submission.
_ZIP_DOCUMENT_SUFFIXES = frozenset({".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".epub",
                                    ".key", ".pages", ".numbers", ".npz", ".pt", ".pth", ".ckpt",
                                    ".jar", ".whl", ".apk", ".xpi", ".kmz"})
_B64_INVALID = re.compile(rb"[^A-Za-z0-9+/]")
_B64_SPACE = re.compile(rb"[ \t\r\n\v\f]+")
# An mbox starts with an envelope line "From <sender> <asctime date>". Inside a folder that might be
# a submission, the file must look like one (a README starting "From the paper..." does not).
_MBOX_FROM = re.compile(rb"From \S+ +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +[A-Z][a-z]{2} +\d{1,2} +\d")
_SUBMISSION_MARKERS = ("aecc.json",)
_NO_REPLY_LOCALS = frozenset({"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply",
                              "bounce", "bounces", "auto-reply", "autoreply", "daemon", "listserv", "majordomo"})
_AUTORESPONDER_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "X-Vacation",
                          "X-Autogenerated", "X-AutoReply-From", "X-Mail-Autoreply")
#: (address, max attachment bytes, max mail bytes) -> the folder's mails (harness.mailbox.imap.RemoteMail)
RemoteReader = Callable[[str, int, int], Iterable[Any]]


class ArrivalKind(str, enum.Enum):
    """Where an arrival's submission bytes are."""

    ZIP = "zip"  # a ZIP file the organizer saved
    FOLDER = "folder"  # a submission folder
    MAIL = "mail"  # a ZIP attached to a mail, saved under attachments_dir


class UnusableReason(str, enum.Enum):
    """Stable ids for why a mail (or saved file) yields no submission."""

    NO_ZIP = "no_zip"
    SEVERAL_ZIPS = "several_zips"
    BROKEN_MIME = "broken_mime"
    UNREADABLE = "unreadable"
    TOO_LARGE = "too_large"
    LATE = "late"  # the server received it after the deadline (IMAP's INTERNALDATE)


class _Kind(enum.Enum):
    """What a path on disk holds."""

    ZIP = "zip"
    EML = "eml"
    MBOX = "mbox"
    MAILDIR = "maildir"
    INBOX_FOLDER = "inbox_folder"
    SUBMISSION_FOLDER = "submission_folder"
    IMAP = "imap"  # a server folder, read through the remote reader


class _Part(enum.Enum):
    """What a MIME leaf is to us."""

    ZIP = "zip"
    PDF = "pdf"
    GENERIC = "generic"  # decided by its magic bytes


@dataclasses.dataclass(frozen=True)
class Report:
    """The PDF technical report attached to a mail (the first one, if several)."""

    file_name: str  # raw, untrusted
    sha256: str
    pages: int | None  # None when pypdf cannot read it; `problem` says why
    path: Path | None  # attachments_dir/<sha256>.pdf
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"file_name": self.file_name, "sha256": self.sha256, "pages": self.pages,
                "path": str(self.path) if self.path is not None else None, "problem": self.problem}


@dataclasses.dataclass(frozen=True)
class Arrival:
    """One submission as it arrived: the ZIP (or folder) and what the mail said about it."""

    source: str  # the path; for mail "<mailbox path>#<key>"
    kind: ArrivalKind
    path: Path  # the ZIP (for mail: attachments_dir/<sha256>.zip) or the folder
    file_name: str  # the ZIP's own name; for mail the attachment's, raw and untrusted
    sha256: str | None  # of the ZIP bytes, as intake computes it; None for a folder
    sender: str | None = None  # display name, raw
    sender_address: str | None = None
    date: str | None = None  # UTC ISO 8601
    subject: str | None = None
    message_id: str | None = None
    report: Report | None = None
    warnings: tuple[str, ...] = ()  # already escaped
    # What the mail loop needs to answer; not what the arrival is (equality ignores them).
    received: str | None = dataclasses.field(default=None, compare=False)  # the IMAP server's time, UTC
    no_reply: str | None = dataclasses.field(default=None, compare=False)  # why no answer may be sent to it
    references: str | None = dataclasses.field(default=None, compare=False)  # an answer's References

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ArrivalKind(self.kind))
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise TypeError(f"sha256 must be 64 lowercase hex digits, not {self.sha256!r}")
        if (self.sha256 is None) != (self.kind is ArrivalKind.FOLDER):
            raise TypeError("sha256 is None exactly for a folder")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind.value, "path": str(self.path),
                "file_name": self.file_name, "sha256": self.sha256, "sender": self.sender,
                "sender_address": self.sender_address, "date": self.date, "subject": self.subject,
                "message_id": self.message_id,
                "report": self.report.to_dict() if self.report is not None else None,
                "warnings": list(self.warnings), "received": self.received, "no_reply": self.no_reply,
                "references": self.references}


@dataclasses.dataclass(frozen=True)
class Unusable:
    """A mail (or saved file) that yields no submission, and why."""

    source: str
    reason: UnusableReason
    detail: str  # already escaped
    sender: str | None = None
    sender_address: str | None = None
    date: str | None = None
    subject: str | None = None
    message_id: str | None = None
    received: str | None = dataclasses.field(default=None, compare=False)
    no_reply: str | None = dataclasses.field(default=None, compare=False)
    references: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", UnusableReason(self.reason))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason.value, "detail": self.detail,
                "sender": self.sender, "sender_address": self.sender_address, "date": self.date,
                "subject": self.subject, "message_id": self.message_id, "received": self.received,
                "no_reply": self.no_reply, "references": self.references}


@dataclasses.dataclass(frozen=True)
class Inbox:
    arrivals: tuple[Arrival, ...]
    unusable: tuple[Unusable, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"arrivals": [a.to_dict() for a in self.arrivals],
                "unusable": [u.to_dict() for u in self.unusable]}


# ------------------------------------------------------------------------------------ entry point

def read_inbox(paths: Sequence[Path | str], attachments_dir: Path, *,
               max_attachment_bytes: int = MAX_ATTACHMENT_BYTES, remote: RemoteReader | None = None,
               deadline: str | None = None, accept_late: bool = False) -> Inbox:
    """Every submission found under `paths` (and IMAP addresses, read by `remote`), and every mail
    that holds none.

    Raises `UsageError` (before reading any mail) for a path that does not exist, cannot be read, or
    is a file of no known kind, and for an `attachments_dir` that cannot be written; `InfraError`
    when saving an attachment fails (a full disk is not the participant's fault).
    """
    if isinstance(max_attachment_bytes, bool) or not isinstance(max_attachment_bytes, int) \
            or max_attachment_bytes < 1:
        raise UsageError("max_attachment_bytes must be a positive integer", found=repr(max_attachment_bytes))
    sources = _plan(paths)
    if remote is None and any(kind is _Kind.IMAP for kind, _ in sources):
        raise UsageError("an IMAP address needs the mail loop", expected="read_inbox(..., remote=...)",
                         found="no remote reader", fix="call it through harness.bulk.mail_source.read_inbox")
    reader = _Reader(Path(attachments_dir), max_attachment_bytes, remote, deadline, accept_late)
    if any(kind in (_Kind.EML, _Kind.MBOX, _Kind.MAILDIR, _Kind.IMAP) for kind, _ in sources):
        reader.prepare_attachments_dir()
    items: list[tuple[tuple[Any, ...], Arrival | Unusable]] = []
    for kind, path in sources:
        items.extend(reader.read(kind, path))
    items.sort(key=lambda item: item[0])
    return Inbox(arrivals=tuple(i for _, i in items if isinstance(i, Arrival)),
                 unusable=tuple(i for _, i in items if isinstance(i, Unusable)))


# ------------------------------------------------------------------------------ paths: what is what

_EXPECTED_PATH = ("a .zip file, a .eml file, an mbox file (.mbox, or starting with a 'From ' line), "
                  "a Maildir (cur/ and new/), a folder of those, or a submission folder")


def _plan(paths: Sequence[Path | str]) -> list[tuple[_Kind, Any]]:
    """Classify every path (and the top level of inbox folders) before anything is read."""
    from harness.mailbox.config import is_mail_url, parse_url

    if isinstance(paths, (str, Path)):
        raise UsageError("read_inbox takes a sequence of paths", found=repr(paths))
    plan: list[tuple[_Kind, Any]] = []
    seen: set[str] = set()

    def add(kind: _Kind, path: Path) -> None:
        key = os.path.realpath(path)  # the same mailbox named twice is read once
        if key not in seen:
            seen.add(key)
            plan.append((kind, path))

    for raw in paths:
        if is_mail_url(raw):
            url = parse_url(str(raw), imap=True)  # a malformed address fails before any work
            if url.text not in seen:
                seen.add(url.text)
                plan.append((_Kind.IMAP, url.text))
            continue
        path = Path(raw)
        _require_readable(path)
        kind = _classify(path, explicit=True)
        if kind is None:
            raise UsageError(f"{path} is not an inbox or a submission", expected=_EXPECTED_PATH,
                             found=f"a file of unknown kind: {escape_name(path.name)}",
                             fix="pass the .zip or the mail file itself, or the folder holding them")
        if kind is _Kind.INBOX_FOLDER:
            for entry in _listing(path):
                entry_kind = _classify(entry, explicit=False)
                if entry_kind in (_Kind.ZIP, _Kind.EML, _Kind.MBOX, _Kind.MAILDIR):
                    _require_readable(entry)
                    add(entry_kind, entry)
        else:
            add(kind, path)
    return plan


def _require_readable(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist", expected=_EXPECTED_PATH, found="no such file or folder",
                         fix="check the path (a typo, or a mount that is not there)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}", expected="a readable path", found=exc.strerror or str(exc),
                         fix="check its permissions") from None
    need = os.R_OK | os.X_OK if stat.S_ISDIR(st.st_mode) else os.R_OK
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise UsageError(f"{path} is neither a file nor a folder", expected=_EXPECTED_PATH,
                         found=stat.filemode(st.st_mode), fix="pass regular files and folders only")
    if not os.access(path, need):
        raise UsageError(f"cannot read {path}", expected="a readable path", found="permission denied",
                         fix="check its permissions (folders need r and x)")
    if stat.S_ISDIR(st.st_mode):
        try:
            os.listdir(path)
        except OSError as exc:
            raise UsageError(f"cannot read {path}", expected="a readable folder",
                             found=exc.strerror or str(exc), fix="check its permissions") from None


def _listing(folder: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise UsageError(f"cannot read {folder}", expected="a readable folder",
                         found=exc.strerror or str(exc), fix="check its permissions") from None
    # Dot-files are editor backups, Finder metadata (._x.zip is not a ZIP) and Maildir internals.
    return [folder / name for name in names if not name.startswith(".")]


def _classify(path: Path, *, explicit: bool) -> _Kind | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # an entry of an inbox folder that vanished or dangles: not ours to read
    suffix = path.suffix.lower()
    if stat.S_ISDIR(st.st_mode):
        if _is_maildir(path):
            return _Kind.MAILDIR
        if not explicit:
            return None  # inbox folders are read one level deep
        entries = _listing(path)
        if any(e.suffix == ".py" or e.name in _SUBMISSION_MARKERS for e in entries):
            return _Kind.SUBMISSION_FOLDER
        if any(_classify(e, explicit=False) is not None for e in entries):
            return _Kind.INBOX_FOLDER
        return _Kind.SUBMISSION_FOLDER
    if not stat.S_ISREG(st.st_mode):
        return None
    if suffix == ".zip":
        return _Kind.ZIP
    if suffix == ".eml":
        return _Kind.EML
    if suffix == ".mbox":
        return _Kind.MBOX
    head = _head(path)
    if explicit and head.startswith(b"From ") or _MBOX_FROM.match(head):
        return _Kind.MBOX
    if explicit and head.startswith(_ZIP_MAGIC):
        return _Kind.ZIP  # the operator named it: a ZIP saved without its extension
    return None


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _head(path: Path, size: int = 256) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, size)
    except OSError:
        return b""
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------ the reader

@dataclasses.dataclass(frozen=True)
class _Headers:
    sender: str | None = None
    sender_address: str | None = None
    date: str | None = None
    subject: str | None = None
    message_id: str | None = None
    no_reply: str | None = None
    references: str | None = None

    def fields(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


class _Unusable(Exception):
    """Internal: this mail yields no submission (never escapes the module)."""

    def __init__(self, reason: UnusableReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class _Attachment:
    kind: _Part
    name: str | None  # raw
    data: bytes
    sha256: str
    origin: _Headers | None  # the forwarded message it sat in, if any
    warnings: tuple[str, ...]


def _sort_key(date: str | None, base: str, index: int, source: str) -> tuple[Any, ...]:
    return (date is None, date or "", base, index, source)


class _Reader:
    def __init__(self, attachments_dir: Path, max_bytes: int, remote: RemoteReader | None = None,
                 deadline: str | None = None, accept_late: bool = False) -> None:
        self.attachments_dir = attachments_dir
        self.max_bytes = max_bytes
        self.remote = remote
        self.deadline = deadline
        self.accept_late = accept_late
        self.saved: set[Path] = set()

    def prepare_attachments_dir(self) -> None:
        try:
            self.attachments_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the attachments folder {self.attachments_dir}",
                             found=exc.strerror or str(exc), fix="choose a writable --out folder") from None
        if not os.access(self.attachments_dir, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write to the attachments folder {self.attachments_dir}",
                             found="permission denied", fix="choose a writable --out folder")

    def read(self, kind: _Kind, path: Path) -> Iterator[tuple[tuple[Any, ...], Arrival | Unusable]]:
        if kind is _Kind.ZIP:
            yield self._zip_file(path)
        elif kind is _Kind.SUBMISSION_FOLDER:
            date = _mtime(path)
            yield _sort_key(date, str(path), 0, str(path)), Arrival(
                source=str(path), kind=ArrivalKind.FOLDER, path=path, file_name=path.name, sha256=None,
                date=date)
        elif kind is _Kind.EML:
            yield self._eml(path)
        elif kind is _Kind.IMAP:
            yield from self._imap(str(path))
        else:
            yield from self._mailbox(kind, path)

    # ------------------------------------------------------------------ files

    def _zip_file(self, path: Path) -> tuple[tuple[Any, ...], Arrival | Unusable]:
        source = str(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb") as fin:
                st = os.fstat(fin.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(0, "not a regular file")
                digest = sha256_file(fin)
        except OSError as exc:
            return _sort_key(None, source, 0, source), Unusable(
                source, UnusableReason.UNREADABLE, f"the file could not be read: {exc.strerror or exc}")
        date = _iso_timestamp(st.st_mtime)
        return _sort_key(date, source, 0, source), Arrival(
            source=source, kind=ArrivalKind.ZIP, path=path, file_name=path.name, sha256=digest,
            date=date)

    def _eml(self, path: Path) -> tuple[tuple[Any, ...], Arrival | Unusable]:
        source = str(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb") as fin:
                size = os.fstat(fin.fileno()).st_size
                if size > self._mail_cap():
                    return _sort_key(None, source, 0, source), self._mail_too_large(source, size)
                raw = fin.read()
        except OSError as exc:
            return _sort_key(None, source, 0, source), Unusable(
                source, UnusableReason.UNREADABLE, f"the mail could not be read: {exc.strerror or exc}")
        return self._mail(raw, source, source, 0)

    def _mailbox(self, kind: _Kind, path: Path) -> Iterator[tuple[tuple[Any, ...], Arrival | Unusable]]:
        base = str(path)
        box: mailbox.Mailbox
        try:
            # factory=None: raw bytes only; we parse them ourselves with the modern policy.
            if kind is _Kind.MBOX:
                box = mailbox.mbox(base, factory=None, create=False)
            else:
                box = mailbox.Maildir(base, factory=None, create=False)
        except (OSError, mailbox.Error) as exc:
            yield _sort_key(None, base, 0, base), Unusable(
                base, UnusableReason.UNREADABLE, f"the mailbox could not be opened: {exc}")
            return
        try:
            try:
                keys = list(box.iterkeys())
            except (OSError, mailbox.Error) as exc:
                yield _sort_key(None, base, 0, base), Unusable(
                    base, UnusableReason.UNREADABLE, f"the mailbox could not be read: {exc}")
                return
            if kind is _Kind.MAILDIR:
                keys.sort()  # Maildir's order is the directory's; make it stable
            for index, key in enumerate(keys):
                source = f"{base}#{key}"
                try:
                    raw = box.get_bytes(key)
                except (OSError, KeyError, mailbox.Error) as exc:
                    yield _sort_key(None, base, index, source), Unusable(
                        source, UnusableReason.UNREADABLE, f"the message could not be read: {exc}")
                    continue
                if len(raw) > self._mail_cap():
                    yield _sort_key(None, base, index, source), self._mail_too_large(source, len(raw))
                    continue
                yield self._mail(raw, source, base, index)
        finally:
            with contextlib.suppress(OSError):
                box.close()

    def _imap(self, address: str) -> Iterator[tuple[tuple[Any, ...], Arrival | Unusable]]:
        assert self.remote is not None  # read_inbox checked
        for index, remote in enumerate(self.remote(address, self.max_bytes, self._mail_cap())):
            if remote.raw is None:
                try:
                    headers = _headers_of(email.parser.BytesParser(policy=email.policy.default).parsebytes(
                        remote.header, headersonly=True))
                except Exception:  # noqa: BLE001  the sender's header: none is an answer
                    headers = _Headers()
                yield _sort_key(headers.date, address, index, remote.source), Unusable(
                    remote.source, UnusableReason.TOO_LARGE, scrub(remote.refused),
                    received=remote.received, **headers.fields())
                continue
            key, item = self._mail(remote.raw, remote.source, address, index)
            item = dataclasses.replace(item, received=remote.received)
            late = (self.deadline is not None and remote.received is not None
                    and remote.received > _iso_deadline(self.deadline))
            if late and isinstance(item, Arrival) and self.accept_late:
                item = dataclasses.replace(item, warnings=item.warnings + (
                    f"arrived late: the server received it at {remote.received}, after the deadline "
                    f"{_iso_deadline(self.deadline)} (accepted: --accept-late)",))
            elif late:
                fields = {k: getattr(item, k) for k in ("sender", "sender_address", "date", "subject", "message_id",
                                                         "received", "no_reply", "references")}
                item = Unusable(remote.source, UnusableReason.LATE,
                                f"the server received it at {remote.received}, after the deadline "
                                f"{_iso_deadline(self.deadline)}", **fields)
            yield key, item

    def _mail_cap(self) -> int:
        # the attachment in base64 (4/3) with its line breaks (2 per 76 characters), and the rest
        return -(-self.max_bytes // 3) * 4 + self.max_bytes // 20 + _MAIL_SLACK

    def _mail_too_large(self, source: str, size: int) -> Unusable:
        return Unusable(source, UnusableReason.TOO_LARGE,
                        f"the mail is {size} bytes: too large to hold an attachment of at most "
                        f"{self.max_bytes} bytes")

    # ------------------------------------------------------------------ one mail

    def _mail(self, raw: bytes, source: str, base: str, index: int
              ) -> tuple[tuple[Any, ...], Arrival | Unusable]:
        headers = _Headers()
        try:
            msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
            headers = _headers_of(msg)
            arrival = self._arrival(msg, source, headers)
        except _Unusable as exc:
            return _sort_key(headers.date, base, index, source), Unusable(
                source, exc.reason, exc.detail, **headers.fields())
        except RecursionError:
            return _sort_key(headers.date, base, index, source), Unusable(
                source, UnusableReason.BROKEN_MIME, "the MIME tree is nested too deeply to read",
                **headers.fields())
        return _sort_key(headers.date, base, index, source), arrival

    def _arrival(self, msg: email.message.Message, source: str, headers: _Headers) -> Arrival:
        zips: dict[str, _Attachment] = {}
        pdfs: dict[str, _Attachment] = {}
        seen: list[str] = []  # every leaf, for a NO_ZIP detail that shows what was there instead
        # Generic parts we could not decode or that are over the cap: fatal only if no ZIP is found,
        # since one of them might have been it.
        doubtful: list[_Unusable] = []
        warnings_: list[str] = []
        for part, where, origin in _leaves(msg, "message", None, 0):
            name = _filename(part)
            ctype = _content_type(part)
            seen.append(f"{escape_name(name)} ({ctype})" if name is not None else ctype)
            kind = _part_kind(name, ctype)
            if kind is None:
                continue
            label = f"attachment {escape_name(name)}" if name is not None else f"the {ctype} part at {where}"
            try:
                data, notes = self._decode(part, label)
            except _Unusable as exc:
                if kind is _Part.GENERIC:
                    doubtful.append(exc)
                    continue
                raise
            if kind is _Part.GENERIC:
                kind = _Part.ZIP if data.startswith(_ZIP_MAGIC) else \
                    _Part.PDF if data.startswith(_PDF_MAGIC) else None
                if kind is None:
                    continue
            sha = hashlib.sha256(data).hexdigest()
            found = zips if kind is _Part.ZIP else pdfs
            if sha not in found:
                found[sha] = _Attachment(kind, name, data, sha, origin, notes)
        if not zips and doubtful:
            raise _Unusable(doubtful[0].reason, f"no ZIP attachment was found, and {doubtful[0].detail}")
        if not zips:
            what = ", ".join(seen[:8]) + (f" and {len(seen) - 8} more" if len(seen) > 8 else "")
            raise _Unusable(UnusableReason.NO_ZIP, f"the mail has no ZIP attachment (parts: {what})")
        if len(zips) > 1:
            listed = ", ".join(f"{_label(a)} (sha256 {a.sha256[:12]})" for a in zips.values())
            raise _Unusable(UnusableReason.SEVERAL_ZIPS,
                            f"the mail has {len(zips)} different ZIP attachments: {listed}; "
                            "the participant must send exactly one")
        (zip_att,) = zips.values()
        warnings_.extend(zip_att.warnings)
        warnings_.extend(f"ignored a part that could not be read: {d.detail}" for d in doubtful)
        if zip_att.origin is not None and zip_att.origin.sender_address != headers.sender_address:
            warnings_.append(
                f"the ZIP is inside a forwarded message from "
                f"{escape_name(_who(zip_att.origin))} dated {zip_att.origin.date or 'unknown'}: "
                "sender and date are the forwarding mail's")
        zip_path = self._save(zip_att.data, zip_att.sha256, ".zip")
        report = None
        if not pdfs:
            warnings_.append("no PDF report attached")
        else:
            first = next(iter(pdfs.values()))
            warnings_.extend(first.warnings)
            pages, problem = _count_pages(first.data)
            report = Report(file_name=first.name if first.name is not None else f"{first.sha256}.pdf",
                            sha256=first.sha256, pages=pages,
                            path=self._save(first.data, first.sha256, ".pdf"), problem=problem)
            if len(pdfs) > 1:
                warnings_.append(f"{len(pdfs)} PDF reports attached: "
                                 f"{', '.join(_label(a) for a in pdfs.values())} (the first is kept)")
            if pages is None:
                warnings_.append(f"report {_label(first)} could not be read: {problem}")
            elif pages > MAX_REPORT_PAGES:
                warnings_.append(f"report has {pages} pages (the rules allow {MAX_REPORT_PAGES})")
            elif pages == 0:
                warnings_.append("report has no pages")
        return Arrival(source=source, kind=ArrivalKind.MAIL, path=zip_path,
                       file_name=zip_att.name if zip_att.name is not None else f"{zip_att.sha256}.zip",
                       sha256=zip_att.sha256, report=report, warnings=tuple(warnings_), **headers.fields())

    def _decode(self, part: email.message.Message, label: str) -> tuple[bytes, tuple[str, ...]]:
        """The exact bytes of a leaf part, or `_Unusable` when they cannot be known."""
        payload = part.get_payload()
        if not isinstance(payload, str):
            raise _Unusable(UnusableReason.BROKEN_MIME, f"{label} has no content")
        cte = (_header(part, "Content-Transfer-Encoding") or "").lower()
        notes: tuple[str, ...] = ()
        if cte == "base64":
            # The encoded text gives the decoded size (3/4 of its data characters): refuse before
            # decoding; the exact size is checked again after.
            size = (len(payload) - sum(payload.count(c) for c in "\r\n \t=")) * 3 // 4
            if size > self.max_bytes:
                raise _Unusable(UnusableReason.TOO_LARGE, f"{label} is about {size} bytes, "
                                                          f"over the limit of {self.max_bytes}")
            data, notes = _b64decode(payload, label)
        elif cte in ("", "7bit", "8bit", "binary", "quoted-printable", "x-uuencode", "uuencode", "uue",
                     "x-uue"):
            # quoted-printable decoding cannot fail: a stray '=' is kept as is, by the RFC.
            try:
                data = part.get_payload(decode=True)
            except Exception as exc:  # noqa: BLE001  the standard library on untrusted input
                raise _Unusable(UnusableReason.BROKEN_MIME,
                                f"{label} could not be decoded ({type(exc).__name__})") from None
            if "uu" in cte and data == payload.encode("ascii", "surrogateescape"):
                # the standard library hands back the encoded text when uudecode fails
                raise _Unusable(UnusableReason.BROKEN_MIME, f"{label}: invalid uuencoded data")
        else:
            raise _Unusable(UnusableReason.BROKEN_MIME,
                            f"{label} uses the unknown transfer encoding {escape_name(cte)}")
        if not isinstance(data, bytes):
            raise _Unusable(UnusableReason.BROKEN_MIME, f"{label} could not be decoded")
        if len(data) > self.max_bytes:
            raise _Unusable(UnusableReason.TOO_LARGE,
                            f"{label} is {len(data)} bytes, over the limit of {self.max_bytes}")
        return data, notes

    # ------------------------------------------------------------------ saving

    def _save(self, data: bytes, sha: str, suffix: str) -> Path:
        """Write `data` as attachments_dir/<sha><suffix> unless an intact copy is already there."""
        dest = self.attachments_dir / f"{sha}{suffix}"
        if dest in self.saved or _holds(dest, sha):
            self.saved.add(dest)
            return dest
        try:
            write_atomic(dest, data, mode=0o644)  # readers see the whole file or none
        except OSError as exc:
            raise InfraError(f"cannot save an attachment to {self.attachments_dir}",
                             expected=f"{len(data)} bytes written to {dest.name}",
                             found=exc.strerror or str(exc),
                             fix="free disk space or fix the folder's permissions, then rerun") from None
        self.saved.add(dest)
        return dest


# ---------------------------------------------------------------------------------------- MIME

# Defects after which the parts we see may not be the parts that were sent (module docstring).
_BROKEN_DEFECTS: dict[type, str] = {
    email.errors.NoBoundaryInMultipartDefect: "a multipart part declares no boundary",
    email.errors.StartBoundaryNotFoundDefect: "a multipart boundary never appears in the body",
    email.errors.CloseBoundaryNotFoundDefect:
        "a multipart part has no closing boundary (the mail was probably cut short)",
    email.errors.MultipartInvariantViolationDefect: "a part claims to be multipart but has no parts",
}


def _leaves(msg: email.message.Message, where: str, origin: _Headers | None, depth: int
            ) -> Iterator[tuple[email.message.Message, str, _Headers | None]]:
    """Every leaf part with its position ("message/2/1") and the forwarded message it is in."""
    if depth > _MAX_NESTING:
        raise _Unusable(UnusableReason.BROKEN_MIME, f"messages nested more than {_MAX_NESTING} deep")
    for defect in msg.defects:
        for cls, text in _BROKEN_DEFECTS.items():
            if isinstance(defect, cls):
                raise _Unusable(UnusableReason.BROKEN_MIME, f"broken MIME structure: {text} (at {where})")
    if _content_type(msg) == "message/rfc822":
        inner = msg.get_payload()
        if isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], email.message.Message):
            inner_msg = _reencoded_message(msg, inner[0])
            yield from _leaves(inner_msg, f"{where}/forwarded", _headers_of(inner_msg), depth + 1)
            return
    if msg.is_multipart():
        payload = msg.get_payload()
        for i, sub in enumerate(payload if isinstance(payload, list) else (), start=1):
            if isinstance(sub, email.message.Message):
                yield from _leaves(sub, f"{where}/{i}", origin, depth + 1)
        return
    yield msg, where, origin


def _reencoded_message(part: email.message.Message, inner: email.message.Message) -> email.message.Message:
    """A forwarded message some clients base64-encode (RFC 2046 forbids it): parse its decoded text.

    The parser does not decode it and reads the base64 text as a message with no headers."""
    cte = (_header(part, "Content-Transfer-Encoding") or "").lower()
    body = inner.get_payload()
    if cte not in ("base64", "quoted-printable") or len(inner.keys()) or not isinstance(body, str):
        return inner
    if cte == "base64":
        data, _ = _b64decode(body, "a base64-encoded forwarded message")
    else:
        data = quopri.decodestring(body.encode("ascii", "surrogateescape"))
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(data)


def _b64decode(text: str, label: str) -> tuple[bytes, tuple[str, ...]]:
    raw = _B64_SPACE.sub(b"", text.encode("ascii", "replace"))  # a non-ASCII character becomes '?'
    body = raw.rstrip(b"=")
    bad = _B64_INVALID.search(body)
    if bad is not None:
        raise _Unusable(UnusableReason.BROKEN_MIME,
                        f"{label} has invalid base64 (a character outside the alphabet at "
                        f"encoded offset {bad.start()}): its bytes cannot be known")
    if len(raw) - len(body) > 2:
        raise _Unusable(UnusableReason.BROKEN_MIME,
                        f"{label} has invalid base64 ({len(raw) - len(body)} '=' at its end): "
                        "its bytes cannot be known")
    if len(body) % 4 == 1:
        raise _Unusable(UnusableReason.BROKEN_MIME,
                        f"{label} has truncated base64 ({len(body)} characters, one too "
                        "many for a whole byte): its bytes cannot be known")
    padding = -len(body) % 4
    notes: tuple[str, ...] = ()
    if len(raw) - len(body) != padding:
        notes = (f"{label}: base64 padding was wrong (decoded anyway)",)
    try:
        return binascii.a2b_base64(body + b"=" * padding, strict_mode=True), notes
    except binascii.Error as exc:
        raise _Unusable(UnusableReason.BROKEN_MIME, f"{label} has invalid base64: {exc}") from None


def _part_kind(name: str | None, ctype: str) -> _Part | None:
    suffix = _suffix(name)
    if suffix == ".zip":
        return _Part.ZIP
    if suffix == ".pdf":
        return _Part.PDF
    if ctype in _ZIP_TYPES:
        return _Part.ZIP
    if ctype in _PDF_TYPES:
        return _Part.PDF
    if ctype in _GENERIC_TYPES and suffix not in _ZIP_DOCUMENT_SUFFIXES:
        return _Part.GENERIC
    return None


def _suffix(name: str | None) -> str:
    if not name:
        return ""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 else ""


def _content_type(part: email.message.Message) -> str:
    try:
        return scrub(part.get_content_type())  # shown in details: the header is the sender's
    except Exception:  # noqa: BLE001  the header parser on untrusted input; RFC 2045's default
        return "text/plain"


def _filename(part: email.message.Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001  the header parser on untrusted input; no name is an answer
        return None
    return name if name else None


def _label(att: _Attachment) -> str:
    return escape_name(att.name) if att.name is not None else f"(unnamed, sha256 {att.sha256[:12]})"


def _who(h: _Headers) -> str:
    if h.sender and h.sender_address:
        return f"{h.sender} <{h.sender_address}>"
    return h.sender_address or h.sender or "an unknown sender"


# ------------------------------------------------------------------------------------- headers

def _headers_of(msg: email.message.Message) -> _Headers:
    sender, address = _sender(msg)
    message_id = _header(msg, "Message-ID")
    references = " ".join(x for x in (_header(msg, "References") or _header(msg, "In-Reply-To"), message_id) if x)
    return _Headers(sender=sender, sender_address=address, date=_date(_header(msg, "Date")),
                    subject=_header(msg, "Subject"), message_id=message_id,
                    no_reply=_no_reply(msg, address), references=references or None)


def _no_reply(msg: email.message.Message, address: str | None) -> str | None:
    """Why an automatic answer to this mail must not be sent (RFC 3834 section 2), or None."""
    auto = (_header(msg, "Auto-Submitted") or "").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"automatic mail (Auto-Submitted: {escape_name(auto)[:60]})"
    precedence = (_header(msg, "Precedence") or "").lower().strip()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return f"automatic mail (Precedence: {precedence})"
    if _header(msg, "List-Id") or _header(msg, "List-Unsubscribe"):
        return "mail from a mailing list"
    for name in _AUTORESPONDER_HEADERS:
        if _header(msg, name) is not None:
            return f"an autoresponder's mail ({name})"
    thread = " ".join(x for x in (_header(msg, "In-Reply-To"), _header(msg, "References")) if x)
    if f"<{REPLY_ID_PREFIX}" in thread:
        return "a reply to one of our answers"
    if (_header(msg, "Return-Path") or "").strip() == "<>":
        return "a bounce (empty Return-Path)"
    if not address or "@" not in address:
        return "no sender address"
    local = address.rsplit("@", 1)[0].lower()
    if local in _NO_REPLY_LOCALS or local.startswith(("owner-", "bounce")) or local.endswith("-request"):
        return f"a system address ({escape_name(address)})"
    results = _header(msg, "Authentication-Results")  # the topmost: the receiving server's own
    if results and re.search(r"(?i)\bdmarc\s*=\s*fail\b", results):
        return "the From address failed DMARC at our server (forged)"
    return None


def _header(msg: email.message.Message, name: str) -> str | None:
    try:
        value = msg.get(name)
        text = None if value is None else str(value)
    except Exception:  # noqa: BLE001  header parsing of untrusted input; fall back to the raw text
        text = _raw_header(msg, name)
    if text is None:
        return None
    text = " ".join(text.split())  # unfolded
    return text or None


def _raw_header(msg: email.message.Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            try:
                return str(email.header.make_header(email.header.decode_header(value)))
            except Exception:  # noqa: BLE001  undecodable encoded words: keep the text as sent
                return str(value)
    return None


def _sender(msg: email.message.Message) -> tuple[str | None, str | None]:
    try:
        value = msg.get("From")
        addresses = getattr(value, "addresses", ()) if value is not None else ()
        if addresses:
            first = addresses[0]
            return first.display_name or None, first.addr_spec if first.username else None
    except Exception:  # noqa: BLE001  header parsing of untrusted input; fall back to parseaddr
        pass
    raw = _raw_header(msg, "From")
    if raw is None:
        return None, None
    name, address = email.utils.parseaddr(raw)
    return name or None, address or None


def _date(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": UTC, local zone unknown (RFC 5322 3.3)
            when = when.replace(tzinfo=_dt.timezone.utc)
        return _iso(when)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _iso_deadline(text: str) -> str:
    """A deadline as the server times are written (UTC, whole seconds), for comparison."""
    when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return _iso(when)


def _iso(when: _dt.datetime) -> str:
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mtime(path: Path) -> str | None:
    try:
        return _iso_timestamp(os.stat(path).st_mtime)
    except OSError:
        return None


def _iso_timestamp(seconds: float) -> str | None:
    try:
        return _iso(_dt.datetime.fromtimestamp(seconds, _dt.timezone.utc))
    except (OverflowError, ValueError, OSError):  # a file dated far outside what datetime holds
        return None


# ------------------------------------------------------------------------------------------ files

def _holds(path: Path, sha: str) -> bool:
    """Whether `path` is a regular file whose bytes hash to `sha` (a copy from an earlier run)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as fin:
            if not stat.S_ISREG(os.fstat(fin.fileno()).st_mode):
                return False
            return sha256_file(fin) == sha
    except OSError:
        return False  # absent or unreadable: written afresh


def _count_pages(data: bytes) -> tuple[int | None, str | None]:
    """The page count of an untrusted PDF, or None and why not."""
    from pypdf import PdfReader  # noqa: PLC0415  (pypdf costs ~0.1 s to import; only mail needs it)

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.CRITICAL)  # a malformed report is reported once, by us, not logged
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                # An owner password alone (no user password) still opens with the empty one.
                if not reader.decrypt(""):
                    return None, "it is encrypted with a password"
            return len(reader.pages), None
    # pypdf raises many types (its own, ValueError, KeyError, RecursionError...) on hostile input;
    # any of them means the same thing here: the page count is unknown.
    except Exception as exc:  # noqa: BLE001
        return None, scrub(f"pypdf cannot read it ({type(exc).__name__}: {exc})")[:300]
    finally:
        pypdf_log.setLevel(level)

"""An IMAP folder as an inbox source: the mails not yet processed, each downloaded only when it may
hold a submission within the size cap, and marked processed once the run is done with it.

Policy:

* **Protocol by IMAPClient**, a maintained library; no IMAP is written here.
* **Sizes before bytes.** `BODYSTRUCTURE` and `RFC822.SIZE` give every part's encoded size; a mail
  with a part whose decoded size (estimated from the encoding: base64 with standard 76-character
  lines) is over the cap, or that is too large as a whole, is refused without its body being
  fetched; only its header is. Bodies are fetched with `BODY.PEEK[]`, so reading sets no `\\Seen`.
* **Processed once.** A mail is processed when the journal has its Message-ID (with the same
  sender) on a submission that is final, and its answer is confirmed when answers are sent (the
  loop's `done` predicate). Such a mail is never downloaded again; the end of each batch moves it
  to `--imap-done FOLDER` (MOVE, or COPY + EXPUNGE) or flags it `$AeccProcessed`, and flagged or
  moved mail is never listed again. A kill between "final" and "moved" leaves the mail in the
  folder: the next run recognises it by its Message-ID and only moves it.
* **A dropped connection is the infrastructure's fault**: the folder is opened again and reading
  resumes with the mails not yet read, up to `RETRIES` times, then `InfraError`. A refused login or
  certificate is a `UsageError` (retrying cannot fix it).
* **Sources** are named `<address>#<UIDVALIDITY>.<UID>`: stable for as long as the server keeps the
  folder's UIDs, which is what UIDVALIDITY promises.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.header
import imaplib
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

from harness.errors import InfraError, UsageError
from harness.mailbox.config import MailOptions, MailURL, password_for, plain_text_or_refuse, tls_context
from harness.stages.rejection import escape_name

__all__ = ["PROCESSED_FLAG", "ImapFolder", "RemoteMail"]

log = logging.getLogger("harness.mail")

PROCESSED_FLAG = b"$AeccProcessed"
RETRIES = 3
_BATCH = 50  # mails per FETCH of bodies: a burst of hundreds is read in a few round trips
_DROPPED = (imaplib.IMAP4.abort, OSError, EOFError)  # socket.timeout and ssl.SSLError are OSErrors


@dataclasses.dataclass(frozen=True)
class RemoteMail:
    """One mail of the folder: its bytes, or why they were not fetched (then its header only)."""

    source: str
    uid: int
    received: str | None  # the server's INTERNALDATE, UTC ISO 8601
    raw: bytes | None = None
    refused: str | None = None  # set exactly when raw is None
    header: bytes = b""

    def __post_init__(self) -> None:
        if (self.raw is None) == (self.refused is None):
            raise TypeError("a remote mail has its bytes or a reason they were not fetched, not both")


Done = Callable[[str | None, str | None, str], bool]  # (message id, sender address, source) -> processed


class ImapFolder:
    """One folder of one account, logged in; a context manager."""

    def __init__(self, url: MailURL | str, options: MailOptions, *,
                 say: Callable[[str], None] = log.warning) -> None:
        from harness.mailbox.config import parse_url

        self.url = url if isinstance(url, MailURL) else parse_url(url, imap=True)
        self.options = options
        self.say = say
        self.client: Any = None
        self.uidvalidity: int | None = None

    # ------------------------------------------------------------------ connection

    def __enter__(self) -> "ImapFolder":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        from imapclient import IMAPClient
        from imapclient.exceptions import LoginError

        url, options = self.url, self.options
        password = password_for(url, options)  # before connecting: a missing password is a usage error
        context = tls_context(options)
        try:
            client = IMAPClient(url.host, port=url.port, ssl=url.scheme.implicit_tls, ssl_context=context,
                                timeout=options.timeout_s)
        except ssl.SSLCertVerificationError as exc:
            raise _certificate_error(url, options, exc) from None
        except _DROPPED as exc:
            raise InfraError(f"cannot connect to {url.text}", expected="an IMAP server answering there",
                             found=_why(exc), fix="check the host, the port and the network; rerun") from None
        try:
            if not url.scheme.implicit_tls:
                if client.has_capability("STARTTLS"):
                    client.starttls(context)
                else:
                    plain_text_or_refuse(url, options, self.say, "imaps://")
            try:
                client.login(url.user, password)
            except LoginError:
                raise UsageError(f"the IMAP server refused the login of {url.user}", expected="a valid login",
                                 found="authentication failed",
                                 fix="check the user and the password source (--password-file, "
                                     "AECC_IMAP_PASSWORD, ~/.netrc)") from None
            selected = client.select_folder(url.folder)
        except ssl.SSLCertVerificationError as exc:
            _shutdown(client)
            raise _certificate_error(url, options, exc) from None
        except imaplib.IMAP4.abort as exc:
            _shutdown(client)
            raise InfraError(f"{url.text} dropped the connection", found=_why(exc), fix="rerun") from None
        except imaplib.IMAP4.error as exc:
            _shutdown(client)
            raise UsageError(f"cannot open the folder {url.folder!r} of {url.text}", expected="an existing folder",
                             found=_why(exc), fix="check the folder's name (case matters)") from None
        except _DROPPED as exc:
            _shutdown(client)
            raise InfraError(f"{url.text} dropped the connection", found=_why(exc), fix="rerun") from None
        except BaseException:
            _shutdown(client)
            raise
        finally:
            del password
        self.client = client
        self.uidvalidity = int(selected.get(b"UIDVALIDITY", 0))

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            _shutdown(client)

    def reopen(self) -> None:
        self.close()
        self.open()

    def source(self, uid: int) -> str:
        return f"{self.url.text}#{self.uidvalidity}.{uid}"

    # ------------------------------------------------------------------ reading

    def unprocessed(self) -> list[int]:
        """UIDs of the folder's mails not flagged processed, oldest first."""
        return sorted(self.client.search(["NOT", "DELETED", "NOT", "KEYWORD", PROCESSED_FLAG.decode()]))

    def mails(self, max_bytes: int, mail_cap: int, done: Done) -> Iterator[RemoteMail]:
        """Every unprocessed mail not already processed by the journal's account, oldest first;
        a dropped connection is reopened and reading resumes where it stopped."""
        yielded: set[int] = set()
        for attempt in range(RETRIES + 1):
            try:
                yield from self._mails(max_bytes, mail_cap, done, yielded)
                return
            except _DROPPED as exc:
                if attempt == RETRIES:
                    raise InfraError(f"{self.url.text} kept dropping the connection while mail was read",
                                     expected="the folder read to its end", found=_why(exc),
                                     fix=f"check the server and the network; rerun (the {len(yielded)} "
                                         "mail(s) read are kept)") from None
                self.say(f"{self.url.text}: connection lost while reading ({_why(exc)}); reconnecting "
                         f"({attempt + 1} of {RETRIES})")
                time.sleep(min(0.5 * 2 ** attempt, 10))
                self.reopen()

    def _mails(self, max_bytes: int, mail_cap: int, done: Done, yielded: set[int]) -> Iterator[RemoteMail]:
        uids = [u for u in self.unprocessed() if u not in yielded]
        if not uids:
            return
        meta = self.client.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE"])
        wanted: list[int] = []
        for uid in uids:
            item = meta.get(uid)
            if item is None:  # expunged meanwhile
                continue
            envelope = item.get(b"ENVELOPE")
            message_id, sender = _envelope_ids(envelope)
            if done(message_id, sender, self.source(uid)):
                yielded.add(uid)
                continue
            refused = _oversize(item.get(b"BODYSTRUCTURE"), int(item.get(b"RFC822.SIZE") or 0), max_bytes, mail_cap)
            if refused is not None:
                header = self.client.fetch([uid], ["BODY.PEEK[HEADER]"]).get(uid, {}).get(b"BODY[HEADER]", b"")
                yielded.add(uid)
                yield RemoteMail(self.source(uid), uid, _utc(item.get(b"INTERNALDATE")), refused=refused,
                                 header=header)
                continue
            wanted.append(uid)
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start:start + _BATCH]
            bodies = self.client.fetch(chunk, ["BODY.PEEK[]"])
            for uid in chunk:
                raw = bodies.get(uid, {}).get(b"BODY[]")
                if raw is None:
                    continue  # expunged between the two fetches
                yielded.add(uid)
                yield RemoteMail(self.source(uid), uid, _utc(meta[uid].get(b"INTERNALDATE")), raw=bytes(raw))

    # ------------------------------------------------------------------ marking

    def mark_processed(self, done: Done) -> int:
        """Move (or flag) every mail of the folder the journal has processed; how many."""
        uids = self.unprocessed()
        if not uids:
            return 0
        meta = self.client.fetch(uids, ["ENVELOPE"])
        finished = [uid for uid in uids if uid in meta
                    and done(*_envelope_ids(meta[uid].get(b"ENVELOPE")), self.source(uid))]
        if not finished:
            return 0
        target = self.options.imap_done
        # Flagged first: a kill during a non-atomic move (COPY, then EXPUNGE) leaves the original
        # flagged, so it is never listed again even if it is copied twice.
        self.client.add_flags(finished, [PROCESSED_FLAG], silent=True)
        if target:
            if not self.client.folder_exists(target):
                self.client.create_folder(target)
            if self.client.has_capability("MOVE"):
                self.client.move(finished, target)
            else:
                self.client.copy(finished, target)
                self.client.delete_messages(finished, silent=True)
                if self.client.has_capability("UIDPLUS"):
                    self.client.uid_expunge(finished)
                else:
                    self.client.expunge()
        return len(finished)

    # ------------------------------------------------------------------ waiting

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for new mail: IMAP IDLE where the server offers it (True when it
        said something), else a plain sleep (True: look again)."""
        if timeout_s <= 0:
            return True
        if not self.client.has_capability("IDLE"):
            time.sleep(timeout_s)
            return True
        # Servers drop an IDLE after 30 minutes (RFC 2177): renewed well within that.
        self.client.idle()
        try:
            responses = self.client.idle_check(timeout=min(timeout_s, 25 * 60))
        finally:
            self.client.idle_done()
        return bool(responses)


# ---------------------------------------------------------------------------------------- helpers

def _shutdown(client: Any) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _certificate_error(url: MailURL, options: MailOptions, exc: BaseException) -> UsageError:
    return UsageError(f"the certificate of {url.host} is not trusted",
                      expected="a certificate signed by " + (f"the CA in {options.ca_file}" if options.ca_file
                                                             else "a CA of this system"),
                      found=str(getattr(exc, "verify_message", "") or exc),
                      fix="pass the server's CA (or its self-signed certificate) with --ca-file PEM")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


def _envelope_ids(envelope: Any) -> tuple[str | None, str | None]:
    """(Message-ID, first From address) of an ENVELOPE, as the inbox reader spells them."""
    if envelope is None:
        return None, None
    message_id = _text(envelope.message_id)
    message_id = " ".join(message_id.split()) if message_id else None
    sender = None
    for address in envelope.from_ or ():
        if address.mailbox and address.host:
            sender = f"{_text(address.mailbox)}@{_text(address.host)}"
            break
    return message_id or None, sender


def _utc(value: Any) -> str | None:
    if not isinstance(value, _dt.datetime):
        return None
    if value.tzinfo is None:  # IMAPClient normalises to local time without a zone
        value = value.astimezone()
    return value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _oversize(body: Any, total: int, max_bytes: int, mail_cap: int) -> str | None:
    """Why the mail cannot hold a submission within the cap, from its structure alone; or None."""
    if total > mail_cap:
        return f"the mail is {total} bytes: too large to hold an attachment of at most {max_bytes} bytes"
    if body is None:
        return None
    for ctype, name, encoding, size in _leaves(body, 0):
        decoded = size * 76 // 78 * 3 // 4 if encoding == "base64" else size
        if decoded > max_bytes:
            label = f"attachment {escape_name(name)}" if name else f"the {escape_name(ctype)} part"
            return (f"{label} is about {decoded} bytes ({size} encoded), over the limit of {max_bytes} "
                    "(refused without downloading it)")
    return None


def _leaves(body: Any, depth: int) -> Iterator[tuple[str, str | None, str, int]]:
    """(content type, file name, transfer encoding, encoded size) of every leaf of a BODYSTRUCTURE."""
    if depth > 32:
        return
    if body.is_multipart:
        for part in body[0]:
            yield from _leaves(part, depth + 1)
        return
    ctype = f"{_atom(body[0])}/{_atom(body[1])}".lower()
    if ctype == "message/rfc822" and len(body) > 8 and hasattr(body[8], "is_multipart"):
        yield from _leaves(body[8], depth + 1)
        return
    name = None
    params = list(body[2]) if len(body) > 2 and isinstance(body[2], tuple) else []
    # The disposition's parameters (filename=) sit in the extension data after the size, at a place
    # that depends on the type: the first (type, (params...)) pair there.
    for extra in body[7:]:
        if isinstance(extra, tuple) and len(extra) == 2 and isinstance(extra[0], bytes) \
                and isinstance(extra[1], tuple):
            params += list(extra[1])
            break
    for key, value in zip(params[::2], params[1::2]):
        if _atom(key).lower() in ("filename", "name", "filename*", "name*"):
            name = _text(value)
    try:
        size = int(body[6])
    except (IndexError, TypeError, ValueError):
        size = 0
    yield ctype, name, _atom(body[5]).lower() if len(body) > 5 else "", size


def _atom(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return "" if value is None else str(value)

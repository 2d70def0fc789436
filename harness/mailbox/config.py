"""How the mail loop reaches its servers: `imaps://USER@HOST[:PORT]/FOLDER` and
`smtps://USER@HOST[:PORT]` addresses, TLS settings, and where passwords come from.

Policy:

* **TLS by default.** `imaps://` and `smtps://` speak TLS from the first byte; `imap://` and
  `smtp://` upgrade with STARTTLS and fail when the server does not offer it. Certificates are
  checked against the system's CAs, or `--ca-file PEM` (a self-hosted server). Plain text only with
  `--allow-plaintext`, and then a warning, since the password crosses the network readable.
* **Passwords never come from the command line** (every local user can read a process's argv). They
  come from `--password-file FILE` (its first line), else the environment (`AECC_IMAP_PASSWORD`,
  `AECC_SMTP_PASSWORD`), else `~/.netrc` (the machine's `login`/`password`). A password is held in
  memory only for the login; it is never in a log, the journal, `status` or an exception message.
* **Addresses carry no password.** `USER:PASSWORD@HOST` is refused before any connection, so that a
  password typed there fails loudly instead of ending up in shell history, the journal and Slurm
  job files.
"""

from __future__ import annotations

import dataclasses
import enum
import netrc
import os
import re
import ssl
import urllib.parse
from pathlib import Path
from typing import Any, Callable

from harness.errors import UsageError

__all__ = ["REPLY_ID_PREFIX", "MailOptions", "MailURL", "Scheme", "is_mail_url", "parse_url", "password_for",
           "tls_context"]

IMAP_PASSWORD_ENV = "AECC_IMAP_PASSWORD"
SMTP_PASSWORD_ENV = "AECC_SMTP_PASSWORD"
_DEFAULT_PORTS = {"imaps": 993, "imap": 143, "smtps": 465, "smtp": 587}
_URL = re.compile(r"(?i)^(imaps?|smtps?)://")
#: the Message-IDs of our answers start with this: a mail that refers to one is never answered
REPLY_ID_PREFIX = "aecc-reply."
DEFAULT_REPLY_CAP = 5  # answers per sender per hour: a loop with a responder is bounded by this


class Scheme(str, enum.Enum):
    IMAPS = "imaps"
    IMAP = "imap"  # STARTTLS unless plain text is allowed
    SMTPS = "smtps"
    SMTP = "smtp"  # STARTTLS unless plain text is allowed

    @property
    def implicit_tls(self) -> bool:
        return self in (Scheme.IMAPS, Scheme.SMTPS)

    @property
    def imap(self) -> bool:
        return self in (Scheme.IMAPS, Scheme.IMAP)


@dataclasses.dataclass(frozen=True)
class MailURL:
    """A mail server address: who logs in where, and (IMAP) which folder."""

    scheme: Scheme
    user: str
    host: str
    port: int
    folder: str | None = None  # IMAP only; INBOX when the address names none

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", Scheme(self.scheme))
        if not self.user or not self.host:
            raise UsageError("a mail address needs a user and a host", expected="SCHEME://USER@HOST[:PORT]",
                             found=self.text, fix="add the login name before '@'")
        if not 0 < self.port < 65536:
            raise UsageError("a mail server port is 1-65535", found=str(self.port))
        if self.scheme.imap != (self.folder is not None):
            raise TypeError("an IMAP address has a folder, an SMTP one has none")

    @property
    def text(self) -> str:
        """The address as shown and journaled (never with a password)."""
        user = urllib.parse.quote(self.user, safe="@")
        base = f"{self.scheme.value}://{user}@{self.host}:{self.port}"
        return base if self.folder is None else f"{base}/{urllib.parse.quote(self.folder, safe='/')}"

    def __str__(self) -> str:
        return self.text


def is_mail_url(value: Any) -> bool:
    """Whether an inbox argument is a server address rather than a path."""
    return isinstance(value, str) and bool(_URL.match(value))


def parse_url(text: str, *, imap: bool) -> MailURL:
    """`text` as a MailURL of the IMAP (`imap=True`) or SMTP family; `UsageError` otherwise."""
    expected = ("imaps://USER@HOST[:PORT]/FOLDER or imap://... (STARTTLS)" if imap
                else "smtps://USER@HOST[:PORT] or smtp://... (STARTTLS)")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError("not a mail server address", expected=expected, found=f"{_redacted(text)} ({exc})") from None
    try:
        scheme = Scheme(parts.scheme.lower())
    except ValueError:
        raise UsageError("not a mail server address", expected=expected, found=_redacted(text)) from None
    if scheme.imap != imap:
        raise UsageError("wrong kind of mail server address", expected=expected, found=_redacted(text))
    if parts.password is not None:
        raise UsageError("a password in a server address", expected=expected + " (no password in it)",
                         found=_redacted(text),
                         fix="put the password in --password-file FILE, "
                             f"{IMAP_PASSWORD_ENV if imap else SMTP_PASSWORD_ENV} or ~/.netrc, and change it: "
                             "it is now in your shell history")
    if parts.query or parts.fragment:
        raise UsageError("a mail server address takes no query or fragment", expected=expected, found=text)
    folder = None
    if imap:
        folder = urllib.parse.unquote(parts.path.lstrip("/")) or "INBOX"
    elif parts.path not in ("", "/"):
        raise UsageError("an SMTP address names no folder", expected=expected, found=text)
    return MailURL(scheme, urllib.parse.unquote(parts.username or ""), parts.hostname or "",
                   port if port is not None else _DEFAULT_PORTS[scheme.value], folder)


def _redacted(text: str) -> str:
    # What an error message may show of an address someone typed a password into.
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", text)


@dataclasses.dataclass(frozen=True)
class MailOptions:
    """The mail loop's settings, as plain data (journaled and handed to Slurm jobs: no secrets)."""

    ca_file: Path | None = None
    password_file: Path | None = None
    allow_plaintext: bool = False
    imap_done: str | None = None  # move processed mail there; None: flag it
    reply: str | None = None  # smtp[s]://USER@HOST[:PORT]
    reply_from: str | None = None  # the From of answers (default: the SMTP user)
    reply_dry_run: Path | None = None  # write answers to files here instead of sending
    reply_scores: bool = False
    reply_cap: int = DEFAULT_REPLY_CAP
    until: str | None = None  # the deadline (UTC ISO 8601) mail is judged late against
    accept_late: bool = False
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.reply is not None:
            parse_url(self.reply, imap=False)  # a bad address is a usage error before any work
        if self.reply_dry_run is not None and self.reply is None and self.reply_from is None:
            raise UsageError("--reply-dry-run needs a sender", expected="--reply smtp[s]://... or --reply-from",
                             found="neither", fix="add --reply-from ADDRESS (nothing is sent in a dry run)")
        if isinstance(self.reply_cap, bool) or not isinstance(self.reply_cap, int) or self.reply_cap < 1:
            raise UsageError("--reply-cap must be a positive integer", found=repr(self.reply_cap))
        if self.imap_done is not None and not self.imap_done.strip():
            raise UsageError("--imap-done names a folder", found="an empty name")
        if self.timeout_s <= 0:
            raise UsageError("the mail timeout must be positive", found=str(self.timeout_s))

    @property
    def replying(self) -> bool:
        return self.reply is not None or self.reply_dry_run is not None

    def to_dict(self) -> dict[str, Any]:
        return {"ca_file": str(self.ca_file) if self.ca_file else None,
                "password_file": str(self.password_file) if self.password_file else None,
                "allow_plaintext": self.allow_plaintext, "imap_done": self.imap_done, "reply": self.reply,
                "reply_from": self.reply_from,
                "reply_dry_run": str(self.reply_dry_run) if self.reply_dry_run else None,
                "reply_scores": self.reply_scores, "reply_cap": self.reply_cap, "until": self.until,
                "accept_late": self.accept_late, "timeout_s": self.timeout_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MailOptions":
        paths = {k: Path(data[k]) if data.get(k) else None for k in ("ca_file", "password_file", "reply_dry_run")}
        return cls(**{**data, **paths})


def password_for(url: MailURL, options: MailOptions) -> str:
    """The password of `url`'s user: --password-file, the environment, then ~/.netrc.

    Raises `UsageError` naming where it looked (never the password)."""
    env = IMAP_PASSWORD_ENV if url.scheme.imap else SMTP_PASSWORD_ENV
    if options.password_file is not None:
        try:
            text = Path(options.password_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the password file {options.password_file}",
                             expected="a readable UTF-8 file whose first line is the password",
                             found=getattr(exc, "strerror", None) or type(exc).__name__,
                             fix="check the path and its permissions (chmod 600)") from None
        lines = text.splitlines()
        if lines and lines[0]:
            return lines[0]
        raise UsageError(f"the password file {options.password_file} is empty",
                         expected="the password on its first line", found="an empty first line")
    if os.environ.get(env):
        return os.environ[env]
    try:
        auth = netrc.netrc().authenticators(url.host)
    except FileNotFoundError:
        auth = None
    except (netrc.NetrcParseError, OSError) as exc:
        raise UsageError("cannot read ~/.netrc", expected="a valid netrc file (mode 600)",
                         found=type(exc).__name__, fix="fix it, or use --password-file") from None
    if auth is not None and auth[2] and (not auth[0] or auth[0] == url.user):
        return auth[2]
    raise UsageError(f"no password for {url.text}",
                     expected=f"--password-file FILE, {env}, or a ~/.netrc entry for machine {url.host}",
                     found="none of them", fix="supply one (never on the command line)")


def plain_text_or_refuse(url: MailURL, options: MailOptions, say: Callable[[str], None], secure: str) -> None:
    """A server that offers no STARTTLS: refused, unless --allow-plaintext says to go on (with a
    warning), for IMAP and SMTP alike. `secure` names the implicit-TLS scheme to use instead."""
    if not options.allow_plaintext:
        raise UsageError(f"{url.text} offers no STARTTLS", expected=f"TLS ({secure}, or STARTTLS)",
                         found="a plain-text-only server",
                         fix=f"use {secure}, or --allow-plaintext on a network you trust")
    say(f"warning: {url.text}: plain text, --allow-plaintext: the password crosses the network readable")


def tls_context(options: MailOptions) -> ssl.SSLContext:
    """Certificates checked against --ca-file, else the system's CAs; TLS 1.2 at least."""
    try:
        context = ssl.create_default_context(cafile=str(options.ca_file) if options.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load --ca-file {options.ca_file}", expected="a PEM file of CA certificates",
                         found=str(exc), fix="pass the server's CA (or self-signed) certificate in PEM") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context

"""Answers to senders: one per mail, after the check stage (before scoring), over SMTP or to files.

What an answer holds, and only for the mail it answers (never another mail's sender, file names or
submission, even when two people sent the same ZIP):

* what was received: the ZIP's and the report's file names and sha256;
* the intake verdict (the ZIP opened and an encoder was found, or why not; or why the mail holds no
  usable ZIP);
* the validation verdict in the words of `checker.verdict` (headline, then each check that did not
  pass with its level and fix), or the stage that excluded the submission before the check;
* the report's warnings (page count over the rules' 6 pages, unreadable, missing);
* the check report, attached as JSON;
* scores only with `--reply-scores` (then the answer waits for scoring).

Who is never answered: a mail whose `no_reply` is set (RFC 3834 automatic mail, lists, bounces,
autoresponders, replies to our answers, a From that failed DMARC at our server, no address), and a
sender already answered `reply_cap` times in the past hour. Answers go to the From address only
(never Reply-To, which a forger sets freely too), are threaded (In-Reply-To, References), and are
marked `Auto-Submitted: auto-replied` so that well-behaved responders do not answer them.

Exactly once, through kills: an answer is recorded in the journal (`reply`, state `recorded`, with
its Message-ID) before it is sent and confirmed (`sent`) after the server accepted it. A crash
between the two leaves an answer recorded and unconfirmed; the next run sends it again **with the
same Message-ID**. That window is the moment between the server's final "250" and our fsync, so a
duplicate is rare, and when it happens it carries the Message-ID of the first, which mail clients
treat as the same message; not sending would instead risk silence, the very thing answers are for.
A refusal by the server (5xx) is recorded `failed` and not retried; a dropped connection or a 4xx
leaves the answer recorded, to be sent by the next run or pass.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.message
import email.policy
import email.utils
import enum
import hashlib
import json
import re
import smtplib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.errors import InfraError, UsageError
from harness.journal import (
    EventKind,
    Journal,
    JournalState,
    StageState,
    SubmissionState,
    read_events,
)
from harness.mailbox.config import (
    REPLY_ID_PREFIX,
    MailOptions,
    MailURL,
    parse_url,
    password_for,
    plain_text_or_refuse,
    tls_context,
)
from harness.safeio import write_atomic
from harness.stages.rejection import escape_name

__all__ = ["Answer", "Replier", "ReplyState", "reply_states"]

_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+")
_HOUR = _dt.timedelta(hours=1)
CHECK_REPORT = "check.json"  # harness.pipelines.score writes it in RESULTS/<sha256>/
RESULT_NAME = "result.json"


class ReplyState(str, enum.Enum):
    RECORDED = "recorded"  # about to be sent (not confirmed: a crash may have come between)
    SENT = "sent"  # the server accepted it (or, dry run, it was written to a file)
    SKIPPED = "skipped"  # never to be sent: automatic mail, the hourly cap, no valid address
    FAILED = "failed"  # the server refused it for good (5xx)

    @property
    def final(self) -> bool:
        return self is not ReplyState.RECORDED


@dataclasses.dataclass(frozen=True)
class Answer:
    """One answer, composed: who, what, the thread, the attached report."""

    key: str  # the mail answered: its Message-ID, else its source
    source: str
    to: str | None
    message_id: str  # ours
    subject: str
    in_reply_to: str | None
    references: str | None
    body: str
    attachment: bytes | None  # the check report, JSON
    skip: str | None = None  # why it must not be sent

    def __post_init__(self) -> None:
        if not self.message_id.startswith(f"<{REPLY_ID_PREFIX}"):
            raise TypeError("our answers' Message-IDs start with <aecc-reply.")
        if self.skip is None and (self.to is None or not _ADDRESS.fullmatch(self.to)):
            raise TypeError("an answer to be sent needs a plain address")


def mail_key(record: dict) -> str:
    return str(record.get("message_id") or record.get("source"))


def reply_states(state_events: Iterable[Any]) -> dict[str, dict]:
    """The latest reply event per mail key, as plain data (`state`, `ts`, `to`, `message_id`...)."""
    out: dict[str, dict] = {}
    for event in state_events:
        if event.kind is EventKind.REPLY and event.key:
            previous = out.get(event.key)
            if previous is not None and ReplyState(previous["state"]).final:
                continue  # a final state is final: a later "recorded" is a concurrent writer's echo
            out[event.key] = {"state": event.state, "ts": event.ts, **dict(event.data)}
    return out


class Replier:
    """Answers the mails of one RESULTS folder whose time has come; one per batch or watch pass."""

    def __init__(self, results: Path, journal: Journal, options: MailOptions, *,
                 say: Callable[[str], None] = lambda message: None,
                 now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.timezone.utc)) -> None:
        if not options.replying:
            raise UsageError("answers need --reply or --reply-dry-run", found="neither")
        self.results = Path(results)
        self.journal = journal
        self.options = options
        self.say = say
        self.now = now
        self.url: MailURL | None = parse_url(options.reply, imap=False) if options.reply else None
        self.sender = options.reply_from or (self.url.user if self.url else None)
        if not self.sender or not _ADDRESS.fullmatch(self.sender):
            raise UsageError("the answers' From is not an address", expected="--reply-from ADDRESS, or an SMTP "
                             "user that is an address", found=repr(self.sender), fix="add --reply-from")
        self.domain = self.sender.rsplit("@", 1)[1]
        self._smtp: smtplib.SMTP | None = None

    # ------------------------------------------------------------------ what is due

    def due(self, state: JournalState, events: list[Any], *, sha256: str | None = None) -> list[Answer]:
        """The answers whose time has come and that no earlier run confirmed (for one submission when
        `sha256` is given)."""
        done = reply_states(events)
        answers: list[Answer] = []
        if sha256 is None:
            for record in state.unusable:
                if record.get("sender_address") or record.get("message_id"):
                    answers.append(self._compose(record, None, state))
        if sha256 is None:
            subs = list(state.submissions.values())
        else:
            subs = [state.submissions[sha256]] if sha256 in state.submissions else []
        for sub in subs:
            if not self._ready(sub):
                continue
            for record in sub.arrivals:
                if record.get("kind") == "mail":
                    answers.append(self._compose(record, sub, state))
        return [a for a in answers if a.key not in done or not ReplyState(done[a.key]["state"]).final]

    def _ready(self, sub: Any) -> bool:
        """Whether a submission's answer can be written now: its check ended (or, with scores, it is
        scored), or it was excluded or superseded."""
        if sub.state in (SubmissionState.EXCLUDED, SubmissionState.SUPERSEDED):
            return True
        if self.options.reply_scores:
            return sub.state is SubmissionState.DONE
        check = sub.stages.get(("check", None))
        return sub.state is SubmissionState.DONE or (
            check is not None and check.state in (StageState.DONE, StageState.FAILED))

    # ------------------------------------------------------------------ composing

    def _compose(self, record: dict, sub: Any, state: JournalState) -> Answer:
        key = mail_key(record)
        reply_id = f"<{REPLY_ID_PREFIX}{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()[:32]}@{self.domain}>"
        original = record.get("message_id")
        subject = " ".join(str(record.get("subject") or "your submission").split())
        subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        to = record.get("sender_address")
        skip = record.get("no_reply")
        if skip is None and (not to or not _ADDRESS.fullmatch(str(to))):
            skip = "the sender's address is not a plain address"
        lines, attachment = self._body(record, sub)
        return Answer(key=key, source=str(record.get("source")), to=str(to) if to else None, message_id=reply_id,
                      subject=subject[:200], in_reply_to=original, references=record.get("references") or original,
                      body="\n".join(lines) + "\n", attachment=attachment, skip=skip)

    def _body(self, record: dict, sub: Any) -> tuple[list[str], bytes | None]:
        lines = ["This is an automatic answer from the AECC submission harness to your mail"
                 + (f" of {record['date']}" if record.get("date") else "") + ".", ""]
        lines.append("Received:")
        if record.get("file_name"):
            sha = sub.sha256 if sub is not None else None
            lines.append(f"  ZIP    {escape_name(str(record['file_name']))}" + (f"  sha256 {sha}" if sha else ""))
        report = record.get("report") or {}
        if report:
            lines.append(f"  report {escape_name(str(report.get('file_name')))}  sha256 {report.get('sha256')}"
                         + (f"  ({report['pages']} pages)" if report.get("pages") is not None else ""))
        if record.get("received"):
            lines.append(f"  at {record['received']} (our server's time)")
        lines.append("")
        attachment = None
        if sub is None:  # an unusable mail, or a ZIP refused before it had a sha256
            reason = str(record.get("reason") or "")
            lines += ["Intake: REFUSED, nothing from this mail will be scored.",
                      f"  {escape_name(str(record.get('detail') or reason))}"]
            if reason == "late":
                lines.append("  The deadline has passed.")
            else:
                lines.append("  Please send one mail with exactly one ZIP (your submission) and your PDF report.")
        else:
            lines += self._verdicts(sub)
            path = self.results / sub.sha256 / CHECK_REPORT
            if path.is_file():
                attachment = path.read_bytes()
        warnings = [str(w) for w in record.get("warnings") or ()]
        if warnings:
            lines += ["", "Warnings about this mail:"] + [f"  - {escape_name(w)}" for w in warnings]
        if attachment is not None:
            lines += ["", "The full check report is attached (check-report.json)."]
        lines += ["", "Please do not answer this mail: it is not read. Write to the organizers instead."]
        return lines, attachment

    def _verdicts(self, sub: Any) -> list[str]:
        from checker.verdict import Summary

        lines = ["Intake: ACCEPTED (the ZIP opened and an encoder was found)."]
        detail = sub.detail or {}
        if sub.state is SubmissionState.EXCLUDED and detail.get("stage") == "intake":
            lines = ["Intake: REFUSED, this submission will not be scored.", f"  {detail.get('reason')}"]
            lines += [f"  {k}: {detail[k]}" for k in ("found", "fix") if detail.get(k)]
            return lines
        if sub.state is SubmissionState.SUPERSEDED:
            return lines + ["", "Superseded: a later mail from the same address replaces this one; it will not "
                                "be scored."]
        check = sub.stages.get(("check", None))
        summary = (check.data.get("checks") or {}).get("summary") if check is not None else None
        lines.append("")
        if summary:
            verdict = Summary.from_dict(summary)
            lines.append("Validation (the contract checker, network off):")
            lines += [f"  {line}" for line in verdict.lines()]
        elif sub.state is SubmissionState.EXCLUDED:
            lines += [f"Validation: EXCLUDED at the {detail.get('stage')} stage: {detail.get('reason')}"]
            lines += [f"  {k}: {detail[k]}" for k in ("found", "fix") if detail.get(k)]
        else:
            lines.append("Validation: not run.")
        if sub.state is SubmissionState.EXCLUDED and summary:
            lines.append("This submission will not be scored.")
        if self.options.reply_scores and sub.state is SubmissionState.DONE:
            lines += [""] + self._scores(sub.sha256)
        return lines

    def _scores(self, sha256: str) -> list[str]:
        try:
            result = json.loads((self.results / sha256 / RESULT_NAME).read_text())
        except (OSError, ValueError):
            return ["Scores: not available."]
        lines = ["Scores:"]
        for task in result.get("tasks", []):
            lines.append(f"  {task.get('task')}: {task.get('outcome')}  track A {task.get('track_a')}  "
                         f"track B {task.get('track_b')}")
        return lines

    # ------------------------------------------------------------------ sending

    def send_due(self, *, sha256: str | None = None) -> int:
        """Answer every mail due (of one submission when given); how many answers went out."""
        events = read_events(self.results)
        from harness.journal import reduce

        state = reduce(events)
        sent = 0
        try:
            for answer in self.due(state, events, sha256=sha256):
                sent += self._one(answer, events)
        finally:
            self._disconnect()
        return sent

    def _one(self, answer: Answer, events: list[Any]) -> int:
        """Send (or skip) one answer; every event it journals is also added to `events`."""
        base = {"source": answer.source, "to": answer.to, "message_id": answer.message_id}

        def record(state: ReplyState, **data: Any) -> None:
            events.append(self.journal.append(EventKind.REPLY, key=answer.key, state=state.value,
                                              data={**base, **data}))

        if answer.skip is not None:
            record(ReplyState.SKIPPED, reason=answer.skip)
            self.say(f"answer to {escape_name(answer.source)}: not sent ({answer.skip})")
            return 0
        if self._over_cap(answer, events):
            reason = f"{answer.to} was answered {self.options.reply_cap} times in the past hour"
            record(ReplyState.SKIPPED, reason=reason)
            self.say(f"answer to {escape_name(answer.source)}: not sent ({reason})")
            return 0
        message = self._message(answer)
        record(ReplyState.RECORDED)
        if self.options.reply_dry_run is not None:
            folder = Path(self.options.reply_dry_run)
            folder.mkdir(parents=True, exist_ok=True)
            name = answer.message_id.strip("<>").split("@")[0] + ".eml"
            write_atomic(folder / name, message.as_bytes(policy=email.policy.SMTP), mode=0o644)
            record(ReplyState.SENT, dry_run=str(folder / name))
            return 1
        try:
            refused = self._connect().send_message(message, from_addr=self.sender, to_addrs=[answer.to])
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            code = _code(exc)
            if code is not None and 500 <= code < 600:
                record(ReplyState.FAILED, reason=f"refused by the server: {code}")
                self.say(f"answer to {escape_name(answer.source)}: refused by the server ({code})")
                return 0
            self._disconnect()
            raise InfraError("the SMTP server did not take an answer", found=_why(exc),
                             fix="the answer is recorded and goes out with the next run or pass") from None
        except (smtplib.SMTPException, OSError) as exc:
            self._disconnect()
            raise InfraError("the SMTP server did not take an answer", found=_why(exc),
                             fix="the answer is recorded and goes out with the next run or pass") from None
        if refused:
            record(ReplyState.FAILED, reason="recipient refused")
            return 0
        record(ReplyState.SENT)
        self.say(f"answer to {answer.to} ({escape_name(answer.source)}): sent")
        return 1

    def _over_cap(self, answer: Answer, events: list[Any]) -> bool:
        since = (self.now() - _HOUR).strftime("%Y-%m-%dT%H:%M:%S")
        keys = {e.key for e in events if e.kind is EventKind.REPLY and e.ts >= since
                and e.state in (ReplyState.RECORDED.value, ReplyState.SENT.value)
                and str(e.data.get("to") or "").lower() == str(answer.to).lower() and e.key != answer.key}
        return len(keys) >= self.options.reply_cap

    def _message(self, answer: Answer) -> email.message.EmailMessage:
        msg = email.message.EmailMessage(policy=email.policy.SMTP)
        msg["From"] = self.sender
        msg["To"] = answer.to
        msg["Subject"] = answer.subject
        msg["Date"] = email.utils.format_datetime(self.now())
        msg["Message-ID"] = answer.message_id
        if answer.in_reply_to:
            msg["In-Reply-To"] = answer.in_reply_to
        if answer.references:
            msg["References"] = answer.references
        msg["Auto-Submitted"] = "auto-replied"  # RFC 3834: responders must not answer this
        msg["X-Auto-Response-Suppress"] = "All"
        msg.set_content(answer.body)
        if answer.attachment is not None:
            msg.add_attachment(answer.attachment, maintype="application", subtype="json",
                               filename="check-report.json")
        return msg

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        url, options = self.url, self.options
        assert url is not None  # a dry run never connects
        password = password_for(url, options)
        context = tls_context(options)
        try:
            if url.scheme.implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(url.host, url.port, timeout=options.timeout_s, context=context)
            else:
                smtp = smtplib.SMTP(url.host, url.port, timeout=options.timeout_s)
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                else:
                    try:
                        plain_text_or_refuse(url, options, self.say, "smtps://")
                    except UsageError:
                        smtp.close()
                        raise
            try:
                smtp.login(url.user, password)
            except smtplib.SMTPAuthenticationError:
                smtp.close()
                raise UsageError(f"the SMTP server refused the login of {url.user}", expected="a valid login",
                                 found="authentication failed",
                                 fix="check the user and the password source (--password-file, AECC_SMTP_PASSWORD, "
                                     "~/.netrc)") from None
        except __import__("ssl").SSLCertVerificationError as exc:
            raise UsageError(f"the certificate of {url.host} is not trusted", found=str(exc),
                             fix="pass the server's CA (or self-signed) certificate with --ca-file PEM") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise InfraError(f"cannot reach the SMTP server {url.text}", found=_why(exc),
                             fix="check the host, the port and the network; answers stay recorded") from None
        finally:
            del password
        self._smtp = smtp
        return smtp

    def _disconnect(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        return codes[0] if codes else None
    return getattr(exc, "smtp_code", None)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]

"""One batch of the mail loop: read the inbox (IMAP folders through `harness.mail.imap`), score as
`aecc score` does, answer each sender when its check has ended, then mark the finished mail
processed on the server.

The order within a batch, and why:

1. The inbox is read; a mail the journal has processed is not downloaded again (`processed`).
2. Once the batch is planned, mails without a usable ZIP, and ZIPs intake refused, are answered at
   once (they will never reach a check).
3. Each submission's senders are answered from its worker when the check stage ends
   (`run_batch(on_checked=...)`), before prepare, encode and score; with `--reply-scores`, after
   scoring instead.
4. At the end, whatever is still due is answered (excluded at build or fetch, scored), then every
   mail whose submission is final and whose answer is final is moved (or flagged) on the server.

A mail is processed when it is final in the journal: an unusable mail, a submission done, excluded
or superseded, and, when answering, its answer sent, skipped or refused. A submission left `error`
(infrastructure) is not final: its mail stays in the folder and the next run takes it up again.
An answer that cannot be sent now (server down) never fails the batch: it stays recorded, and the
next batch or watch pass sends it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.bulk import inbox as inbox_mod
from harness.errors import InfraError, UsageError
from harness.journal import Journal, JournalState, read_events, reduce
from harness.mail.config import MailOptions, is_mail_url, parse_url, password_for
from harness.mail.imap import Done, ImapFolder
from harness.mail.replies import Replier, ReplyState, mail_key, reply_states

__all__ = ["imap_sources", "mark_processed", "processed", "read_inbox", "run_mail_batch"]


def imap_sources(spec: Any) -> list[str]:
    return [str(p) for p in spec.inputs if is_mail_url(p)]


def options_of(spec: Any) -> MailOptions:
    return spec.mail if spec.mail is not None else MailOptions()


def check_credentials(spec: Any) -> None:
    """Every password the run will need, found now (a usage error before any work, never later)."""
    options = options_of(spec)
    for source in imap_sources(spec):
        password_for(parse_url(source, imap=True), options)
    if options.reply is not None and options.reply_dry_run is None:
        password_for(parse_url(options.reply, imap=False), options)


def processed(state: JournalState, events: list[Any], options: MailOptions) -> Done:
    """The predicate (Message-ID, sender, source) -> whether the journal is done with that mail."""
    answers = reply_states(events) if options.replying else {}
    by_id: dict[tuple[str, str], list[bool]] = {}
    by_source: dict[str, list[bool]] = {}

    def note(record: dict, final: bool) -> None:
        if options.replying and (record.get("sender_address") or record.get("message_id")):
            answer = answers.get(mail_key(record))
            final = final and answer is not None and ReplyState(answer["state"]).final
        if record.get("message_id"):
            key = (str(record["message_id"]), str(record.get("sender_address") or "").lower())
            by_id.setdefault(key, []).append(final)
        by_source.setdefault(str(record.get("source")), []).append(final)

    for record in state.unusable:
        note(record, True)
    for sub in state.submissions.values():
        for record in sub.arrivals:
            note(record, sub.state.final)

    def done(message_id: str | None, sender: str | None, source: str) -> bool:
        found = by_source.get(source)
        if found is None and message_id:
            found = by_id.get((message_id, (sender or "").lower()))
        return bool(found) and all(found)

    return done


def read_inbox(spec: Any, journal: Journal, attachments_dir: Path, *,
               say: Callable[[str], None] = lambda message: None,
               max_attachment_bytes: int = inbox_mod.MAX_ATTACHMENT_BYTES) -> inbox_mod.Inbox:
    """`harness.bulk.inbox.read_inbox` over `spec.inputs`, IMAP folders included."""
    options = options_of(spec)
    events = read_events(journal.results)
    done = processed(reduce(events), events, options)

    def remote(address: str, max_bytes: int, mail_cap: int) -> Iterator[Any]:
        with ImapFolder(address, options, say=say) as folder:
            yield from folder.mails(max_bytes, mail_cap, done)

    return inbox_mod.read_inbox(list(spec.inputs), attachments_dir, max_attachment_bytes=max_attachment_bytes,
                                remote=remote, deadline=options.until,
                                accept_late=options.accept_late)


def mark_processed(spec: Any, *, say: Callable[[str], None] = lambda message: None) -> int:
    """Move (or flag) every finished mail of the IMAP sources; how many. A server that cannot be
    reached now is said, not raised: the next run marks them."""
    options = options_of(spec)
    events = read_events(Path(spec.out))
    done = processed(reduce(events), events, options)
    marked = 0
    for source in imap_sources(spec):
        try:
            with ImapFolder(source, options, say=say) as folder:
                marked += folder.mark_processed(done)
        except InfraError as exc:
            say(f"{source}: processed mail not marked yet ({exc.summary}); the next run marks it")
    return marked


class _Answers:
    """The batch's Replier behind a lock (workers call it concurrently). Failures to send never end
    a submission's work: a server out of reach defers the answers to the next batch; a refused login
    or certificate stops answering for this batch and is raised by `close` once the batch is done."""

    def __init__(self, spec: Any, say: Callable[[str], None]) -> None:
        self.journal = Journal(Path(spec.out))
        self.replier = Replier(Path(spec.out), self.journal, options_of(spec), say=say)
        self.say = say
        self.lock = threading.Lock()
        self.failed: UsageError | None = None

    def send(self, sha256: str | None = None) -> int:
        with self.lock:
            if self.failed is not None:
                return 0
            try:
                return self.replier.send_due(sha256=sha256)
            except InfraError as exc:
                self.say(f"answers deferred: {exc.summary} ({exc.found}); they go out with the next batch")
            except UsageError as exc:
                self.failed = exc
                self.say(f"answers stopped: {exc.summary}; they stay recorded until the next run")
            return 0

    def raise_failure(self) -> None:
        if self.failed is not None:
            raise self.failed

    def close(self) -> None:
        self.journal.close()


def run_mail_batch(client: Any, spec: Any, build_options: Any = None, *,
                   progress: Callable[[str, str], None] = lambda sha, message: None,
                   on_plan: Callable[..., None] | None = None,
                   say: Callable[[str], None] = lambda message: None) -> Any:
    """`run_batch` with answers and marking; returns its BatchOutcome."""
    from harness.bulk.run import run_batch

    check_credentials(spec)
    answers = _Answers(spec, say) if options_of(spec).replying else None
    try:
        def planned(plan: list[Any], capacity: Any) -> None:
            if on_plan is not None:
                on_plan(plan, capacity)
            if answers is not None:
                answers.send()

        outcome = run_batch(client, spec, build_options, progress=progress, on_plan=planned,
                            on_checked=(lambda sha: answers.send(sha)) if answers is not None else None)
        if answers is not None:
            answers.send()
    finally:
        if answers is not None:
            answers.close()
    mark_processed(spec, say=say)
    if answers is not None:
        answers.raise_failure()  # after the batch and the marking: results are kept either way
    return outcome


def quiet_pass(spec: Any, *, say: Callable[[str], None] = lambda message: None) -> tuple[int, int]:
    """A pass that needs no engine: read and plan the inbox, answer what is due, mark what is done.
    Returns (submissions planned, of which still needing work)."""
    from harness.bulk.run import plan_batch

    check_credentials(spec)
    planned, _, _, _ = plan_batch(spec, progress=lambda sha, message: say(message))
    state = reduce(read_events(Path(spec.out)))
    pending = [p for p in planned if p.superseded_by is None and not (
        p.submission.sha256 in state.submissions and state.submissions[p.submission.sha256].state.final)]
    if options_of(spec).replying:
        answers = _Answers(spec, say)
        try:
            answers.send()
        finally:
            answers.close()
        answers.raise_failure()
    if not pending:
        mark_processed(spec, say=say)
    return len(planned), len(pending)


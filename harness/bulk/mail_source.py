"""The IMAP side of the inbox: the IMAP folders of a run read as an inbox like any other
(`harness.bulk.inbox` parses every mail, whichever source), and the mail the journal is done with
marked processed on the server.

The batch (`harness.bulk.run`) reads its inbox through this module; the loop that runs batches until
the deadline (`harness.mail`) sits above the batch, and the folder and the answers it reads and
sends through (`harness.mailbox`) below it.

A mail is done when it is final in the journal: an unusable mail, a submission done, excluded or
superseded, and, when answering, its answer sent, skipped or refused (`processed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.bulk import inbox as inbox_mod
from harness.errors import InfraError
from harness.journal import Journal, JournalState, read_events, reduce
from harness.mailbox.config import MailOptions, is_mail_url, parse_url, password_for
from harness.mailbox.imap import Done, ImapFolder
from harness.mailbox.replies import ReplyState, mail_key, reply_states

__all__ = ["check_credentials", "imap_sources", "mark_processed", "options_of", "processed", "read_inbox"]


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

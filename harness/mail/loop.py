"""One batch of the mail loop: read the inbox (IMAP folders through `harness.mailbox.imap`), score as
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import InfraError, UsageError
from harness.journal import Journal, read_events, reduce
from harness.mailbox.replies import Replier
from harness.bulk.mail_source import check_credentials, mark_processed, options_of

__all__ = ["quiet_pass", "run_mail_batch"]


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


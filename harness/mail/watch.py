"""`aecc watch`: the mail loop until the deadline.

Each pass reads every source, answers what is due and marks what is done (`loop.quiet_pass`, no
engine needed), and runs the batch (`loop.run_mail_batch`) only when a submission needs work. Between
passes it waits for new mail: IMAP IDLE when there is one IMAP source and its server offers IDLE,
else a sleep of `poll_s`; never past the deadline. The pass that starts at or after the deadline is
the last: it takes the mail that came just before, and marks late what the server received after
(`UnusableReason.LATE`, unless `accept_late`).

Its state is journaled (`watch` events: started, pass, stopped) so that `aecc status` shows it, and
the pid tells whether a watch that never said "stopped" is still alive or was killed. Ctrl-C and
SIGTERM end it between two journaled steps: a batch stops as `run_batch` does, an answer is recorded
before it is sent (`harness.mailbox.replies`), a mail is flagged before it is moved (`harness.mailbox.imap`),
so a new `aecc watch` with the same arguments takes up where it stopped.
"""

from __future__ import annotations

import datetime as _dt
import enum
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.journal import EventKind, Journal, read_events
from harness.mailbox.config import parse_url
from harness.mailbox.imap import ImapFolder
from harness.mail.loop import quiet_pass, run_mail_batch
from harness.bulk.mail_source import imap_sources, options_of
from harness.processes import process_start

__all__ = ["WatchState", "parse_instant", "watch", "watch_state"]


class WatchState(str, enum.Enum):
    STARTED = "started"
    PASS = "pass"  # a pass over the sources began
    STOPPED = "stopped"


def parse_instant(text: str) -> _dt.datetime:
    """An ISO 8601 instant with a zone (`2025-04-30T23:59:59Z`, `...+08:00`), as UTC."""
    try:
        when = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise UsageError("--until is an instant with its time zone", expected="ISO 8601, e.g. 2025-04-30T23:59:59Z "
                         "or 2025-05-01T07:59:59+08:00", found=text, fix="add the zone (Z for UTC)")
    return when.astimezone(_dt.timezone.utc)


def _iso(when: _dt.datetime) -> str:
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def watch(spec: Any, until: _dt.datetime, *, connect: Callable[[], Any], build_options: Any = None,
          poll_s: float = 60.0, progress: Callable[[str, str], None] = lambda sha, message: None,
          say: Callable[[str], None] = lambda message: None,
          now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.timezone.utc)) -> int:
    """Run passes until one starts at or after `until`; the exit code of the worst batch (0 when
    there was nothing to score)."""
    if poll_s <= 0:
        raise UsageError("--poll must be positive", found=str(poll_s))
    if options_of(spec).until is None:
        raise TypeError("the spec's MailOptions.until is the deadline late mail is judged by")
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out)
    sources = [str(p) for p in spec.inputs]
    journal.append(EventKind.WATCH, state=WatchState.STARTED.value,
                   data={"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid()),
                         "until": _iso(until), "sources": sources, "replying": options_of(spec).replying,
                         "accept_late": options_of(spec).accept_late, "poll_s": poll_s})
    reason = "interrupted"
    code = 0
    passes = 0
    client = None
    try:
        while True:
            started = now()
            passes += 1
            journal.append(EventKind.WATCH, state=WatchState.PASS.value, data={"pid": os.getpid(), "pass": passes})
            planned, pending = quiet_pass(spec, say=say)
            if pending:
                say(f"pass {passes}: {pending} of {planned} submission(s) need work")
                if client is None:
                    client = connect()
                outcome = run_mail_batch(client, spec, build_options, progress=progress, say=say)
                code = max(code, outcome.exit_code)
            if started >= until:
                reason = "deadline"
                break
            left = (until - now()).total_seconds()
            say(f"pass {passes} done; waiting for mail (until {_iso(until)}, {max(left, 0):.0f} s left)")
            _wait(spec, max(min(poll_s, left), 0) + 0.5, say)
    finally:
        journal.append(EventKind.WATCH, state=WatchState.STOPPED.value,
                       data={"pid": os.getpid(), "reason": reason, "passes": passes})
        journal.close()
    return code


def _wait(spec: Any, seconds: float, say: Callable[[str], None]) -> None:
    sources = imap_sources(spec)
    if len(sources) == 1:
        with ImapFolder(parse_url(sources[0], imap=True), options_of(spec), say=say) as folder:
            folder.wait(seconds)
        return
    time.sleep(seconds)


def watch_state(results: Path) -> dict | None:
    """The latest watch of a RESULTS folder: running (its process alive), stopped or killed; None
    when no watch ever ran there."""
    from harness.mailbox.replies import ReplyState, reply_states

    events = read_events(Path(results))
    watch_events = [e for e in events if e.kind is EventKind.WATCH]
    if not watch_events:
        return None
    start = next(e for e in reversed(watch_events) if e.state == WatchState.STARTED.value)
    mine = [e for e in watch_events if e.writer == start.writer and e.ts >= start.ts]
    stopped = next((e for e in mine if e.state == WatchState.STOPPED.value), None)
    passes = [e for e in mine if e.state == WatchState.PASS.value]
    if stopped is not None:
        status = f"stopped ({stopped.data.get('reason')})"
    elif start.data.get("host") == socket.gethostname() and not _alive(start.data):
        status = "killed (no stop recorded; start it again: it resumes)"
    else:
        status = "running"
    answers = reply_states(events).values()
    counts = {s.value: sum(1 for a in answers if a["state"] == s.value) for s in ReplyState}
    return {"status": status, "pid": start.data.get("pid"), "host": start.data.get("host"), "since": start.ts,
            "until": start.data.get("until"), "sources": list(start.data.get("sources") or ()),
            "passes": len(passes), "last_pass": passes[-1].ts if passes else None, "answers": counts}


def _alive(data: dict) -> bool:
    pid = data.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        return process_start(pid) == data.get("start")
    except Exception:
        return False

"""Watch invariant: `aecc watch` takes new mail as it comes (IMAP IDLE wakes it, no poll needed), stops
at the deadline with a last pass that marks late mail with the server's time (scored only with
--accept-late), shows its state in `aecc status`, and, killed at any moment and started again,
processes no mail twice and answers no mail twice (the one answer a kill may catch between "sent"
and "confirmed" goes out again with the same Message-ID); no password reaches RESULTS, the logs,
the output or `ps`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from harness import schemas
from harness.bulk.inbox import UnusableReason
from harness.bulk.run import BatchSpec
from harness.journal import EventKind, Journal, read_events, reduce
from harness.mailbox.config import MailOptions
from harness.bulk.mail_source import read_inbox
from harness.mailbox.replies import ReplyState, reply_states
from harness.mail.watch import watch, watch_state
from harness.pipelines.score import ScoreSettings
from harness.tasks.arguments import resolve_tasks
from tests.support.mailkit import (
    TASK,
    ZIP,
    PASSWORD,
    SMTP_PASSWORD,
    deliver,
    mail,
    make_pdf,
    make_zip,
)

REPO = Path(__file__).resolve().parents[3]
AECC = Path(sys.executable).parent / "aecc"


@pytest.fixture(autouse=True)
def passwords(monkeypatch):
    monkeypatch.setenv("AECC_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("AECC_SMTP_PASSWORD", SMTP_PASSWORD)


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_watch_wakes_on_new_mail_stops_at_the_deadline_and_marks_late_mail(dovecot, certs, mailbox_folder, smtp,
                                                                          tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    until = now + dt.timedelta(seconds=8)
    deliver(dovecot, certs, mailbox_folder, [mail("Ann <ann@x.example>", "early", "<early@x>")])
    deliver(dovecot, certs, mailbox_folder, [mail("Bo <bo@x.example>", "late", "<late@x>",
                                                  [(make_zip("bo"), ZIP, "bo.zip")])],
            when=until + dt.timedelta(hours=1))
    (tmp_path / "data").mkdir()
    spec = BatchSpec(inputs=(dovecot.url(mailbox_folder),), out=tmp_path / "results",
                     settings=ScoreSettings(data=tmp_path / "data", tasks=resolve_tasks([str(TASK)])),
                     mail=MailOptions(ca_file=certs.ca, imap_done=f"{mailbox_folder}_done", reply=smtp.url,
                                      until=iso(until)))

    def later() -> None:  # arrives while the watch waits: IDLE must wake it (the poll is 60 s)
        time.sleep(3)
        deliver(dovecot, certs, mailbox_folder, [mail("Cy <cy@x.example>", "meanwhile", "<meanwhile@x>")])

    threading.Thread(target=later, daemon=True).start()
    started = time.monotonic()
    code = watch(spec, until, connect=lambda: pytest.fail("nothing here needs the engine"), poll_s=60)
    elapsed = time.monotonic() - started

    assert code == 0
    assert 7 <= elapsed < 20  # stopped at the deadline, not a poll later
    answered = {m["In-Reply-To"]: m for _, m in smtp.received}
    assert sorted(answered) == ["<early@x>", "<late@x>", "<meanwhile@x>"]
    state = reduce(read_events(spec.out))
    (late,) = [u for u in state.unusable if u["reason"] == UnusableReason.LATE.value]
    assert late["message_id"] == "<late@x>" and late["received"] == iso(until + dt.timedelta(hours=1))
    assert late["received"] in late["detail"] and iso(until) in late["detail"]
    assert "deadline has passed" in answered["<late@x>"].get_body().get_content()
    passes = [e for e in read_events(spec.out) if e.kind is EventKind.WATCH and e.state == "pass"]
    assert len(passes) >= 3  # the first, the one IDLE woke for Cy's mail, the last after the deadline
    watching = watch_state(spec.out)
    assert watching["status"] == "stopped (deadline)" and watching["until"] == iso(until)
    assert watching["answers"]["sent"] == 3
    client = dovecot.client(certs)
    try:
        client.select_folder(mailbox_folder)
        assert client.search(["ALL"]) == []
    finally:
        client.logout()


def test_accept_late_keeps_late_mail_with_its_server_time(dovecot, certs, mailbox_folder, tmp_path):
    until = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    deliver(dovecot, certs, mailbox_folder, [mail("Bo <bo@x.example>", "late", "<late@x>",
                                                  [(make_zip("bo"), ZIP, "bo.zip"), (make_pdf(1), "application/pdf",
                                                                                     "r.pdf")])])
    (tmp_path / "data").mkdir()
    spec = BatchSpec(inputs=(dovecot.url(mailbox_folder),), out=tmp_path / "results",
                     settings=ScoreSettings(data=tmp_path / "data", tasks=resolve_tasks([str(TASK)])),
                     mail=MailOptions(ca_file=certs.ca, until=iso(until), accept_late=True))
    journal = Journal(tmp_path / "results")
    try:
        inbox = read_inbox(spec, journal, tmp_path / "att")
    finally:
        journal.close()
    (arrival,) = inbox.arrivals
    assert inbox.unusable == ()
    assert any(w.startswith(f"arrived late: the server received it at {arrival.received}") for w in arrival.warnings)


def _watch(url: str, smtp, certs, data: Path, out: Path, done: str, log: Path) -> subprocess.Popen:
    until = iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10))
    return subprocess.Popen(
        [str(AECC), "watch", url, "--until", until, "--reply", smtp.url, "--ca-file", str(certs.ca),
         "--imap-done", done, "--data", str(data), "--tasks", str(TASK), "--out", str(out), "--poll", "1"],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=dict(os.environ))


def _until(predicate, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def test_a_killed_watch_resumes_without_processing_or_answering_twice_and_leaks_no_password(
        dovecot, certs, mailbox_folder, smtp, tmp_path):
    mails = [mail(f"P{i} <p{i}@x.example>", f"entry {i}", f"<entry-{i}@x.example>",
                  [(make_zip(f"z{i}"), ZIP, f"z{i}.zip")] if i % 4 == 0 else []) for i in range(40)]
    deliver(dovecot, certs, mailbox_folder, mails)
    from harness import demodata

    data = tmp_path / "data"
    demodata.generate(data, ["tiny_tones"], seed=0)
    out, log = tmp_path / "results", tmp_path / "watch.log"
    done = f"{mailbox_folder}_done"
    url = dovecot.url(mailbox_folder)

    first = _watch(url, smtp, certs, data, out, done, log)
    try:
        _until(lambda: len(smtp.received) >= 3 or first.poll() is not None, 120, "the first answers", step=0.005)
        ps = subprocess.run(["ps", "-eo", "pid,args", "ww"], capture_output=True, text=True).stdout
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert len(smtp.received) < 40, "the kill came after the work: it proves nothing"
    assert "killed" in watch_state(out)["status"]
    killed_at = reduce(read_events(out))
    in_flight = {k for k, v in reply_states(read_events(out)).items() if v["state"] == ReplyState.RECORDED.value}

    second = _watch(url, smtp, certs, data, out, done, log)
    try:
        def finished() -> bool:
            client = dovecot.client(certs)
            try:
                client.select_folder(mailbox_folder)
                return client.search(["ALL"]) == [] and len(smtp.received) >= 40
            finally:
                client.logout()

        _until(finished, 120, "every mail answered and moved")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 130
    finally:
        if second.poll() is None:
            second.kill()

    # each mail answered; a duplicate only for an answer the kill caught in flight, with the same id
    replies_to = Counter(m["In-Reply-To"] for _, m in smtp.received)
    assert set(replies_to) == {f"<entry-{i}@x.example>" for i in range(40)}
    twice = {k for k, n in replies_to.items() if n > 1}
    assert len(twice) <= 1 and twice <= in_flight
    for key in twice:
        assert len({m["Message-ID"] for _, m in smtp.received if m["In-Reply-To"] == key}) == 1
    # each mail processed once: one unusable record or one arrival per mail, none added by the restart
    state = reduce(read_events(out))
    assert len(state.unusable) == 30 and len(state.submissions) == 10
    assert all(len(s.arrivals) == 1 and s.state.value == "excluded" for s in state.submissions.values())
    assert len(killed_at.unusable) + sum(len(s.arrivals) for s in killed_at.submissions.values()) <= 40
    events = read_events(out)
    assert Counter(e.data.get("source") for e in events if e.kind is EventKind.UNUSABLE).most_common(1)[0][1] == 1
    client = dovecot.client(certs)
    try:
        client.select_folder(done)
        assert len(client.search(["ALL"])) == 40
    finally:
        client.logout()

    status = subprocess.run([str(AECC), "status", str(out)], capture_output=True, text=True)
    assert "watch: stopped (interrupted)" in status.stderr + status.stdout
    doc = json.loads(subprocess.run([str(AECC), "status", str(out), "--json"], capture_output=True,
                                    text=True).stdout)
    jsonschema.validate(doc, schemas.load("status"))
    assert doc["watch"]["status"] == "stopped (interrupted)" and doc["watch"]["answers"]["sent"] >= 40
    # no password anywhere: RESULTS, the harness's logs and home, the output, ps
    places = [p for root in (out, Path(os.environ["AECC_HOME"])) for p in root.rglob("*") if p.is_file()]
    assert len(places) > 3
    for secret in (PASSWORD, SMTP_PASSWORD):
        for path in places + [log]:
            assert secret.encode() not in path.read_bytes(), path
        assert secret not in ps and secret not in status.stdout + status.stderr
    assert f"{url}" in ps  # ps did show the watch

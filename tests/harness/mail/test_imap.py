"""IMAP source invariant: a folder on a real IMAP server (Dovecot) gives the batch exactly what the same
mails give from an mbox file; connections are TLS, checked against the CA given, with the password
never taken from an address; an oversize attachment is refused from BODYSTRUCTURE without its bytes
crossing the network; a connection dropped mid-fetch is reopened and reading resumes (an
infrastructure error only when it keeps dropping); a processed mail is moved (or flagged) and never
read again, recognised by its Message-ID even when it comes back, and a resent ZIP is one submission.
"""

from __future__ import annotations

import mailbox
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.bulk.inbox import UnusableReason
from harness.bulk.run import BatchSpec, plan_batch
from harness.errors import InfraError, UsageError
from harness.journal import Journal, SubmissionState, read_events, reduce
from harness.mailbox.config import MailOptions
from harness.mailbox.imap import PROCESSED_FLAG
from harness.bulk.mail_source import mark_processed, read_inbox
from harness.pipelines.score import ScoreSettings
from harness.tasks.arguments import resolve_tasks
from tests.support.mailkit import (
    PDF,
    TASK,
    ZIP,
    PASSWORD,
    deliver,
    good_zip,
    mail,
    make_pdf,
    make_zip,
    raw,
)



@pytest.fixture(autouse=True)
def imap_password(monkeypatch):
    monkeypatch.setenv("AECC_IMAP_PASSWORD", PASSWORD)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


def spec(inputs, out: Path, data: Path, **mail_options) -> BatchSpec:
    settings = ScoreSettings(data=data, tasks=resolve_tasks([str(TASK)]))
    return BatchSpec(inputs=tuple(inputs), out=out, settings=settings, mail=MailOptions(**mail_options))


def mixed_mails() -> list:
    good = good_zip()
    return [
        mail("Ann Lee <ann@uni.example>", "AECC submission: team Ann", "<ann-1@uni.example>",
             [(good, ZIP, "ann.zip"), (make_pdf(4), PDF, "ann_report.pdf")]),
        mail("Bo <bo@lab.example>", "Bo's encoder", "<bo-1@lab.example>",
             [(make_zip("bo"), ZIP, "bo.zip"), (make_pdf(9), PDF, "bo.pdf")],
             date="Wed, 05 Mar 2025 10:00:00 +0100"),
        mail("Cy <cy@x.example>", "report only", "<cy-1@x.example>", [(make_pdf(2), PDF, "cy.pdf")]),
        mail("Dee <dee@x.example>", "two zips", "<dee-1@x.example>",
             [(make_zip("d1"), ZIP, "a.zip"), (make_zip("d2"), ZIP, "b.zip")]),
        mail("Éva Łukasz <eva@uni.example>", "Soumission: modèle π", "<eva-1@uni.example>",
             [(make_zip("eva"), ZIP, "modèle_π_ß.zip"), (make_pdf(3), PDF, "rapport é.pdf")]),
        mail("Ann Lee <ann@uni.example>", "resend", "<ann-2@uni.example>", [(good, ZIP, "ann-again.zip")],
             date="Thu, 06 Mar 2025 09:00:00 +0000"),
    ]


def _journal_view(out: Path) -> dict:
    """What the batch recorded, without where each mail came from (paths, sources, server times)."""
    state = reduce(read_events(out))
    drop = ("source", "path", "received")
    subs = {sha: (sub.state.value, sub.detail.get("stage"), sub.detail.get("reason"),
                  sorted((tuple(sorted((k, repr(v)) for k, v in a.items() if k not in drop))
                          for a in sub.arrivals)))
            for sha, sub in state.submissions.items()}
    unusable = sorted(tuple(sorted((k, repr(v)) for k, v in u.items() if k not in drop)) for u in state.unusable)
    return {"submissions": subs, "unusable": unusable}


def test_an_imap_folder_gives_the_batch_what_the_same_mbox_gives(dovecot, certs, mailbox_folder, data_dir,
                                                                  tmp_path):
    mails = mixed_mails()
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for msg in mails:
        box.add(raw(msg))
    box.close()
    deliver(dovecot, certs, mailbox_folder, mails)

    by_mbox = spec([tmp_path / "inbox.mbox"], tmp_path / "r-mbox", data_dir)
    by_imap = spec([dovecot.url(mailbox_folder)], tmp_path / "r-imap", data_dir, ca_file=certs.ca)
    planned_mbox, refused_mbox, unusable_mbox, _ = plan_batch(by_mbox)
    planned_imap, refused_imap, unusable_imap, _ = plan_batch(by_imap)

    assert (refused_imap, unusable_imap) == (refused_mbox, unusable_mbox) == (2, 2)
    assert sorted(p.submission.sha256 for p in planned_imap) == sorted(p.submission.sha256 for p in planned_mbox)
    view = _journal_view(tmp_path / "r-imap")
    assert view == _journal_view(tmp_path / "r-mbox")
    # the view holds what matters: the resend is an alias, the refusals are recorded, names kept raw
    states = sorted(s[0] for s in view["submissions"].values())
    assert states == ["excluded", "excluded", "queued"]
    assert any("modèle_π_ß.zip" in repr(s) for s in view["submissions"].values())
    reasons = sorted(dict(u)["reason"] for u in view["unusable"])
    assert reasons == [repr("no_zip"), repr("several_zips")]
    # IMAP arrivals carry the server's time and their own source
    state = reduce(read_events(tmp_path / "r-imap"))
    arrivals = [a for s in state.submissions.values() for a in s.arrivals]
    assert all(a["source"].startswith(dovecot.url(mailbox_folder) + "#") for a in arrivals)
    assert all(a["received"] and a["received"].endswith("Z") for a in arrivals)


def test_an_oversize_attachment_is_refused_before_it_is_downloaded(dovecot, certs, mailbox_folder, relay, tmp_path):
    cap = 256 * 1024
    big = make_zip("big", pad=1024 * 1024)
    deliver(dovecot, certs, mailbox_folder, [
        mail("Big <big@x.example>", "huge", "<big-1@x.example>", [(big, ZIP, "huge.zip")]),
        mail("Small <small@x.example>", "small", "<small-1@x.example>", [(make_zip("small"), ZIP, "s.zip")]),
    ])
    s = spec([dovecot.url(mailbox_folder, port=relay.port)], tmp_path / "r", tmp_path, ca_file=certs.ca)
    journal = Journal(tmp_path / "r")
    try:
        inbox = read_inbox(s, journal, tmp_path / "att", max_attachment_bytes=cap)
    finally:
        journal.close()
    (unusable,) = inbox.unusable
    assert unusable.reason is UnusableReason.TOO_LARGE
    assert "huge.zip" in unusable.detail and "without downloading" in unusable.detail
    assert unusable.sender_address == "big@x.example" and unusable.message_id == "<big-1@x.example>"
    assert [a.file_name for a in inbox.arrivals] == ["s.zip"]
    assert relay.server_bytes < cap  # the 1 MiB attachment never crossed the network
    assert sorted(p.suffix for p in (tmp_path / "att").iterdir()) == [".zip"]


def test_a_connection_dropped_mid_fetch_is_reopened_and_reading_resumes(dovecot, certs, mailbox_folder, relay,
                                                                         tmp_path):
    mails = [mail(f"P{i} <p{i}@x.example>", f"sub {i}", f"<p{i}@x.example>",
                  [(make_zip(f"p{i}", pad=100_000), ZIP, f"p{i}.zip")]) for i in range(6)]
    deliver(dovecot, certs, mailbox_folder, mails)
    s = spec([dovecot.url(mailbox_folder, port=relay.port)], tmp_path / "r", tmp_path, ca_file=certs.ca)

    def read(att: str):
        journal = Journal(tmp_path / "r")
        try:
            return read_inbox(s, journal, tmp_path / att)
        finally:
            journal.close()

    clean = read("clean")
    relay.cut_after = 250_000  # inside the FETCH of the bodies
    resumed = read("cut")
    assert relay.cuts == 1
    assert [a.sha256 for a in resumed.arrivals] == [a.sha256 for a in clean.arrivals]
    assert len(clean.arrivals) == 6

    relay.cut_always = 150_000
    started = time.monotonic()
    with pytest.raises(InfraError, match="kept dropping"):
        read("never")
    assert relay.cuts >= 4 and time.monotonic() - started < 30


def test_tls_is_checked_and_passwords_come_only_from_their_sources(dovecot, certs, mailbox_folder, tmp_path,
                                                                   monkeypatch):
    deliver(dovecot, certs, mailbox_folder, [mail("A <a@x.example>", "s", "<a@x>", [(make_zip("a"), ZIP, "a.zip")])])

    def read(url: str, **options):
        journal = Journal(tmp_path / "r")
        try:
            return read_inbox(spec([url], tmp_path / "r", tmp_path, **options), journal, tmp_path / "att")
        finally:
            journal.close()

    # imaps:// and imap:// + STARTTLS, against the CA given
    assert len(read(dovecot.url(mailbox_folder), ca_file=certs.ca).arrivals) == 1
    starttls = dovecot.url(mailbox_folder, port=dovecot.imap_port, scheme="imap")
    assert len(read(starttls, ca_file=certs.ca).arrivals) == 1
    # a certificate this machine does not trust is refused, as is one of another CA
    with pytest.raises(UsageError, match="not trusted"):
        read(dovecot.url(mailbox_folder))
    with pytest.raises(UsageError, match="not trusted"):
        read(starttls, ca_file=certs.other_ca)
    # a password in the address is refused before any connection, and not repeated
    with pytest.raises(UsageError, match="password in a server address") as err:
        read(dovecot.url(mailbox_folder).replace("aecc@", "aecc:hunter2@"), ca_file=certs.ca)
    assert "hunter2" not in str(err.value)
    cli = subprocess.run([str(Path(sys.executable).parent / "aecc"), "score", "imaps://aecc:hunter2@127.0.0.1/INBOX",
                          "--data", str(tmp_path), "--tasks", str(TASK), "--out", str(tmp_path / "cli")],
                         capture_output=True, text=True, check=False)
    assert cli.returncode == 2 and "password in a server address" in cli.stderr
    assert "hunter2" not in cli.stdout + cli.stderr and not (tmp_path / "cli").exists()
    # no password anywhere; then a wrong one; then the file, then ~/.netrc
    monkeypatch.delenv("AECC_IMAP_PASSWORD")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(UsageError, match="no password"):
        read(dovecot.url(mailbox_folder), ca_file=certs.ca)
    (tmp_path / "pw").write_text("wrong\n")
    with pytest.raises(UsageError, match="refused the login"):
        read(dovecot.url(mailbox_folder), ca_file=certs.ca, password_file=tmp_path / "pw")
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    assert len(read(dovecot.url(mailbox_folder), ca_file=certs.ca, password_file=tmp_path / "pw").arrivals) == 1
    netrc = tmp_path / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login aecc password {PASSWORD}\n")
    netrc.chmod(0o600)
    assert len(read(dovecot.url(mailbox_folder), ca_file=certs.ca).arrivals) == 1


def test_a_burst_is_processed_once_moved_and_recognised_when_it_comes_back(dovecot, certs, mailbox_folder, relay,
                                                                           data_dir, tmp_path):
    mails = []
    for i in range(200):
        attachments = [(make_zip(f"b{i}"), ZIP, f"b{i}.zip")] if i % 4 == 0 else [(make_pdf(1), PDF, "r.pdf")]
        mails.append(mail(f"S{i} <s{i}@x.example>", f"burst {i}", f"<burst-{i}@x.example>", attachments))
    deliver(dovecot, certs, mailbox_folder, mails)
    done = f"{mailbox_folder}_done"
    url = dovecot.url(mailbox_folder, port=relay.port)
    s = spec([url], tmp_path / "r", data_dir, ca_file=certs.ca, imap_done=done)

    started = time.monotonic()
    planned, refused, unusable, _ = plan_batch(s)
    assert (len(planned), refused, unusable) == (0, 50, 150)  # every ZIP refused at intake (no encoder)
    assert mark_processed(s) == 200
    assert time.monotonic() - started < 60
    client = dovecot.client(certs)
    try:
        client.select_folder(mailbox_folder)
        assert client.search(["ALL"]) == []
        client.select_folder(done)
        assert len(client.search(["ALL"])) == 200
    finally:
        client.logout()

    # the same mail delivered again (same Message-ID and sender): recognised, not downloaded, moved
    before = relay.server_bytes
    deliver(dovecot, certs, mailbox_folder, [mails[0]])
    planned, refused, unusable, _ = plan_batch(s)
    assert (len(planned), refused, unusable) == (0, 0, 0)
    assert relay.server_bytes - before < 20_000  # envelopes and structure, not the mail
    assert mark_processed(s) == 1
    state = reduce(read_events(tmp_path / "r"))
    assert len(state.unusable) == 150
    assert sum(len(sub.arrivals) for sub in state.submissions.values()) == 50


def test_without_a_done_folder_processed_mail_is_flagged_and_a_resent_zip_is_one_submission(
        dovecot, certs, mailbox_folder, data_dir, tmp_path):
    good = good_zip()
    deliver(dovecot, certs, mailbox_folder, [
        mail("Ann <ann@x.example>", "first", "<ann-1@x>", [(good, ZIP, "a.zip")]),
        mail("Ann <ann@x.example>", "again", "<ann-2@x>", [(good, ZIP, "a-again.zip")]),
        mail("Bo <bo@x.example>", "nothing", "<bo-1@x>", []),
    ])
    s = spec([dovecot.url(mailbox_folder)], tmp_path / "r", data_dir, ca_file=certs.ca)
    (planned,), refused, unusable, _ = plan_batch(s)
    assert [a["file_name"] for a in planned.arrivals] == ["a.zip", "a-again.zip"]
    # Bo's mail is final (unusable); Ann's submission still needs its run: only Bo's is marked
    assert mark_processed(s) == 1
    journal = Journal(tmp_path / "r")
    journal.submission(planned.submission.sha256, SubmissionState.DONE, status="complete")  # as the run would
    journal.close()
    assert mark_processed(s) == 2
    client = dovecot.client(certs)
    try:
        client.select_folder(mailbox_folder)
        flagged = client.get_flags(client.search(["ALL"]))
        assert len(flagged) == 3 and all(PROCESSED_FLAG in f for f in flagged.values())
    finally:
        client.logout()
    again, refused, unusable, _ = plan_batch(s)
    assert (again, refused, unusable) == ([], 0, 0)

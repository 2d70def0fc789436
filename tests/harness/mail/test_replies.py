"""Answer invariant: each mail gets one answer, from a real SMTP server's point of view (aiosmtpd with
STARTTLS and a login), threaded to the mail, holding only that mail's own facts (file names, sha256,
intake verdict, the check verdict with levels and fixes, the report's page warning, the check report
attached) and no scores unless asked; a submission's answer waits for its check; automatic mail,
forged senders and mailer daemons are never answered, Reply-To is never used, and a sender gets at
most the hourly cap; an answer recorded but not confirmed (a crash, a server down) is sent on the
next pass with the same Message-ID, a refused one is not retried; a dry run writes files only.
"""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
from pathlib import Path

import pytest

from checker.verdict import summarise
from harness.bulk.run import BatchSpec, plan_batch
from harness.errors import InfraError, UsageError
from harness.journal import EventKind, Journal, StageState, read_events, reduce
from harness.mailbox.config import MailOptions
from harness.mailbox.replies import Replier, ReplyState, reply_states
from harness.pipelines.score import ScoreSettings
from harness.tasks.arguments import resolve_tasks
from tests.support.mailkit import (
    PDF,
    TASK,
    ZIP,
    SMTP_PASSWORD,
    SMTP_USER,
    free_port,
    good_zip,
    mail,
    make_pdf,
    make_zip,
    raw,
)



@pytest.fixture(autouse=True)
def smtp_password(monkeypatch):
    monkeypatch.setenv("AECC_SMTP_PASSWORD", SMTP_PASSWORD)


def planned(tmp_path: Path, mails: list, **options) -> tuple[BatchSpec, list]:
    """RESULTS with `mails` (read from an mbox) planned: intake done, nothing scored."""
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for msg in mails:
        box.add(raw(msg))
    box.close()
    (tmp_path / "data").mkdir(exist_ok=True)
    spec = BatchSpec(inputs=(tmp_path / "inbox.mbox",), out=tmp_path / "results",
                     settings=ScoreSettings(data=tmp_path / "data", tasks=resolve_tasks([str(TASK)])),
                     mail=MailOptions(**options))
    plan, _, _, _ = plan_batch(spec)
    return spec, plan


def replier(spec: BatchSpec, journal: Journal, said: list | None = None) -> Replier:
    return Replier(spec.out, journal, spec.mail, say=(said.append if said is not None else lambda m: None))


def send(spec: BatchSpec, sha256: str | None = None, said: list | None = None) -> int:
    journal = Journal(spec.out)
    try:
        return replier(spec, journal, said).send_due(sha256=sha256)
    finally:
        journal.close()


def check_ended(spec: BatchSpec, sha256: str, checks: list[dict]) -> dict:
    """The journal and RESULTS as the check stage leaves them (harness.pipelines.score)."""
    summary = summarise(checks, expect_rule_checks=False)
    report = {"schema_version": "test", "checks": checks}
    (spec.out / sha256).mkdir(parents=True, exist_ok=True)
    (spec.out / sha256 / "check.json").write_text(json.dumps(report))
    journal = Journal(spec.out)
    journal.stage(sha256, "check", StageState.FAILED, key="k", checks={"summary": summary.to_dict()})
    journal.close()
    return report


def body(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_each_mail_gets_one_threaded_answer_with_its_verdicts_and_the_check_report(smtp, certs, tmp_path):
    mails = [
        mail("Ann Lee <ann@uni.example>", "AECC submission", "<ann-1@uni.example>",
             [(good_zip(), ZIP, "ann.zip"), (make_pdf(9), PDF, "ann report.pdf")],
             headers={"References": "<earlier@uni.example>"}),
        mail("Bo <bo@lab.example>", "Bo's encoder", "<bo-1@lab.example>", [(make_zip("bo"), ZIP, "bo.zip")]),
        mail("Cy <cy@x.example>", "report only", "<cy-1@x.example>", [(make_pdf(2), PDF, "cy.pdf")]),
    ]
    spec, plan = planned(tmp_path, mails, reply=smtp.url, ca_file=certs.ca)
    (ann,) = plan
    sha = ann.submission.sha256

    # before the check: the mails that will never reach one are answered, Ann's waits
    assert send(spec) == 2
    assert sorted(rcpt for rcpts, _ in smtp.received for rcpt in rcpts) == ["bo@lab.example", "cy@x.example"]
    by_to = {m["To"]: m for _, m in smtp.received}
    assert "Intake: REFUSED" in body(by_to["bo@lab.example"]) and "bo.zip" in body(by_to["bo@lab.example"])
    assert "no ZIP attachment" in body(by_to["cy@x.example"])
    assert send(spec, sha256=sha) == 0

    report = check_ended(spec, sha, [
        {"id": "output_dim_match", "status": "failed", "message": "output has 3 dims, attribute says 4",
         "fix": "make output_dim match the last axis"},
        {"id": "deterministic", "status": "warning", "message": "two runs differ", "fix": "seed the dropout"}])
    assert send(spec, sha256=sha) == 1
    _, answer = smtp.received[-1]
    text = body(answer)
    assert answer["To"] == "ann@uni.example" and answer["From"] == SMTP_USER
    assert answer["Subject"] == "Re: AECC submission"
    assert answer["In-Reply-To"] == "<ann-1@uni.example>"
    assert answer["References"].split() == ["<earlier@uni.example>", "<ann-1@uni.example>"]
    assert answer["Auto-Submitted"] == "auto-replied"
    assert answer["Message-ID"].startswith("<aecc-reply.")
    for fact in ("ann.zip", sha, "ann report.pdf", "Intake: ACCEPTED", "will be excluded", "rule (",
                 "output_dim_match", "make output_dim match the last axis", "advice (", "seed the dropout",
                 "report has 9 pages (the rules allow 6)"):
        assert fact in text, fact
    assert "Scores" not in text and "track" not in text
    (attached,) = [p for p in answer.iter_attachments()]
    assert attached.get_filename() == "check-report.json"
    assert json.loads(attached.get_content()) == report
    # once: nothing is due any more
    assert send(spec) == 0 and len(smtp.received) == 3


def test_automatic_mail_forged_senders_and_daemons_are_never_answered(smtp, certs, tmp_path):
    good = good_zip()
    mails = [
        mail("Vic <vic@uni.example>", "our entry", "<vic-1@uni.example>", [(good, ZIP, "vic-secret-name.zip")]),
        # a vacation responder answering our answer, the RFC 3834 way and the old way
        mail("Vic <vic@uni.example>", "Re: Re: our entry", "<vac-1@uni.example>",
             headers={"Auto-Submitted": "auto-replied", "In-Reply-To": "<aecc-reply.0123@organizers.example>"}),
        mail("Vic <vic@uni.example>", "Out of office", "<vac-2@uni.example>",
             headers={"In-Reply-To": "<aecc-reply.4567@organizers.example>"}),
        mail("News <news@lists.example>", "digest", "<n-1@lists.example>", headers={"Precedence": "bulk"}),
        mail("Mail Delivery System <MAILER-DAEMON@mx.example>", "Undelivered", "<bounce-1@mx.example>"),
        # a From our server found forged (DMARC), and one it could not judge, with a Reply-To elsewhere
        mail("Vic <vic@uni.example>", "forged", "<forged-1@evil.example>", [(make_zip("f"), ZIP, "f.zip")],
             headers={"Authentication-Results": "mx.organizers.example; dmarc=fail header.from=uni.example"}),
        mail("Vic <vic@uni.example>", "copy", "<copy-1@evil.example>", [(good, ZIP, "copy.zip")],
             headers={"Reply-To": "attacker@evil.example"}),
    ]
    spec, plan = planned(tmp_path, mails, reply=smtp.url, ca_file=certs.ca)
    check_ended(spec, plan[0].submission.sha256, [])
    assert send(spec) == 2
    recipients = [rcpt for rcpts, _ in smtp.received for rcpt in rcpts]
    assert recipients == ["vic@uni.example", "vic@uni.example"]  # never the Reply-To
    bodies = {m["In-Reply-To"]: body(m) for _, m in smtp.received}
    # the same ZIP sent twice: each answer names only its own mail's file
    assert "copy.zip" in bodies["<copy-1@evil.example>"]
    assert "vic-secret-name" not in bodies["<copy-1@evil.example>"]
    assert "copy.zip" not in bodies["<vic-1@uni.example>"]
    skipped = {k: v["reason"] for k, v in reply_states(read_events(spec.out)).items()
               if v["state"] == ReplyState.SKIPPED.value}
    assert sorted(skipped) == sorted(["<vac-1@uni.example>", "<vac-2@uni.example>", "<n-1@lists.example>",
                                      "<bounce-1@mx.example>", "<forged-1@evil.example>"])
    assert "Auto-Submitted" in skipped["<vac-1@uni.example>"]
    assert "reply to one of our answers" in skipped["<vac-2@uni.example>"]
    assert "DMARC" in skipped["<forged-1@evil.example>"]
    assert "system address" in skipped["<bounce-1@mx.example>"]


def test_a_sender_gets_at_most_the_hourly_cap(smtp, certs, tmp_path):
    mails = [mail("Flood <flood@x.example>", f"try {i}", f"<flood-{i}@x.example>") for i in range(8)]
    spec, _ = planned(tmp_path, mails, reply=smtp.url, ca_file=certs.ca, reply_cap=5)
    said: list = []
    assert send(spec, said=said) == 5
    assert len(smtp.received) == 5
    assert sum("times in the past hour" in line for line in said) == 3
    assert send(spec) == 0


def test_an_answer_recorded_but_not_confirmed_goes_out_once_with_the_same_message_id(smtp, certs, tmp_path):
    spec, _ = planned(tmp_path, [mail("Cy <cy@x.example>", "hi", "<cy-1@x.example>")],
                      reply=smtp.url, ca_file=certs.ca)
    journal = Journal(spec.out)
    (answer,) = replier(spec, journal).due(reduce(read_events(spec.out)), read_events(spec.out))
    # the process died right after recording it
    journal.append(EventKind.REPLY, key=answer.key, state=ReplyState.RECORDED.value,
                   data={"source": answer.source, "to": answer.to, "message_id": answer.message_id})
    journal.close()
    assert send(spec) == 1
    (_, sent), = smtp.received
    assert sent["Message-ID"] == answer.message_id
    assert send(spec) == 0 and len(smtp.received) == 1


def test_a_server_down_leaves_the_answer_recorded_and_a_refusal_is_final(smtp, certs, tmp_path):
    spec, _ = planned(tmp_path, [mail("Cy <cy@x.example>", "hi", "<cy-1@x.example>"),
                                 mail("Gone <gone@x.example>", "hi", "<gone-1@x.example>")],
                      reply=f"smtp://{SMTP_USER}@127.0.0.1:9", ca_file=certs.ca)
    with pytest.raises(InfraError, match="cannot reach the SMTP server"):
        send(spec)
    states = reply_states(read_events(spec.out))
    assert [v["state"] for v in states.values()] == [ReplyState.RECORDED.value]

    smtp.refuse.add("gone@x.example")
    up = BatchSpec(inputs=spec.inputs, out=spec.out, settings=spec.settings,
                   mail=MailOptions(reply=smtp.url, ca_file=certs.ca))
    assert send(up) == 1
    states = reply_states(read_events(spec.out))
    assert sorted(v["state"] for v in states.values()) == [ReplyState.FAILED.value, ReplyState.SENT.value]
    assert send(up) == 0 and [m["To"] for _, m in smtp.received] == ["cy@x.example"]


def test_a_dry_run_writes_the_answers_and_sends_nothing(smtp, tmp_path):
    spec, _ = planned(tmp_path, [mail("Cy <cy@x.example>", "hi", "<cy-1@x.example>")],
                      reply_dry_run=tmp_path / "answers", reply_from="aecc@organizers.example")
    assert send(spec) == 1
    (written,) = (tmp_path / "answers").iterdir()
    msg = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "cy@x.example" and msg["In-Reply-To"] == "<cy-1@x.example>"
    assert smtp.received == [] and send(spec) == 0


def test_plain_text_smtp_needs_allow_plaintext(certs, tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=lambda *a: AuthResult(success=True))
    controller.start()
    try:
        url = f"smtp://{SMTP_USER}@127.0.0.1:{port}"
        spec, _ = planned(tmp_path, [mail("Cy <cy@x.example>", "hi", "<cy-1@x.example>")], reply=url)
        with pytest.raises(UsageError, match="offers no STARTTLS"):
            send(spec)
        plain = BatchSpec(inputs=spec.inputs, out=spec.out, settings=spec.settings,
                          mail=MailOptions(reply=url, allow_plaintext=True))
        said: list = []
        assert send(plain, said=said) == 1 and len(received) == 1
        assert any("plain text" in line for line in said)
    finally:
        controller.stop()

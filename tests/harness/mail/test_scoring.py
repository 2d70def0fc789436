"""Mail loop end to end, the one scoring run of this folder: submissions read over IMAP are scored as
`aecc score` scores them, each sender's answer goes out when the check stage has ended and before
the submission is scored (journal order), holds the check verdict and the check report exactly as
RESULTS keeps it and no scores, and the finished mail is moved to the done folder.
"""

from __future__ import annotations

import json

import pytest

from harness.bulk.run import BatchSpec
from harness.journal import EventKind, read_events, reduce
from harness.mailbox.config import MailOptions
from harness.mail.loop import run_mail_batch
from harness.mailbox.replies import ReplyState
from harness.pipelines.score import ScoreSettings
from harness.tasks.arguments import resolve_tasks
from tests.support.mailkit import (
    TASK,
    PASSWORD,
    SMTP_PASSWORD,
    deliver,
    good_zip,
    mail,
    make_pdf,
)

pytestmark = pytest.mark.slow



def test_mail_over_imap_is_scored_and_answered_after_the_check_before_the_score(client, dovecot, certs, smtp,
                                                                               mailbox_folder, tmp_path,
                                                                               monkeypatch):
    from harness import demodata

    monkeypatch.setenv("AECC_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("AECC_SMTP_PASSWORD", SMTP_PASSWORD)
    data = tmp_path / "data"
    demodata.generate(data, ["tiny_tones"], seed=0)
    deliver(dovecot, certs, mailbox_folder, [
        mail("Ann Lee <ann@uni.example>", "AECC submission", "<ann-1@uni.example>",
             [(good_zip(), "application/zip", "ann.zip"), (make_pdf(7), "application/pdf", "ann.pdf")]),
        mail("Bo <bo@lab.example>", "forgot the zip", "<bo-1@lab.example>"),
    ])
    done = f"{mailbox_folder}_done"
    spec = BatchSpec(inputs=(dovecot.url(mailbox_folder),), out=tmp_path / "results", retries=0,
                     settings=ScoreSettings(data=data, tasks=resolve_tasks([str(TASK)]), repeats=1),
                     mail=MailOptions(ca_file=certs.ca, imap_done=done, reply=smtp.url))
    outcome = run_mail_batch(client, spec)

    assert outcome.exit_code == 0, outcome.errors
    (sha,) = outcome.results
    answers = {m["To"]: m for _, m in smtp.received}
    assert sorted(answers) == ["ann@uni.example", "bo@lab.example"]
    text = answers["ann@uni.example"].get_body(preferencelist=("plain",)).get_content()
    report = json.loads((spec.out / sha / "check.json").read_text())
    (attached,) = answers["ann@uni.example"].iter_attachments()
    assert json.loads(attached.get_content()) == report
    assert "Intake: ACCEPTED" in text and "passes" in text and sha in text
    assert "report has 7 pages" in text and "Scores" not in text

    events = read_events(spec.out)
    sent = next(e.ts for e in events if e.kind is EventKind.REPLY and e.state == ReplyState.SENT.value
                and e.data.get("to") == "ann@uni.example")
    check_end = next(e.ts for e in events if e.kind is EventKind.STAGE and e.sha256 == sha and e.stage == "check"
                     and e.state in ("done", "failed"))
    score_start = min(e.ts for e in events if e.kind is EventKind.STAGE and e.sha256 == sha and e.stage == "score")
    assert check_end < sent < score_start
    assert reduce(events).submissions[sha].state.value == "done"

    imap = dovecot.client(certs)
    try:
        imap.select_folder(mailbox_folder)
        assert imap.search(["ALL"]) == []
        imap.select_folder(done)
        assert len(imap.search(["ALL"])) == 2
    finally:
        imap.logout()

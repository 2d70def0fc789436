"""Inbox invariant: every mail, mailbox, ZIP and folder an organizer hands over becomes exactly one
arrival per submission (the ZIP's sha256 equal to its bytes', sender, UTC date, subject, report
pages, warnings) or one unusable entry with a stable reason, never an exception; broken MIME is
refused rather than guessed at; attachments are saved content-addressed, atomically and once; names
from mails are kept raw and shown escaped; and a bad path fails before any work.
"""

from __future__ import annotations

import datetime as dt
import email.message
import hashlib
import io
import json
import mailbox
import os
import tempfile
import stat
import time
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfWriter

from harness.bulk.inbox import (
    MAX_REPORT_PAGES,
    Arrival,
    ArrivalKind,
    Inbox,
    Report,
    Unusable,
    UnusableReason,
    read_inbox,
)
from harness.errors import UsageError
from harness.stages.rejection import escape_name
from tests.support.mailkit import make_pdf

REPO = Path(__file__).resolve().parents[3]
U = UnusableReason
EVIL = "\x1b[31mteam\u202egpj.zip"  # ANSI colour + right-to-left override: reads as "team" + "piz.jpg"


# ------------------------------------------------------------------------------------ builders

def make_zip(tag: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("encoder.py", date_time=(2025, 1, 1, 0, 0, 0))
        zf.writestr(info, f"class {tag}Encoder:\n    pass\n")
    return buf.getvalue()


def mail(sender: str | None, subject: str | None, date: str | None, msg_id: str | None,
         attachments: list[tuple[bytes, str, str | None]] = (), body: str = "Our submission.\n"
         ) -> email.message.EmailMessage:
    """A mail with (bytes, content type, file name) attachments."""
    msg = email.message.EmailMessage()
    for name, value in (("From", sender), ("To", "aecc@icme.example"), ("Subject", subject),
                        ("Date", date), ("Message-ID", msg_id)):
        if value is not None:
            msg[name] = value
    msg.set_content(body)
    for data, ctype, filename in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def zip_part(data: bytes, name: str | None = "submission.zip") -> tuple[bytes, str, str | None]:
    return data, "application/zip", name


def pdf_part(data: bytes, name: str | None = "report.pdf") -> tuple[bytes, str, str | None]:
    return data, "application/pdf", name


def forward(sender: str, date: str, original: email.message.EmailMessage) -> email.message.EmailMessage:
    outer = mail(sender, "Fwd: " + str(original["Subject"]), date, "<fwd-1@icme.example>",
                 body="Forwarding the submission below.\n")
    outer.add_attachment(original)  # message/rfc822
    return outer


def set_mtime(path: Path, when: str) -> None:
    stamp = dt.datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
    os.utime(path, (stamp, stamp))


def saved(attachments: Path) -> list[str]:
    return sorted(p.name for p in attachments.iterdir())


# ZIP contents of the mixed inbox, by who sent them
Z = {k: make_zip(k) for k in ("Ann", "Bo", "Cy", "D1", "D2", "Eve", "Fay", "Gus", "Hal", "Ivy", "Loose",
                              "Broken", "NoZip")}
SHA = {k: hashlib.sha256(v).hexdigest() for k, v in Z.items()}
PDF = {n: make_pdf(n) for n in (4, 5, 6, 9)}
PSHA = {n: hashlib.sha256(v).hexdigest() for n, v in PDF.items()}


def truncated(msg: email.message.EmailMessage) -> bytes:
    """The mail cut just before its closing boundary, as a failed upload or a full mailbox does."""
    raw = msg.as_bytes()
    return raw[:raw.rindex(b"\n--") + 1]


def with_bad_base64(msg: email.message.EmailMessage, data: bytes) -> bytes:
    """The mail with one character of the attachment's base64 replaced by one outside the alphabet."""
    import base64

    raw = msg.as_bytes()
    encoded = base64.encodebytes(data)[:40]
    assert encoded in raw
    return raw.replace(encoded, encoded[:20] + b"*" + encoded[21:])


# ------------------------------------------------------------------------------- the mixed inbox

@pytest.fixture()
def mixed(tmp_path: Path) -> dict:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # .eml: a ZIP and a 4-page report
    (inbox / "a_good.eml").write_bytes(mail(
        "Ann Lee <ann@uni.example>", "AECC submission: team Ann", "Tue, 04 Mar 2025 10:00:00 +0100",
        "<ann-1@uni.example>", [zip_part(Z["Ann"], "ann.zip"), pdf_part(PDF[4], "ann_report.pdf")]).as_bytes())
    # forwarded by the organizers' desk: the original, with its ZIP and report, in a message/rfc822 part
    original = mail("Bo Chen <bo@lab.example>", "Submission Bo", "Mon, 03 Mar 2025 12:00:00 +0000",
                    "<bo-1@lab.example>", [zip_part(Z["Bo"], "bo.zip"), pdf_part(PDF[5], "bo.pdf")])
    (inbox / "b_forwarded.eml").write_bytes(
        forward("Desk <desk@icme.example>", "Wed, 05 Mar 2025 08:00:00 -0500", original).as_bytes())
    # mbox: one good mail (its ZIP attached twice), one without a ZIP, one with two ZIPs
    box = mailbox.mbox(inbox / "c_box.mbox")
    box.add(mail("Cy <cy@x.example>", "Cy's encoder", "Thu, 06 Mar 2025 09:00:00 +0000", "<cy@x>",
                 [zip_part(Z["Cy"], "cy.zip"), zip_part(Z["Cy"], "cy-again.zip"), pdf_part(PDF[6], "cy.pdf")]))
    box.add(mail("Dee <dee@x.example>", "forgot the zip", "Thu, 06 Mar 2025 10:00:00 +0000", "<dee@x>",
                 [pdf_part(PDF[4], "dee.pdf")]))
    box.add(mail("Dan <dan@x.example>", "two versions", "Thu, 06 Mar 2025 11:00:00 +0000", "<dan@x>",
                 [zip_part(Z["D1"], "v1.zip"), zip_part(Z["D2"], "v2.zip"), pdf_part(PDF[4], "dan.pdf")]))
    box.flush()
    box.close()
    # Maildir: a 9-page report (already read, in cur/ with flags) and a mail with no PDF and no Date
    md = mailbox.Maildir(inbox / "d_maildir", create=True)
    eve = mailbox.MaildirMessage(mail("Eve <eve@y.example>", "Eve", "Fri, 07 Mar 2025 23:30:00 -0800",
                                      "<eve@y>", [zip_part(Z["Eve"], "eve.zip"), pdf_part(PDF[9], "eve.pdf")]))
    eve.set_subdir("cur")
    eve.add_flag("S")
    eve_key = md.add(eve)
    fay_key = md.add(mail("Fay <fay@y.example>", "Fay (no report)", None, "<fay@y>",
                          [zip_part(Z["Fay"], "fay.zip")]))
    md.close()
    # broken MIME: cut before its closing boundary; and invalid base64 in the ZIP
    (inbox / "e_truncated.eml").write_bytes(truncated(mail(
        "Tom <tom@z.example>", "cut short", "Sat, 08 Mar 2025 08:00:00 +0000", "<tom@z>",
        [zip_part(Z["Broken"], "tom.zip"), pdf_part(PDF[4])])))
    (inbox / "e_badb64.eml").write_bytes(with_bad_base64(mail(
        "Una <una@z.example>", "bad base64", "Sat, 08 Mar 2025 09:00:00 +0000", "<una@z>",
        [zip_part(Z["Broken"], "una.zip"), pdf_part(PDF[4])]), Z["Broken"]))
    # a loose ZIP next to the mails, and things that are ignored
    (inbox / "f_loose.zip").write_bytes(Z["Loose"])
    set_mtime(inbox / "f_loose.zip", "2025-03-01T12:00:00Z")
    (inbox / "notes.txt").write_text("From the organizers: remember to check the reports.\n")
    (inbox / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (inbox / "._f_loose.zip").write_bytes(b"\x00\x05\x16\x07")  # Finder metadata, not a ZIP
    (inbox / "misc").mkdir()
    (inbox / "misc" / "ignored.zip").write_bytes(Z["NoZip"])  # inbox folders are read one level deep
    # a folder of ZIPs, two with one mtime (then ordered by source)
    zips = tmp_path / "zips"
    zips.mkdir()
    for name, key in (("g2.zip", "Gus"), ("g1.zip", "Hal")):
        (zips / name).write_bytes(Z[key])
        set_mtime(zips / name, "2025-03-02T00:00:00Z")
    # a submission folder
    sub = tmp_path / "team_ivy"
    sub.mkdir()
    (sub / "encoder.py").write_text("class IvyEncoder:\n    pass\n")
    set_mtime(sub, "2025-03-03T00:00:00Z")
    return {"paths": [inbox, zips, sub], "inbox": inbox, "zips": zips, "sub": sub,
            "eve_key": eve_key, "fay_key": fay_key, "attachments": tmp_path / "attachments"}


def test_mixed_inbox_exact_arrivals_and_unusable(mixed: dict) -> None:
    inbox, att = mixed["inbox"], mixed["attachments"]
    result = read_inbox(mixed["paths"], att)
    assert isinstance(result, Inbox)

    def report(pages: int, name: str) -> Report:
        return Report(name, PSHA[pages], pages, att / f"{PSHA[pages]}.pdf", None)

    def mailed(source: str, key: str, name: str, sender: str, address: str, date: str | None, subject: str,
               msg_id: str, rep: Report | None, warnings: tuple[str, ...] = ()) -> Arrival:
        return Arrival(source=source, kind=ArrivalKind.MAIL, path=att / f"{SHA[key]}.zip", file_name=name,
                       sha256=SHA[key], sender=sender, sender_address=address, date=date, subject=subject,
                       message_id=msg_id, report=rep, warnings=warnings)

    maildir = inbox / "d_maildir"
    expected = (
        Arrival(source=str(inbox / "f_loose.zip"), kind=ArrivalKind.ZIP, path=inbox / "f_loose.zip",
                file_name="f_loose.zip", sha256=SHA["Loose"], date="2025-03-01T12:00:00Z"),
        Arrival(source=str(mixed["zips"] / "g1.zip"), kind=ArrivalKind.ZIP, path=mixed["zips"] / "g1.zip",
                file_name="g1.zip", sha256=SHA["Hal"], date="2025-03-02T00:00:00Z"),
        Arrival(source=str(mixed["zips"] / "g2.zip"), kind=ArrivalKind.ZIP, path=mixed["zips"] / "g2.zip",
                file_name="g2.zip", sha256=SHA["Gus"], date="2025-03-02T00:00:00Z"),
        Arrival(source=str(mixed["sub"]), kind=ArrivalKind.FOLDER, path=mixed["sub"], file_name="team_ivy",
                sha256=None, date="2025-03-03T00:00:00Z"),
        mailed(str(inbox / "a_good.eml"), "Ann", "ann.zip", "Ann Lee", "ann@uni.example",
               "2025-03-04T09:00:00Z", "AECC submission: team Ann", "<ann-1@uni.example>",
               report(4, "ann_report.pdf")),
        mailed(str(inbox / "b_forwarded.eml"), "Bo", "bo.zip", "Desk", "desk@icme.example",
               "2025-03-05T13:00:00Z", "Fwd: Submission Bo", "<fwd-1@icme.example>", report(5, "bo.pdf"),
               ("the ZIP is inside a forwarded message from 'Bo Chen <bo@lab.example>' dated "
                "2025-03-03T12:00:00Z: sender and date are the forwarding mail's",)),
        mailed(f"{inbox / 'c_box.mbox'}#0", "Cy", "cy.zip", "Cy", "cy@x.example", "2025-03-06T09:00:00Z",
               "Cy's encoder", "<cy@x>", report(6, "cy.pdf")),
        mailed(f"{maildir}#{mixed['eve_key']}", "Eve", "eve.zip", "Eve", "eve@y.example",
               "2025-03-08T07:30:00Z", "Eve", "<eve@y>", report(9, "eve.pdf"),
               (f"report has 9 pages (the rules allow {MAX_REPORT_PAGES})",)),
        mailed(f"{maildir}#{mixed['fay_key']}", "Fay", "fay.zip", "Fay", "fay@y.example", None,
               "Fay (no report)", "<fay@y>", None, ("no PDF report attached",)),
    )
    assert result.arrivals == expected
    for arrival in result.arrivals:  # what is named is what is there
        assert hashlib.sha256(arrival.path.read_bytes() if arrival.sha256 else b"").hexdigest() == \
            (arrival.sha256 or hashlib.sha256(b"").hexdigest())

    unusable = [(u.source, u.reason, u.sender_address, u.date, u.subject, u.message_id) for u in result.unusable]
    assert unusable == [
        (f"{inbox / 'c_box.mbox'}#1", U.NO_ZIP, "dee@x.example", "2025-03-06T10:00:00Z", "forgot the zip", "<dee@x>"),
        (f"{inbox / 'c_box.mbox'}#2", U.SEVERAL_ZIPS, "dan@x.example", "2025-03-06T11:00:00Z", "two versions",
         "<dan@x>"),
        (str(inbox / "e_truncated.eml"), U.BROKEN_MIME, "tom@z.example", "2025-03-08T08:00:00Z", "cut short",
         "<tom@z>"),
        (str(inbox / "e_badb64.eml"), U.BROKEN_MIME, "una@z.example", "2025-03-08T09:00:00Z", "bad base64",
         "<una@z>"),
    ]
    details = {u.source.rsplit("/", 1)[-1]: u.detail for u in result.unusable}
    assert details["c_box.mbox#1"] == ("the mail has no ZIP attachment "
                                       "(parts: text/plain, 'dee.pdf' (application/pdf))")
    assert details["c_box.mbox#2"] == (
        f"the mail has 2 different ZIP attachments: 'v1.zip' (sha256 {SHA['D1'][:12]}), "
        f"'v2.zip' (sha256 {SHA['D2'][:12]}); the participant must send exactly one")
    assert details["e_truncated.eml"] == ("broken MIME structure: a multipart part has no closing boundary "
                                          "(the mail was probably cut short) (at message)")
    assert details["e_badb64.eml"].startswith("attachment 'una.zip' has invalid base64 (a character outside")

    # only the usable mails' attachments are saved, each once (Cy's ZIP was attached twice)
    assert saved(att) == sorted([f"{SHA[k]}.zip" for k in ("Ann", "Bo", "Cy", "Eve", "Fay")]
                                + [f"{PSHA[n]}.pdf" for n in (4, 5, 6, 9)])
    assert json.loads(json.dumps(result.to_dict()))["arrivals"][4]["report"]["pages"] == 4


def test_reading_changes_no_mailbox(mixed: dict) -> None:
    inbox = mixed["inbox"]

    def state() -> dict[str, bytes]:
        return {str(p.relative_to(inbox)): p.read_bytes() for p in sorted(inbox.rglob("*")) if p.is_file()}

    before = state()
    read_inbox(mixed["paths"], mixed["attachments"])
    assert state() == before  # the mbox is not rewritten, no Maildir message moves from new/ to cur/
    assert len(os.listdir(inbox / "d_maildir" / "new")) == 1


# --------------------------------------------------------------------------- saving attachments

def test_identical_bytes_from_two_mails_are_saved_once_atomically(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i, date in ((1, "Mon, 03 Mar 2025 10:00:00 +0000"), (2, "Tue, 04 Mar 2025 10:00:00 +0000")):
        (inbox / f"m{i}.eml").write_bytes(mail("Ann <ann@x>", f"try {i}", date, f"<m{i}@x>",
                                               [zip_part(Z["Ann"], f"ann{i}.zip"), pdf_part(PDF[4])]).as_bytes())
    att = tmp_path / "att"
    first = read_inbox([inbox], att)
    assert [a.source for a in first.arrivals] == [str(inbox / "m1.eml"), str(inbox / "m2.eml")]  # resend later
    assert first.arrivals[0].path == first.arrivals[1].path == att / f"{SHA['Ann']}.zip"
    assert [a.file_name for a in first.arrivals] == ["ann1.zip", "ann2.zip"]
    assert saved(att) == sorted([f"{SHA['Ann']}.zip", f"{PSHA[4]}.pdf"])  # no temporary file left
    zip_path = att / f"{SHA['Ann']}.zip"
    assert stat.S_IMODE(zip_path.stat().st_mode) == 0o644
    assert zip_path.read_bytes() == Z["Ann"]

    inode = zip_path.stat().st_ino
    assert read_inbox([inbox], att) == first
    assert zip_path.stat().st_ino == inode  # an intact copy is not rewritten

    zip_path.chmod(0o644)
    zip_path.write_bytes(b"tampered")
    read_inbox([inbox], att)
    assert zip_path.read_bytes() == Z["Ann"]  # a damaged copy is replaced, not trusted by name


def test_attachment_over_the_cap_is_refused_before_saving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import harness.bulk.inbox as inbox_module

    big = make_zip("Big" * 2000)
    eml = tmp_path / "big.eml"
    eml.write_bytes(mail("A <a@x>", "big", None, None, [zip_part(big, "big.zip")]).as_bytes())
    with monkeypatch.context() as m:  # refused from its encoded size, before it is decoded
        m.setattr(inbox_module, "_b64decode", lambda *a: pytest.fail("decoded an attachment over the cap"))
        result = read_inbox([eml], tmp_path / "att", max_attachment_bytes=len(big) - 1)
    assert result.arrivals == ()
    (u,) = result.unusable
    assert u.reason is U.TOO_LARGE and "'big.zip'" in u.detail and f"limit of {len(big) - 1}" in u.detail
    assert saved(tmp_path / "att") == []
    assert read_inbox([eml], tmp_path / "att2", max_attachment_bytes=len(big)).arrivals[0].sha256 == \
        hashlib.sha256(big).hexdigest()


# ----------------------------------------------------------------------------- untrusted names

def test_hostile_names_are_kept_raw_and_rendered_escaped(tmp_path: Path) -> None:
    subject = "\x1b]0;pwned\x07 encoder"
    good = tmp_path / "good.eml"
    good.write_bytes(mail("\u202eMallory <m@x>", subject, None, None,
                          [zip_part(Z["Ann"], EVIL), pdf_part(b"%PDF-1.4 not really", EVIL + ".pdf")]).as_bytes())
    two = tmp_path / "two.eml"
    two.write_bytes(mail("M <m@x>", "two", None, None,
                         [zip_part(Z["Ann"], EVIL), zip_part(Z["Bo"], "b.zip")]).as_bytes())
    result = read_inbox([good, two], tmp_path / "att")
    (arrival,) = result.arrivals
    assert arrival.file_name == EVIL  # raw: it is the participant's name for the file
    assert arrival.subject == subject
    assert arrival.sender == "\u202eMallory"
    assert arrival.report is not None and arrival.report.file_name == EVIL + ".pdf"
    assert arrival.report.pages is None and arrival.report.problem
    (warning,) = arrival.warnings
    assert warning.startswith(f"report {escape_name(EVIL + '.pdf')} could not be read: pypdf cannot read it")
    none = tmp_path / "none.eml"
    none.write_bytes(mail("M <m@x>", "none", None, None, [(b"hello", "text/plain", EVIL + ".txt")]).as_bytes())
    result = read_inbox([good, two, none], tmp_path / "att")
    nozip, several = sorted(result.unusable, key=lambda u: u.reason.value)
    assert several.reason is U.SEVERAL_ZIPS and escape_name(EVIL) in several.detail
    assert nozip.reason is U.NO_ZIP and escape_name(EVIL + ".txt") in nozip.detail
    for text in (*arrival.warnings, several.detail, nozip.detail):
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text


# ------------------------------------------------------------------------------- MIME policy

def one(tmp_path: Path, raw: bytes, **kw) -> Arrival | Unusable:
    eml = tmp_path / "m.eml"
    eml.write_bytes(raw)
    result = read_inbox([eml], tmp_path / "att", **kw)
    assert len(result.arrivals) + len(result.unusable) == 1
    return (result.arrivals or result.unusable)[0]


def raw_mail(parts: list[bytes], boundary: bytes = b"BOUNDARY", head: bytes = b"", end: bool = True) -> bytes:
    out = (b"From: Ann <ann@x>\r\nSubject: raw\r\nMIME-Version: 1.0\r\n" + head
           + b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\npreamble\r\n")
    for part in parts:
        out += b"--" + boundary + b"\r\n" + part + b"\r\n"
    return out + (b"--" + boundary + b"--\r\n" if end else b"")


def b64_part(data: bytes, name: str = "s.zip", ctype: bytes = b"application/zip", mangle=lambda b: b) -> bytes:
    import base64

    return (b"Content-Type: " + ctype + b"\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"" + name.encode() + b"\"\r\n\r\n"
            + mangle(base64.encodebytes(data)))


def test_unusual_but_decodable_mail_is_accepted(tmp_path: Path) -> None:
    # non-ASCII bytes in a header, an unparseable Date, base64 with spaces, tabs and CRLF, and no padding
    spaced = b64_part(Z["Ann"], mangle=lambda b: b.replace(b"\n", b" \t\r\n").rstrip(b"= \t\r\n"))
    arrival = one(tmp_path, raw_mail([spaced, b64_part(PDF[4], "r.pdf", b"application/pdf")],
                                     head=b"X-Mailer: Gr\xfcn Mail\r\nDate: yesterday-ish\r\n"))
    assert isinstance(arrival, Arrival), arrival
    assert arrival.sha256 == SHA["Ann"] and arrival.date is None and arrival.report.pages == 4
    pad = -len(Z["Ann"]) % 3  # bytes missing from the last base64 group: its '=' padding
    assert arrival.warnings == (("attachment 's.zip': base64 padding was wrong (decoded anyway)",) if pad else ())


@pytest.fixture()
def far_timezone(monkeypatch: pytest.MonkeyPatch):
    """A local zone far from UTC, so that a date read as local time instead of UTC shows."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_rfc5322_dates_become_utc(tmp_path: Path, far_timezone: None) -> None:
    cases = {"Tue, 04 Mar 2025 10:00:00 +0530": "2025-03-04T04:30:00Z",
             "4 Mar 2025 10:00:00 -0000": "2025-03-04T10:00:00Z",  # "-0000": UTC, zone unknown
             "Tue, 31 Dec 2024 23:59:59 -0100": "2025-01-01T00:59:59Z",
             "not a date": None}
    for i, (header, expected) in enumerate(cases.items()):
        eml = tmp_path / f"d{i}.eml"
        eml.write_bytes(mail("A <a@x>", "d", header, None, [zip_part(Z["Ann"])]).as_bytes())
        (arrival,) = read_inbox([eml], tmp_path / "att").arrivals
        assert arrival.date == expected, header

@pytest.mark.parametrize("raw, reason, needle", [
    (raw_mail([b64_part(Z["Ann"], mangle=lambda b: b[:10] + b"!" + b[11:])]), U.BROKEN_MIME,
     "has invalid base64 (a character outside the alphabet at encoded offset 10)"),
    (raw_mail([b64_part(Z["Ann"], mangle=lambda b: (lambda s: s[:(len(s) - 1) // 4 * 4 + 1])(
        b.replace(b"\n", b"").rstrip(b"=")))]), U.BROKEN_MIME, "has truncated base64"),
    (raw_mail([b"Content-Type: application/zip\r\nContent-Transfer-Encoding: x-gzip\r\n"
               b"Content-Disposition: attachment; filename=s.zip\r\n\r\nPK"]),
     U.BROKEN_MIME, "uses the unknown transfer encoding 'x-gzip'"),
    (b"From: a@x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\nPK\r\n--x--\r\n",
     U.BROKEN_MIME, "a multipart part declares no boundary"),
    (raw_mail([b64_part(Z["Ann"])]).replace(b"--BOUNDARY", b"--OTHER"), U.BROKEN_MIME,
     "a multipart boundary never appears in the body"),
    (raw_mail([b64_part(Z["Ann"])], end=False), U.BROKEN_MIME, "no closing boundary"),
    # the break is inside a forwarded message: its parts are as doubtful as the outer mail's
    (raw_mail([b"Content-Type: message/rfc822\r\n\r\n" + raw_mail([b64_part(Z["Ann"])], b"INNER", end=False)]),
     U.BROKEN_MIME, "no closing boundary (the mail was probably cut short) (at message/1/forwarded)"),
    (raw_mail([b"Content-Type: text/plain\r\n\r\nSee attached."]), U.NO_ZIP, "parts: text/plain"),
    # a generic part that cannot be decoded might have been the ZIP
    (raw_mail([b64_part(Z["Ann"], "blob", b"application/octet-stream", lambda b: b"@" + b)]),
     U.BROKEN_MIME, "no ZIP attachment was found, and attachment 'blob' has invalid base64"),
])
def test_broken_or_zipless_mail_is_listed_with_its_reason(tmp_path: Path, raw: bytes, reason: UnusableReason,
                                                         needle: str) -> None:
    u = one(tmp_path, raw)
    assert isinstance(u, Unusable), u
    assert u.reason is reason and needle in u.detail, u.detail
    assert u.sender_address in ("ann@x", "a@x")


def test_attachments_are_recognised_by_name_type_or_magic(tmp_path: Path) -> None:
    docx = make_zip("Word")  # a .docx is a ZIP too, but never the submission
    arrival = one(tmp_path, mail("A <a@x>", "s", None, None, [
        (Z["Ann"], "application/octet-stream", None),  # no name: the PK magic says ZIP
        (docx, "application/octet-stream", "cover_letter.docx"),
        (PDF[5], "application/octet-stream", "paper"),  # %PDF- magic
        (PDF[4], "application/x-pdf", "second.pdf"),
    ]).as_bytes())
    assert isinstance(arrival, Arrival), arrival
    assert arrival.sha256 == SHA["Ann"] and arrival.file_name == f"{SHA['Ann']}.zip"
    assert (arrival.report.file_name, arrival.report.pages) == ("paper", 5)
    assert arrival.warnings == ("2 PDF reports attached: 'paper', 'second.pdf' (the first is kept)",)

    # an undecodable generic part is ignored (with a warning) once the ZIP is found elsewhere
    raw = raw_mail([b64_part(Z["Ann"]), b64_part(b"\x00" * 30, "blob", b"application/octet-stream",
                                                 lambda b: b"@" + b)])
    with_blob = one(tmp_path, raw)
    assert with_blob.sha256 == SHA["Ann"]
    assert with_blob.warnings[0].startswith("ignored a part that could not be read: attachment 'blob' has "
                                            "invalid base64")

    by_type = one(tmp_path, mail("A <a@x>", "s", None, None,
                                 [(Z["Bo"], "application/x-zip-compressed", "bo")]).as_bytes())
    assert by_type.sha256 == SHA["Bo"] and by_type.file_name == "bo"


def nested(levels: int) -> bytes:
    body = b"Content-Type: application/zip; name=a.zip\r\n\r\nPK\x03\x04"
    for i in range(levels):
        b = b"B%d" % i
        body = (b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b + b"\r\n" + body
                + b"\r\n--" + b + b"--\r\n")
    return b"From: a@x\r\nMIME-Version: 1.0\r\n" + body


@pytest.mark.parametrize("levels, reason", [(8, None), (40, U.BROKEN_MIME), (3000, U.BROKEN_MIME)])
def test_deep_nesting_is_refused_not_crashed(tmp_path: Path, levels: int, reason: UnusableReason | None) -> None:
    item = one(tmp_path, nested(levels))
    if reason is None:
        assert isinstance(item, Arrival) and item.file_name == "a.zip"
    else:
        assert isinstance(item, Unusable) and item.reason is reason and "nested" in item.detail


def test_zip_in_a_base64_encoded_forward_is_found(tmp_path: Path) -> None:
    import base64

    inner = mail("Bo <bo@x>", "orig", "Mon, 03 Mar 2025 12:00:00 +0000", None, [zip_part(Z["Bo"])])
    raw = raw_mail([b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                    + base64.encodebytes(inner.as_bytes())])
    arrival = one(tmp_path, raw)
    assert isinstance(arrival, Arrival), arrival
    assert arrival.sha256 == SHA["Bo"] and arrival.sender_address == "ann@x"
    assert "forwarded message from 'Bo <bo@x>'" in arrival.warnings[0]


def test_password_protected_report_has_no_page_count(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=72, height=72)
    writer.encrypt(user_password="secret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    arrival = one(tmp_path, mail("A <a@x>", "s", None, None, [zip_part(Z["Ann"]), pdf_part(buf.getvalue())])
                  .as_bytes())
    assert arrival.report.pages is None and arrival.report.problem == "it is encrypted with a password"
    assert arrival.warnings == ("report 'report.pdf' could not be read: it is encrypted with a password",)


# ------------------------------------------------------------------------------------- paths

def test_missing_or_unknown_path_is_a_usage_error_before_any_work(tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(mail("A <a@x>", "s", None, None, [zip_part(Z["Ann"])]).as_bytes())
    att = tmp_path / "att"
    with pytest.raises(UsageError) as err:
        read_inbox([good, tmp_path / "no-such.mbox"], att)
    assert "does not exist" in err.value.summary and err.value.expected and err.value.fix
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(PDF[4])
    with pytest.raises(UsageError, match="not an inbox or a submission"):
        read_inbox([good, pdf], att)
    fifo = tmp_path / "pipe.eml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="neither a file nor a folder"):
        read_inbox([good, fifo], att)
    assert not att.exists()  # nothing was read or written before the paths were checked
    # inside an inbox folder a FIFO is not a mail and is skipped, never opened (it would block)
    assert [a.source for a in read_inbox([tmp_path], att).arrivals] == [str(good)]


def test_unreadable_path_is_a_usage_error() -> None:
    # Root reads any file whatever its mode, so as root the reading runs in a child that dropped to
    # nobody (uid 65534), in a folder it may enter; the file's mode 000 then bites as for an organizer.
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        root = Path(folder)
        root.chmod(0o777)
        eml = root / "locked.eml"
        eml.write_bytes(b"From: a@x\r\n\r\n")
        eml.chmod(0)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child reports through the pipe)
            os.close(read)
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setresgid(65534, 65534, 65534)
                    os.setresuid(65534, 65534, 65534)
                try:
                    read_inbox([root], root / "att")
                    message = "no error"
                except UsageError as exc:
                    message = f"UsageError: {exc.summary}"
                except BaseException as exc:  # noqa: BLE001 (reported to the parent)
                    message = f"{type(exc).__name__}: {exc}"
                os.write(write, message.encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            message = pipe.read().decode()
        os.waitpid(pid, 0)
    assert message.startswith("UsageError: ") and "cannot read" in message, message

def test_folder_kinds(tmp_path: Path) -> None:
    # a submission that ships a weights ZIP and a README starting with "From " stays one submission
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "model.py").write_text("class MyEncoder: pass\n")
    (sub / "weights.zip").write_bytes(Z["Ann"])
    (sub / "README").write_text("From the paper by Lee et al., 2024.\n")
    # a Maildir copied without its empty tmp/, and an mbox without extension given by name
    md = tmp_path / "md"
    mailbox.Maildir(md, create=True).add(mail("A <a@x>", "s", None, None, [zip_part(Z["Bo"])]))
    (md / "tmp").rmdir()
    box = mailbox.mbox(tmp_path / "Inbox")
    box.add(mail("C <c@x>", "s", None, None, [zip_part(Z["Cy"])]))
    box.close()
    result = read_inbox([sub, md, tmp_path / "Inbox", REPO / "examples" / "good_encoder"], tmp_path / "att")
    kinds = sorted((a.kind.value, a.sha256 or a.file_name) for a in result.arrivals)
    assert kinds == sorted([("folder", "sub"), ("mail", SHA["Bo"]), ("mail", SHA["Cy"]),
                            ("folder", "good_encoder")])
    assert result.unusable == ()


def test_dates_none_last_and_same_path_read_once(tmp_path: Path) -> None:
    undated = tmp_path / "a_undated.eml"
    undated.write_bytes(mail("A <a@x>", "s", None, None, [zip_part(Z["Ann"])]).as_bytes())
    dated = tmp_path / "z_dated.eml"
    dated.write_bytes(mail("B <b@x>", "s", "Mon, 03 Mar 2025 12:00:00 +0000", None, [zip_part(Z["Bo"])]).as_bytes())
    result = read_inbox([undated, dated, tmp_path, undated], tmp_path / "att")
    assert [a.source for a in result.arrivals] == [str(dated), str(undated)]


def test_arrival_sha256_is_the_one_intake_stores(mixed: dict, tmp_path: Path) -> None:
    from harness.stages.intake import intake

    result = read_inbox(mixed["paths"], mixed["attachments"])
    store = tmp_path / "store"
    for arrival in result.arrivals:
        submission = intake(arrival.path, store)
        if arrival.sha256 is not None:  # a folder's hash is intake's to compute
            assert submission.sha256 == arrival.sha256, arrival.source


@pytest.mark.parametrize("envelope", [
    b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970",  # Python's mailbox
    b"From - Sat Mar 08 10:00:00 2025",  # Thunderbird
    b"From 1825561234567890123@xxx Sat Mar 08 10:00:00 +0000 2025",  # Gmail / Google Takeout
])
def test_extensionless_mbox_in_an_inbox_folder_is_sniffed(tmp_path: Path, envelope: bytes) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "Inbox").write_bytes(envelope + b"\n" + mail("A <a@x>", "s", None, None, [zip_part(Z["Ann"])])
                                  .as_bytes() + b"\n")
    (inbox / "README").write_text("From the organizers: these are the March mails.\n")
    result = read_inbox([inbox], tmp_path / "att")
    assert [(a.source, a.sha256) for a in result.arrivals] == [(f"{inbox / 'Inbox'}#0", SHA["Ann"])]
    assert result.unusable == ()

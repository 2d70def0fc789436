"""Mail for the mail loop's tests: builders of submission mails, delivery into a real IMAP folder,
and a TCP relay that counts a server's bytes and can cut a connection mid-fetch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.message
import email.policy
import io
import socket
import threading
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
USER = "aecc"
PASSWORD = "Zq7-imap-s3cret-4f9c"  # distinctive: the leak test greps for it
SMTP_USER = "aecc@organizers.example"
SMTP_PASSWORD = "Kp2-smtp-s3cret-8d1e"
#: the task the mail tests score (the demo's smallest), and the attachments' content types
TASK = REPO / "demo_tasks" / "tiny_tones_task.py"
ZIP = "application/zip"
PDF = "application/pdf"


@dataclasses.dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the servers' certificate



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_zip(tag: str, *, pad: int = 0) -> bytes:
    """A ZIP whose intake is refused (no encoder class in it) unless `good`; `pad` random-ish bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo("notes.txt", date_time=(2025, 1, 1, 0, 0, 0))
        zf.writestr(info, f"team {tag}\n" + "".join(chr(33 + (i * 7919 + len(tag)) % 90) for i in range(pad)))
    return buf.getvalue()


def good_zip() -> bytes:
    """The `good` fixture encoder as a participant would zip it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((REPO / "tests" / "fixtures" / "encoders" / "good").rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(REPO / "tests" / "fixtures" / "encoders")),
                                       date_time=(2025, 1, 1, 0, 0, 0))
                zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def make_pdf(pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=72, height=72)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def mail(sender: str, subject: str, msg_id: str, attachments=(), *, date: str = "Tue, 04 Mar 2025 09:00:00 +0000",
         headers: dict | None = None, body: str = "Our submission.\n") -> email.message.EmailMessage:
    """A mail with (bytes, maintype/subtype, file name) attachments."""
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = "submissions@organizers.example"
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = msg_id
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    for data, ctype, name in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def raw(msg) -> bytes:
    return msg if isinstance(msg, bytes) else msg.as_bytes(policy=email.policy.SMTP)


def deliver(dovecot, certs: Certs, folder: str, messages, when: dt.datetime | None = None) -> None:
    """Append mails (EmailMessage or bytes) to `folder` as a delivery would, server time `when`."""
    client = dovecot.client(certs)
    try:
        for msg in messages:
            client.append(folder, raw(msg), msg_time=when)
    finally:
        client.logout()


class Relay:
    """127.0.0.1:port -> upstream, counting the bytes the server sends. `cut_after` drops the next
    connection once the server has sent that many bytes on it (a server dying mid-fetch);
    `cut_always` does so to every connection."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.server_bytes = 0
        self.cut_after: int | None = None
        self.cut_always: int | None = None
        self.cuts = 0
        self.connections = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            cut, self.cut_after = (self.cut_after if self.cut_after is not None else self.cut_always), None
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(client, server, False, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True, cut), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_server: bool, cut: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_server:
                    with self._lock:
                        self.server_bytes += len(data)
                if cut is not None and sent + len(data) >= cut:
                    sink.sendall(data[:cut - sent])
                    self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.sock.close()

"""Real mail servers for the mail loop's tests, started by the tests: Debian's Dovecot (IMAP, TLS with
a certificate of a CA made here) and aiosmtpd (SMTP with STARTTLS and a login) as the receiving end
of answers; and a TCP relay in front of Dovecot that counts what the server sends and can cut the
connection mid-fetch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.mailkit import (
    PASSWORD,
    SMTP_PASSWORD,
    SMTP_USER,
    USER,
    Certs,
    Relay,
    free_port,
)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


# ----------------------------------------------------------------------------------- certificates

def _make_certs(folder: Path) -> Certs:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def ca(name: str):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("aecc test CA")
    _, other = ca("another CA")
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem", folder / "other-ca.pem")
    paths.ca.write_bytes(ca_cert.public_bytes(pem))
    paths.other_ca.write_bytes(other.public_bytes(pem))
    paths.cert.write_bytes(leaf.public_bytes(pem))
    paths.key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    return _make_certs(tmp_path_factory.mktemp("certs"))


# ----------------------------------------------------------------------------------------- Dovecot

@dataclasses.dataclass
class Dovecot:
    root: Path
    imaps_port: int
    imap_port: int
    log: Path

    def url(self, folder: str = "INBOX", port: int | None = None, scheme: str = "imaps") -> str:
        return f"{scheme}://{USER}@127.0.0.1:{port or self.imaps_port}/{folder}"

    def client(self, certs: Certs):
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.imaps_port, ssl=True,
                            ssl_context=ssl.create_default_context(cafile=str(certs.ca)), timeout=30)
        client.login(USER, PASSWORD)
        return client


CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@pytest.fixture(scope="session")
def dovecot(certs) -> Dovecot:
    if shutil.which("dovecot") is None:
        pytest.fail("dovecot is not installed: run scripts/host-tools.sh (Debian: apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="aecc-dovecot-"))
    os.chmod(root, 0o755)  # the mail user (nobody) reaches its home through it
    for name in ("cert.pem", "key.pem"):
        shutil.copy(getattr(certs, name.split(".")[0]), root / name)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    home = root / "home" / USER
    home.mkdir(parents=True)
    shutil.chown(home, "nobody", "nogroup")
    server = Dovecot(root, free_port(), free_port(), root / "dovecot.log")
    conf = root / "dovecot.conf"
    conf.write_text(CONF.format(root=root, imap_port=server.imap_port, imaps_port=server.imaps_port))
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=open(root / "stderr.log", "wb"))
    try:
        wait_port(server.imaps_port)
        wait_port(server.imap_port)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(f"dovecot did not start: {(root / 'stderr.log').read_text()} "
                           f"{server.log.read_text() if server.log.exists() else ''}")
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def mailbox_folder(dovecot, certs, request) -> str:
    """A fresh, empty folder of the test account, named after the test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    client = dovecot.client(certs)
    try:
        for folder in (name, f"{name}_done"):
            if client.folder_exists(folder):
                client.delete_folder(folder)
        client.create_folder(name)
    finally:
        client.logout()
    return name


# -------------------------------------------------------------------------------------- TCP relay

@pytest.fixture()
def relay(dovecot):
    r = Relay(dovecot.imaps_port)
    yield r
    r.close()


# ---------------------------------------------------------------------------------------- aiosmtpd

@dataclasses.dataclass
class Smtp:
    port: int
    received: list  # (recipients, EmailMessage)
    refuse: set  # recipient addresses answered 550

    @property
    def url(self) -> str:
        return f"smtp://{SMTP_USER}@127.0.0.1:{self.port}"


@pytest.fixture()
def smtp(certs):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list = []
    refuse: set = set()

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address in refuse:
                return "550 5.1.1 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            received.append((list(envelope.rcpt_tos), msg))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER \
            and auth_data.password.decode() == SMTP_PASSWORD
        return AuthResult(success=ok)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs.cert), str(certs.key))
    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    yield Smtp(port, received, refuse)
    controller.stop()

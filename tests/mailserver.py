"""A real SMTP server on 127.0.0.1 for the tests: aiosmtpd with STARTTLS and AUTH, and faults.

It speaks SMTP as a production relay does: STARTTLS with a certificate made here (the client
trusts it through SSL_CERT_FILE, as it would trust a real CA), AUTH PLAIN/LOGIN only after
STARTTLS, and answers chosen per recipient or per message to play a failing server.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USERNAME, PASSWORD = "mdmportal", "relay password 42"


@dataclass
class Faults:
    """What the server answers instead of 250, to whom, and how often."""

    # RCPT TO answers by address, e.g. {"gone@x.example": "550 5.1.1 No such user"}.
    recipients: dict[str, str] = field(default_factory=dict)
    # DATA answers, one consumed per message: ["421 4.3.2 Busy", "451 4.3.0 Try later"].
    data: list[str] = field(default_factory=list)
    # Called with the message once the server has it, before it answers 250.
    on_message: Callable[[Message], None] | None = None


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(self, smtp, session, envelope: Envelope, address: str, options):
        answer = self.server.faults.recipients.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope: Envelope):
        if self.server.faults.data:
            return self.server.faults.data.pop(0)
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        self.server.received.append((list(envelope.rcpt_tos), message))
        if self.server.faults.on_message is not None:
            self.server.faults.on_message(message)
        return "250 2.0.0 Queued"


class MailServer:
    """aiosmtpd on a free port of 127.0.0.1; `received` holds (recipients, message) pairs."""

    def __init__(self, tmp_path: Path, *, tls: bool = True, password: str = PASSWORD) -> None:
        self.host = "127.0.0.1"
        self.faults = Faults()
        self.received: list[tuple[list[str], Message]] = []
        self.ca_file = tmp_path / "mail-ca.pem"
        self.password = password
        tls_context = _tls_context(tmp_path, self.ca_file) if tls else None
        self._controller = _Controller(
            _Handler(self),
            hostname=self.host,
            port=_free_port(),
            tls_context=tls_context,
            require_starttls=tls,
            authenticator=self._authenticate,
            auth_require_tls=tls,
        )
        self._controller.start()
        self.port = self._controller.port

    def _authenticate(self, smtp, session: Session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (USERNAME, self.password)
        return AuthResult(success=ok, handled=False)

    def messages_to(self, address: str) -> list[Message]:
        return [message for recipients, message in self.received if address in recipients]

    def stop(self) -> None:
        self._controller.stop()


class _Controller(Controller):
    def factory(self):
        return SMTP(self.handler, **self.SMTP_kwargs)


class SilentServer:
    """Accepts connections on 127.0.0.1 and never greets: the hung mail server."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen()
        self.port = self._socket.getsockname()[1]
        self._held: list[socket.socket] = []
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)
            self.connected.set()

    def stop(self) -> None:
        self._socket.close()
        for connection in self._held:
            connection.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tls_context(tmp_path: Path, ca_file: Path) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, written where SSL_CERT_FILE can point."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "mail-cert.pem", tmp_path / "mail-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    ca_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context

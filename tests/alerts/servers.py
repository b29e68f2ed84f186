"""Real receivers on loopback: an SMTP server (aiosmtpd, STARTTLS and login required) and
a Slack-style webhook receiver (http.server). Both can be stopped and started again on
the same port, for outages."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body_text(message: EmailMessage, subtype: str) -> str:
    """The text of ``message``'s ``plain`` or ``html`` part, which every alert mail has."""
    part = message.get_body((subtype,))
    assert part is not None, f"no {subtype} part in {message['Subject']!r}"
    text: str = part.get_content()
    return text


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append(message)
        return "250 OK"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 that requires STARTTLS and a login."""

    def __init__(self, ca: trustme.CA, folder: Path, username: str, password: str) -> None:
        self.port = free_port()
        self.username, self.password = username, password
        self.cafile = folder / "ca.pem"
        ca.cert_pem.write_to_path(str(self.cafile))
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.tls)
        self.inbox = _Inbox()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return (f"smtp://{self.username}:{self.password}@127.0.0.1:{self.port}"
                f"?starttls=true&from=monitor@example.com&cafile={self.cafile}&timeout=5")

    @property
    def messages(self) -> list[EmailMessage]:
        with self.inbox.lock:
            return list(self.inbox.messages)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == self.username
              and auth_data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, ready_timeout=5,
            tls_context=self.tls, require_starttls=True, auth_required=True,
            authenticator=self._authenticate)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class WebhookReceiver:
    """Records each POST (path, headers, JSON body) and answers 200, or ``status``."""

    def __init__(self, secret: str) -> None:
        self.port = free_port()
        self.secret = secret
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0001/B0002/{self.secret}"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["body"] for r in self.requests]

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.status == 200:
                    with receiver.lock:
                        receiver.requests.append({"path": self.path,
                                                  "headers": dict(self.headers),
                                                  "body": json.loads(body)})
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status == 200 else b"error")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

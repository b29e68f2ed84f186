"""Email over SMTP: plain text and HTML in one message, Message-ID from the idempotency key.

STARTTLS and login happen when the ``MONITOR_SMTP_URL`` asks for them (``?starttls=true``,
a user in the URL); ``smtps://`` speaks TLS from the start. A retried message keeps its
Message-ID, so mail clients and servers that dedup by it show it once. Connection
problems and 4xx replies are retried; 5xx replies (bad recipient, refused login) are not.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

from monitor.alerts.ports import DeliveryError, scrub
from monitor.alerts.records import Notification
from monitor.alerts.render import html_body, subject, text_body
from monitor.alerts.settings import SmtpSettings

MESSAGE_ID_DOMAIN = "domain-monitor"


def message_id(key: str) -> str:
    return f"<{key}@{MESSAGE_ID_DOMAIN}>"


class SmtpEmail:
    name = "email"

    def __init__(self, smtp: SmtpSettings, recipients: Sequence[str], dashboard_url: str
                 ) -> None:
        if not recipients:
            raise ValueError("email alerts need recipients: set MONITOR_ALERT_EMAIL_TO")
        self.smtp = smtp
        self.recipients = tuple(recipients)
        self.dashboard_url = dashboard_url

    def __repr__(self) -> str:
        return f"SmtpEmail({self.smtp.display}, to={', '.join(self.recipients)})"

    def build(self, key: str, notifications: Sequence[Notification]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = subject(notifications)
        message["From"] = self.smtp.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id(key)
        message["X-Idempotency-Key"] = key
        message.set_content(text_body(notifications, self.dashboard_url, key))
        message.add_alternative(html_body(notifications, self.dashboard_url, key),
                                subtype="html")
        return message

    def send(self, key: str, notifications: Sequence[Notification]) -> None:
        message = self.build(key, notifications)
        smtp = self.smtp
        try:
            client: smtplib.SMTP
            if smtp.ssl:
                client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s,
                                          context=self._tls())
            else:
                client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
            try:
                if smtp.starttls:
                    client.starttls(context=self._tls())
                if smtp.username:
                    client.login(smtp.username, smtp.password or "")
                client.send_message(message)
            finally:
                _close(client)
        except smtplib.SMTPResponseException as err:
            raise DeliveryError(self._clean(
                f"SMTP server {smtp.host}:{smtp.port} answered {err.smtp_code} "
                f"{_text(err.smtp_error)}"), transient=400 <= err.smtp_code < 500) from None
        except smtplib.SMTPRecipientsRefused as err:
            raise DeliveryError(self._clean(
                f"SMTP server {smtp.host}:{smtp.port} refused the recipients "
                f"{', '.join(err.recipients)}"), transient=False) from None
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryError(self._clean(
                f"SMTP server {smtp.host}:{smtp.port} unreachable or failed: "
                f"{type(err).__name__}: {err}")) from None

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.smtp.cafile)

    def _clean(self, text: str) -> str:
        return scrub(text, [self.smtp.password or ""])


def _close(client: smtplib.SMTP) -> None:
    """Say goodbye; once the message is accepted, a failing QUIT must not make it fail
    (it would be sent again)."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)

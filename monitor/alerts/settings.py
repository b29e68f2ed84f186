"""Alert channel settings, from the environment only, read once at the entry point.

- ``MONITOR_SLACK_WEBHOOK_URL``: a Slack incoming webhook (the URL is the secret);
- ``MONITOR_SMTP_URL``: ``smtp://USER:PASSWORD@HOST:PORT?starttls=true&from=ADDR``
  (``smtps://`` for TLS from the start; no user: no login; ``cafile=PATH`` to trust a
  private CA);
- ``MONITOR_ALERT_EMAIL_TO``: comma-separated recipients;
- ``MONITOR_DASHBOARD_URL``: where links point [default http://localhost:8501];
- ``MONITOR_ALERT_ROUTES``: routes as JSON (see :mod:`monitor.alerts.routing`).

Nothing here prints a secret: the repr leaves them out and :meth:`AlertSettings.secrets`
lists them so error messages can be scrubbed.

>>> env = {"MONITOR_SMTP_URL": "smtp://bot:pa55@mail.local:2525?starttls=true&from=a@b.c",
...        "MONITOR_ALERT_EMAIL_TO": "oncall@b.c, ml@b.c"}
>>> settings = AlertSettings.from_env(env)
>>> settings.configured_channels, settings.email_to
(('email',), ('oncall@b.c', 'ml@b.c'))
>>> smtp = parse_smtp_url(env["MONITOR_SMTP_URL"])
>>> (smtp.host, smtp.port, smtp.username, smtp.starttls, smtp.sender)
('mail.local', 2525, 'bot', True, 'a@b.c')
>>> "pa55" in repr(settings) + repr(smtp)
False
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from monitor.alerts.routing import Route, routes_from_json

SLACK_ENV = "MONITOR_SLACK_WEBHOOK_URL"
SMTP_ENV = "MONITOR_SMTP_URL"
EMAIL_TO_ENV = "MONITOR_ALERT_EMAIL_TO"
DASHBOARD_ENV = "MONITOR_DASHBOARD_URL"
ROUTES_ENV = "MONITOR_ALERT_ROUTES"
DEFAULT_DASHBOARD_URL = "http://localhost:8501"
DEFAULT_SENDER = "domain-monitor@localhost"
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    starttls: bool
    ssl: bool
    sender: str
    timeout_s: float = 10.0
    cafile: str | None = None

    @property
    def display(self) -> str:
        scheme = "smtps" if self.ssl else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpSettings:
    """The parts of an ``smtp://`` or ``smtps://`` URL; a ValueError (without the
    password) says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"{SMTP_ENV} must look like smtp://USER:PASSWORD@HOST:PORT"
                         "?starttls=true&from=alerts@example.com (or smtps:// for TLS)")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    ssl = parts.scheme == "smtps"
    starttls = query.get("starttls", "false").lower() in _TRUE
    try:
        port = parts.port or (465 if ssl else 587 if starttls else 25)
    except ValueError:
        raise ValueError(f"{SMTP_ENV} has a port that is not a number") from None
    return SmtpSettings(
        host=parts.hostname, port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=starttls, ssl=ssl, sender=query.get("from", DEFAULT_SENDER),
        timeout_s=float(query.get("timeout", 10.0)), cafile=query.get("cafile"),
    )


@dataclass(frozen=True)
class AlertSettings:
    slack_webhook_url: str | None = field(default=None, repr=False)
    smtp_url: str | None = field(default=None, repr=False)
    email_to: tuple[str, ...] = ()
    dashboard_url: str = DEFAULT_DASHBOARD_URL
    routes: tuple[Route, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSettings:
        env = os.environ if environ is None else environ
        smtp_url = env.get(SMTP_ENV) or None
        if smtp_url:
            parse_smtp_url(smtp_url)  # fail now, at the entry point, with what to fix
        routes = tuple(routes_from_json(env[ROUTES_ENV])) if env.get(ROUTES_ENV) else ()
        return cls(
            slack_webhook_url=env.get(SLACK_ENV) or None,
            smtp_url=smtp_url,
            email_to=tuple(a.strip() for a in env.get(EMAIL_TO_ENV, "").split(",") if a.strip()),
            dashboard_url=env.get(DASHBOARD_ENV) or DEFAULT_DASHBOARD_URL,
            routes=routes,
        )

    @property
    def configured_channels(self) -> tuple[str, ...]:
        channels = []
        if self.slack_webhook_url:
            channels.append("slack")
        if self.smtp_url and self.email_to:
            channels.append("email")
        return tuple(channels)

    def missing(self, channel: str) -> str:
        """What to set to configure ``channel``."""
        if channel == "slack":
            return f"set {SLACK_ENV} to a Slack incoming-webhook URL"
        return (f"set {SMTP_ENV} (smtp://USER:PASSWORD@HOST:PORT?starttls=true&from=ADDR) "
                f"and {EMAIL_TO_ENV} (comma-separated recipients)")

    def secrets(self) -> tuple[str, ...]:
        """Every secret in these settings, to scrub from error text."""
        found = []
        if self.slack_webhook_url:
            found.append(self.slack_webhook_url)
            path = urlsplit(self.slack_webhook_url).path
            found.extend(part for part in path.split("/") if len(part) >= 8)
        if self.smtp_url:
            found.append(self.smtp_url)
            password = parse_smtp_url(self.smtp_url).password
            if password:
                found.append(password)
        return tuple(found)

"""The configured channels, built from :class:`~monitor.alerts.settings.AlertSettings`."""

from __future__ import annotations

from monitor.alerts.ports import Channel
from monitor.alerts.settings import AlertSettings, parse_smtp_url
from monitor.notifiers.email import SmtpEmail
from monitor.notifiers.slack import SlackWebhook


def build_channels(settings: AlertSettings) -> dict[str, Channel]:
    """Slack and email, each when its settings are in the environment."""
    channels: dict[str, Channel] = {}
    if settings.slack_webhook_url:
        channels["slack"] = SlackWebhook(settings.slack_webhook_url, settings.dashboard_url)
    if settings.smtp_url and settings.email_to:
        channels["email"] = SmtpEmail(parse_smtp_url(settings.smtp_url), settings.email_to,
                                      settings.dashboard_url)
    return channels

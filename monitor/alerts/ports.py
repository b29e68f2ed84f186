"""The notifier port: a channel that delivers one message about a group of alerts.

Channels (:mod:`monitor.alerts.slack`, :mod:`monitor.alerts.email`) raise
:class:`DeliveryError` when a message did not get through, saying whether trying again
may help; its text never holds a secret (a webhook URL or an SMTP password).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from monitor.alerts.records import Notification


class DeliveryError(Exception):
    """A message was not delivered; ``transient`` when a retry may succeed."""

    def __init__(self, problem: str, *, transient: bool = True) -> None:
        super().__init__(problem)
        self.transient = transient


class Channel(Protocol):
    name: str

    def send(self, key: str, notifications: Sequence[Notification]) -> None:
        """Deliver one message about ``notifications`` with idempotency key ``key``."""
        ...


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ***, longest first."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text

"""Slack through an incoming webhook: one JSON POST per message.

The webhook URL is the secret, so no error text or log line carries it: failures name
the HTTP status or the network problem only. The idempotency key travels in the body
(``idempotency_key`` and a context line) and in an ``Idempotency-Key`` header, so a
receiver that dedups (or a person reading the channel) can tell a retry from a new alert.
HTTP 429 and 5xx are retried; other 4xx mean the message or the URL is wrong and are not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.client import HTTPException

from monitor.alerts.ports import DeliveryError, scrub
from monitor.alerts.records import Notification
from monitor.alerts.render import slack_payload

TIMEOUT_S = 10.0


class SlackWebhook:
    name = "slack"

    def __init__(self, url: str, dashboard_url: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url
        self.dashboard_url = dashboard_url
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return "SlackWebhook(url=***)"

    def send(self, key: str, notifications: Sequence[Notification]) -> None:
        body = json.dumps(slack_payload(notifications, self.dashboard_url, key)).encode()
        request = urllib.request.Request(
            self._url, data=body, method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": key,
                     "User-Agent": "domain-monitor"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as err:
            transient = err.code == 429 or err.code >= 500
            raise DeliveryError(f"Slack webhook answered HTTP {err.code} {err.reason}",
                                transient=transient) from None
        except (urllib.error.URLError, HTTPException, OSError) as err:
            reason = getattr(err, "reason", err)
            raise DeliveryError(
                scrub(f"Slack webhook unreachable: {reason}", [self._url])) from None

"""Fixtures: the migrated databases of tests/storage, real receivers, an injected clock."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import trustme

from monitor.alerts.dispatcher import Dispatcher
from monitor.alerts.policy import Policy
from monitor.alerts.settings import AlertSettings
from monitor.notifiers.channels import build_channels
from monitor.storage.alert_store import SqlDispatchStore
from monitor.storage.database import Database
from tests.alerts.helpers import T0, Clock
from tests.alerts.servers import SmtpServer, WebhookReceiver
from tests.storage.conftest import database, postgres_database, sqlite_database

__all__ = ["database", "postgres_database", "sqlite_database"]

SMTP_PASSWORD = "smtp-pw-" + secrets.token_hex(8)
WEBHOOK_SECRET = "hook" + secrets.token_hex(12)
RECIPIENT = "oncall@example.com"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp_server(ca: trustme.CA, tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(ca, tmp_path, "monitor-bot", SMTP_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(WEBHOOK_SECRET).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def settings(smtp_server: SmtpServer, webhook: WebhookReceiver) -> AlertSettings:
    return AlertSettings.from_env({
        "MONITOR_SLACK_WEBHOOK_URL": webhook.url,
        "MONITOR_SMTP_URL": smtp_server.url,
        "MONITOR_ALERT_EMAIL_TO": RECIPIENT,
        "MONITOR_DASHBOARD_URL": "https://monitor.example.com",
    })


POLICY = Policy(group_wait=timedelta(seconds=30), repeat_interval=timedelta(hours=4),
                retry_initial=timedelta(seconds=10), retry_max=timedelta(minutes=5))


def dispatcher_for(database: Database, settings: AlertSettings, clock: Clock,
                   policy: Policy = POLICY) -> Dispatcher:
    return Dispatcher(SqlDispatchStore(database), build_channels(settings), routes=settings.routes,
                      policy=policy, clock=clock, secrets=settings.secrets(),
                      missing=settings.missing)

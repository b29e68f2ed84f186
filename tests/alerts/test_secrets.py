"""The webhook URL and the SMTP password appear in no log line, no CLI output and no
database row — on success, and on the failure paths where they would most likely leak:
unreachable receivers and a refused login."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from monitor.alerts.settings import AlertSettings
from monitor.cli.main import cli
from monitor.storage.database import Database
from monitor.storage.models import Base
from tests.alerts.conftest import RECIPIENT, SMTP_PASSWORD, WEBHOOK_SECRET, dispatcher_for
from tests.alerts.helpers import Clock
from tests.alerts.servers import SmtpServer, WebhookReceiver
from tests.alerts.test_cli import fire_recently


def everything_stored(database: Database) -> str:
    with database.connect() as conn:
        return "\n".join(repr(row) for table in Base.metadata.sorted_tables
                         for row in conn.execute(select(table)))


def test_no_secret_in_logs_output_or_rows(
    database: Database, webhook: WebhookReceiver, smtp_server: SmtpServer,
    settings: AlertSettings, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {"MONITOR_SLACK_WEBHOOK_URL": webhook.url, "MONITOR_SMTP_URL": smtp_server.url,
           "MONITOR_ALERT_EMAIL_TO": RECIPIENT, "MONITOR_APP": ""}
    wrong_password = {**env, "MONITOR_SMTP_URL": smtp_server.url.replace(
        SMTP_PASSWORD, SMTP_PASSWORD + "-wrong")}
    runner = CliRunner()
    outputs = []

    def monitor(*args: str, environ: dict[str, str] = env) -> None:
        result = runner.invoke(cli, ["-v", *args], env=environ)
        outputs.append(result.output)

    db = ["--database-url", database.url]
    fire_recently(database, [1450.0, 1500.0], "country=BR")
    webhook.stop()
    smtp_server.stop()  # both down: errors are recorded, logged and listed
    monitor("alerts", "dispatch", "--once", "--group-wait", "0s", *db)
    monitor("alerts", "list", *db)
    monitor("alerts", "test", "--channel", "slack")
    monitor("alerts", "test", "--channel", "email")
    webhook.start()
    smtp_server.start()
    monitor("alerts", "test", "--channel", "email", environ=wrong_password)
    monitor("alerts", "test", "--channel", "slack")
    monitor("alerts", "test", "--channel", "email")
    fire_recently(database, [1450.0, 1500.0], "country=SE")
    monitor("alerts", "dispatch", "--once", "--group-wait", "0s", *db)  # still backing off
    later = Clock(datetime.now(UTC) + timedelta(minutes=10))
    assert dispatcher_for(database, settings, later).run_once().messages_sent == 4
    monitor("alerts", "silence", "--metric", "latency", "--for", "1h", "--reason", "x", *db)
    monitor("alerts", "list", *db)

    # the paths were exercised: failures, a refused login, and deliveries
    text = "\n".join(outputs)
    assert "Slack webhook unreachable" in text and "answered 535" in text
    assert len(webhook.requests) == len(smtp_server.messages) == 3  # a test, BR and SE
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("monitor")]
    assert any("failed (attempt 1)" in line for line in ours)
    stored = everything_stored(database)
    assert "unreachable" in stored

    lines = [r.getMessage() for r in caplog.records] + [caplog.text]
    for secret in (webhook.url, WEBHOOK_SECRET, SMTP_PASSWORD, quote(SMTP_PASSWORD),
                   smtp_server.url):
        assert secret not in text, f"a secret in CLI output:\n{text}"
        assert not [line for line in lines if secret in line], "a secret in a log line"
        assert secret not in stored, "a secret in the database"

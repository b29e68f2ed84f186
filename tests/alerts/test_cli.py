"""``monitor alerts ...`` end to end: silences, the list, one dispatch round and test
messages, against real receivers and both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli.main import cli
from monitor.storage.database import Database
from monitor.storage.records import WindowResult
from monitor.storage.store import SqlStore
from tests.alerts.conftest import RECIPIENT
from tests.alerts.helpers import latency_metric
from tests.alerts.servers import SmtpServer, WebhookReceiver

SPEC = latency_metric()


def run(args: list[str], database: Database | None = None,
        env: dict[str, str] | None = None) -> Result:
    full = ["alerts", *args] + (["--database-url", database.url] if database else [])
    return CliRunner().invoke(cli, full, env={"MONITOR_APP": "", **(env or {})},
                              catch_exceptions=False)


def fire_recently(database: Database, p99: list[float], segment: str = "country=BR") -> None:
    """Store the last ``len(p99)`` closed hours (so they are recent enough to notify)."""
    now = datetime.now(UTC)
    top = now.replace(minute=0, second=0, microsecond=0)
    windows = [WindowResult(segment, top - (len(p99) - i) * timedelta(hours=1),
                            top - (len(p99) - i - 1) * timedelta(hours=1), 10,
                            {"p50": 100.0, "p99": value}) for i, value in enumerate(p99)]
    SqlStore(database).write_windows_and_evaluate(SPEC, 1, "batch", windows, now)


def channel_env(webhook: WebhookReceiver, smtp_server: SmtpServer) -> dict[str, str]:
    return {"MONITOR_SLACK_WEBHOOK_URL": webhook.url, "MONITOR_SMTP_URL": smtp_server.url,
            "MONITOR_ALERT_EMAIL_TO": RECIPIENT}


def test_silence_list_and_unsilence(database: Database) -> None:
    fire_recently(database, [1450.0, 1500.0])
    created = run(["silence", "--metric", "latency", "--label", "country=BR", "--for", "2h",
                   "--reason", "planned failover", "--by", "ana"], database)
    assert created.exit_code == 0, created.output
    assert created.output.startswith("silence ")
    assert "metric=latency" in created.output and "country=BR" in created.output
    assert "(planned failover); it matches 1 alert(s) firing or pending now" in created.output
    silence_id = created.output.split()[1].rstrip(":")
    listed = run(["silences"], database)
    assert f"{silence_id}  active" in listed.output and "by ana: planned failover" in listed.output
    assert run(["unsilence", silence_id], database).output == f"silence {silence_id} ended\n"
    assert run(["silences"], database).output == "no active silence\n"
    assert "ended" in run(["silences", "--all"], database).output
    again = run(["unsilence", silence_id], database)
    assert again.exit_code == 1 and "no active silence" in again.output


def test_silence_arguments_are_checked(database: Database) -> None:
    nothing = run(["silence", "--for", "2h", "--reason", "x"], database)
    assert nothing.exit_code == 2 and "pass --metric, --segment or --label" in nothing.output
    bad = run(["silence", "--metric", "m", "--for", "2 hours", "--reason", "x"], database)
    assert bad.exit_code == 2 and "bad duration '2 hours'" in bad.output
    label = run(["silence", "--label", "BR", "--for", "1h", "--reason", "x"], database)
    assert label.exit_code == 2 and "must look like name=value" in label.output


def test_list_shows_firing_alerts_and_their_history(database: Database) -> None:
    fire_recently(database, [200.0, 1450.0, 1500.0])
    out = run(["list"], database).output
    lines = out.splitlines()
    assert lines[0].startswith("FIRING   latency v1 [country=BR] p99 over 1s (critical, batch)"
                               ": 1500 vs 1000 since window ")
    assert "recent transitions (newest first):" in out
    assert [line.split()[3] for line in lines[3:5]] == ["firing", "pending"]
    assert "1 notification(s) queued and not dispatched yet" in out


def test_list_on_a_missing_database_says_how_to_create_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["alerts", "list", "--database-url",
                                      f"sqlite:///{tmp_path / 'none.sqlite'}"])
    assert result.exit_code == 1 and "monitor db upgrade" in result.output


def test_dispatch_once_delivers_to_both_channels(
    database: Database, webhook: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    fire_recently(database, [1450.0, 1500.0])
    result = run(["dispatch", "--once", "--group-wait", "0s"], database,
                 channel_env(webhook, smtp_server))
    assert result.exit_code == 0, result.output
    assert "2 messages sent" in result.stdout
    assert len(webhook.requests) == 1 and len(smtp_server.messages) == 1
    assert "FIRING latency [country=BR]" in webhook.bodies[0]["text"]
    assert "undelivered" not in run(["list"], database).output


def test_dispatch_without_channels_says_what_to_set(database: Database) -> None:
    fire_recently(database, [1450.0, 1500.0])
    result = run(["dispatch", "--once", "--group-wait", "0s"], database)
    assert result.exit_code == 0
    assert "no channel is configured; set MONITOR_SLACK_WEBHOOK_URL" in result.output


@pytest.mark.parametrize("channel", ["slack", "email"])
def test_test_message(channel: str, webhook: WebhookReceiver,
                      smtp_server: SmtpServer) -> None:
    result = run(["test", "--channel", channel], env=channel_env(webhook, smtp_server))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"sent a test message to {channel}")
    if channel == "slack":
        [body] = webhook.bodies
        assert body["text"].startswith("TEST monitor-test [*] test message")
    else:
        [mail] = smtp_server.messages
        assert mail["Subject"] == "[TEST] monitor-test: test message (info)"


def test_test_message_to_an_unconfigured_or_unreachable_channel() -> None:
    missing = run(["test", "--channel", "email"])
    assert missing.exit_code == 1
    assert "email is not configured: set MONITOR_SMTP_URL" in missing.output
    down = run(["test", "--channel", "slack"],
               env={"MONITOR_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/x/y/z"})
    assert down.exit_code == 1
    assert "not delivered: Slack webhook unreachable" in down.output

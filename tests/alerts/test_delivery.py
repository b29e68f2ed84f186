"""End to end against a real SMTP server and a real webhook receiver on loopback: stored
windows fire alerts, and the dispatcher delivers what Alertmanager would."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from monitor.alerts.settings import AlertSettings
from monitor.alerts.silences import Silence
from monitor.storage import outbox
from monitor.storage import silences as silence_store
from monitor.storage.database import Database
from monitor.storage.records import WindowResult
from monitor.storage.store import SqlStore
from tests.alerts.conftest import RECIPIENT, dispatcher_for
from tests.alerts.helpers import Clock, hour, latency_metric
from tests.alerts.servers import SmtpServer, WebhookReceiver, body_text

SPEC = latency_metric()


def store_hours(database: Database, clock: Clock, *hours: list[WindowResult]) -> None:
    """Store each hour's windows as the batch stage does, an hour of clock per window."""
    store = SqlStore(database)
    for windows in hours:
        clock.advance(hours=1)
        store.write_windows_and_evaluate(SPEC, 1, "batch", windows, clock())


def deliver(database: Database, settings: AlertSettings, clock: Clock) -> None:
    """Let the group wait pass and run dispatcher rounds."""
    dispatcher = dispatcher_for(database, settings, clock)
    dispatcher.run_once()
    clock.advance(seconds=31)
    dispatcher.run_once()


def test_firing_and_resolved_arrive_with_their_content(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    store_hours(database, clock, hour(0, {"country=BR": 200.0}),
                hour(1, {"country=BR": 1450.0}), hour(2, {"country=BR": 1500.0}))
    deliver(database, settings, clock)
    [firing] = webhook.requests
    assert firing["path"].endswith(webhook.secret)  # it went to the configured webhook
    body = firing["body"]
    assert body["text"] == ("FIRING latency [country=BR] p99 over 1s: value 1500 vs threshold "
                            "1000 (1500 > 1000), window 2026-03-02 02:00-03:00 UTC")
    section = body["blocks"][1]["text"]["text"]
    assert "<https://monitor.example.com/?page=alerts&metric=latency&segment=country%3DBR" \
           "&stage=batch|dashboard>" in section
    assert "critical" in section
    assert firing["headers"]["Idempotency-Key"] == body["idempotency_key"]
    [mail] = smtp_server.messages
    assert mail["Subject"] == "[FIRING] latency: p99 over 1s (critical)"
    assert mail["To"] == RECIPIENT
    assert mail["Message-ID"] == f"<{mail['X-Idempotency-Key']}@domain-monitor>"
    plain, html = body_text(mail, "plain"), body_text(mail, "html")
    assert "value 1500 vs threshold 1000" in plain and "owner home-platform" in plain
    assert "<td>country=BR</td>" in html and "<td>1500</td>" in html

    store_hours(database, clock, hour(3, {"country=BR": 300.0}))
    deliver(database, settings, clock)
    assert len(webhook.requests) == 2 and len(smtp_server.messages) == 2
    resolved = webhook.bodies[1]
    assert resolved["text"].startswith("RESOLVED latency [country=BR] p99 over 1s: value 300")
    assert smtp_server.messages[1]["Subject"] == "[RESOLVED] latency: p99 over 1s (critical)"
    assert resolved["idempotency_key"] != body["idempotency_key"]


def test_a_silenced_alert_sends_nothing(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    with database.begin() as conn:
        silence_store.add_silence(conn, Silence(None, metric="latency",
                                                labels={"country": "BR"},
                                                ends_at=clock() + timedelta(hours=6),
                                                reason="planned failover", created_by="t"),
                                  clock())
    store_hours(database, clock, hour(0, {"country=BR": 1450.0, "country=SE": 1450.0}),
                hour(1, {"country=BR": 1500.0, "country=SE": 1500.0}),
                hour(2, {"country=BR": 100.0, "country=SE": 1500.0}))
    deliver(database, settings, clock)
    texts = [b["text"] for b in webhook.bodies]
    assert texts == ["FIRING latency [country=SE] p99 over 1s: value 1500 vs threshold 1000 "
                     "(1500 > 1000), window 2026-03-02 01:00-02:00 UTC"]
    assert [m["Subject"] for m in smtp_server.messages] == [
        "[FIRING] latency: p99 over 1s (critical)"]
    with database.connect() as conn:
        outcomes = [n for n in outbox.recent_deliveries(conn) if "BR" in n.notification.key]
    assert outcomes == []  # BR's firing and resolved were silenced: no delivery at all


def test_a_value_that_flaps_within_for_windows_sends_nothing(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    flapping = [1450.0, 200.0, 1450.0, 200.0, 1450.0, 200.0]  # never two breaches in a row
    store_hours(database, clock, *(hour(i, {"country=BR": v}) for i, v in enumerate(flapping)))
    deliver(database, settings, clock)
    assert webhook.requests == [] and smtp_server.messages == []
    with database.connect() as conn:
        assert outbox.unrouted(conn) == [] and outbox.recent_deliveries(conn) == []


def test_alerts_that_fire_together_arrive_as_one_message(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    both = {"country=BR": 1450.0, "country=SE": 1600.0, "country=US": 1700.0}
    store_hours(database, clock, hour(0, both, p50=600.0), hour(1, both, p50=700.0))
    dispatcher = dispatcher_for(database, settings, clock)
    dispatcher.run_once()
    assert webhook.requests == []  # the group is still waiting
    clock.advance(seconds=31)
    dispatcher.run_once()
    [message] = webhook.bodies
    lines = message["text"].splitlines()
    assert len(lines) == 6  # p99 and p50 rules on three countries
    assert message["blocks"][0]["text"]["text"] == "[FIRING:6] latency: 6 alerts"
    assert {line.split(" [")[1].split("]")[0] for line in lines} == {
        "country=BR", "country=SE", "country=US"}
    [mail] = smtp_server.messages
    assert mail["Subject"] == "[FIRING:6] latency: 6 alerts"


def test_an_alert_that_stays_firing_is_repeated_after_the_repeat_interval(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    store_hours(database, clock, hour(0, {"*": 1450.0}), hour(1, {"*": 1500.0}))
    deliver(database, settings, clock)
    store_hours(database, clock, hour(2, {"*": 1600.0}))  # still firing, 1 h later: quiet
    deliver(database, settings, clock)
    assert len(webhook.requests) == 1
    clock.advance(hours=4)
    deliver(database, settings, clock)
    assert [b["text"].split(" latency")[0] for b in webhook.bodies] == ["FIRING",
                                                                        "STILL FIRING"]
    assert "value 1600" in webhook.bodies[1]["text"]
    assert len(smtp_server.messages) == 2


def test_routes_pick_channels_and_a_route_to_an_unconfigured_channel_is_recorded(
    database: Database, smtp_server: SmtpServer, webhook: WebhookReceiver, clock: Clock,
) -> None:
    only_slack = AlertSettings.from_env({
        "MONITOR_SLACK_WEBHOOK_URL": webhook.url,
        "MONITOR_ALERT_ROUTES": '[{"severity": ["critical"], "channels": ["email"]}]'})
    store_hours(database, clock, hour(0, {"*": 1450.0}, p50=600.0),
                hour(1, {"*": 1500.0}, p50=700.0))
    deliver(database, only_slack, clock)
    assert [b["text"].split(":")[0] for b in webhook.bodies] == [
        "FIRING latency [*] p50 over 500ms"]  # the warning; the critical one goes to email
    with database.connect() as conn:
        [failed] = [d for d in outbox.recent_deliveries(conn) if d.status == "failed"]
    assert failed.channel == "email" and failed.notification.severity == "critical"
    assert "set MONITOR_SMTP_URL" in (failed.last_error or "")


def test_a_server_error_is_retried_and_a_rejected_message_given_up(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    dispatcher = dispatcher_for(database, settings, clock)
    webhook.status = 503
    store_hours(database, clock, hour(0, {"*": 1450.0}), hour(1, {"*": 1500.0}))
    clock.advance(seconds=31)
    assert dispatcher.run_once().failed_attempts == 1  # slack 503; email went through
    webhook.status = 200
    clock.advance(seconds=5)
    assert dispatcher.run_once().messages_sent == 0  # backing off for 10 s
    clock.advance(seconds=5)
    assert dispatcher.run_once().messages_sent == 1
    assert len(webhook.requests) == 1

    webhook.status = 400  # e.g. the webhook was revoked: retrying will not help
    store_hours(database, clock, hour(2, {"*": 100.0}))
    clock.advance(seconds=31)
    report = dispatcher.run_once()
    assert (report.gave_up, report.messages_sent) == (1, 1)  # slack failed, email sent
    with database.connect() as conn:
        [failed] = [d for d in outbox.recent_deliveries(conn) if d.status == "failed"]
    assert failed.notification.kind == "resolved"
    assert failed.last_error == "Slack webhook answered HTTP 400 Bad Request"


def test_a_channel_down_for_longer_than_give_up_after_moves_on(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    webhook.stop()
    dispatcher = dispatcher_for(database, settings, clock)
    store_hours(database, clock, hour(0, {"*": 1450.0}), hour(1, {"*": 1500.0}))
    clock.advance(seconds=31)
    dispatcher.run_once()
    clock.advance(days=1)
    assert dispatcher.run_once().gave_up == 1
    webhook.start()
    store_hours(database, clock, hour(2, {"*": 100.0}))
    deliver(database, settings, clock)
    [message] = webhook.bodies  # the first firing was given up; the 4 h reminder was not
    assert [line.split(" latency")[0] for line in message["text"].splitlines()] == [
        "STILL FIRING", "RESOLVED"]


def test_the_dispatcher_thread_delivers_in_the_background(
    database: Database, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from monitor.alerts.policy import Policy
    from monitor.notifiers.service import start_dispatcher_thread
    from tests.alerts.test_cli import fire_recently

    monkeypatch.setenv("MONITOR_SLACK_WEBHOOK_URL", webhook.url)
    thread = start_dispatcher_thread(database, policy=Policy(group_wait=timedelta(0)),
                                     poll_seconds=0.05)
    try:
        fire_recently(database, [1450.0, 1500.0])
        deadline = time.monotonic() + 10
        while not webhook.requests and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        thread.stop()
    [body] = webhook.bodies
    assert body["text"].startswith("FIRING latency [country=BR] p99 over 1s")


class Rounds(threading.Event):
    """Stops a dispatcher loop after ``n`` rounds, without waiting between them."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def wait(self, timeout: float | None = None) -> bool:
        self.left -= 1
        if self.left <= 0:
            self.set()
        return self.is_set()


def test_the_dispatcher_loop_outlives_an_unreachable_database(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from monitor.alerts.dispatcher import Dispatcher
    from monitor.storage.alert_store import SqlDispatchStore

    database = Database("postgresql+psycopg://monitor:pw-s3cret@127.0.0.1:1/monitor")
    Dispatcher(SqlDispatchStore(database), {}).run(Rounds(3), poll_seconds=5.0)
    failures = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("alert dispatch round failed")]
    assert len(failures) == 3
    assert "127.0.0.1" in failures[0] and "pw-s3cret" not in caplog.text
    database.dispose()


def test_a_silence_set_during_an_outage_holds_back_what_was_queued(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    webhook.stop()
    smtp_server.stop()
    dispatcher = dispatcher_for(database, settings, clock)
    store_hours(database, clock, hour(0, {"country=BR": 1450.0, "country=SE": 1450.0}),
                hour(1, {"country=BR": 1500.0, "country=SE": 1500.0}))
    clock.advance(seconds=31)
    assert dispatcher.run_once().failed_attempts == 2  # one grouped message per channel
    with database.begin() as conn:
        silence_store.add_silence(conn, Silence(None, segment="country=BR",
                                                ends_at=clock() + timedelta(hours=6),
                                                reason="known", created_by="t"), clock())
    webhook.start()
    smtp_server.start()
    clock.advance(minutes=5)
    assert dispatcher.run_once().messages_sent == 2
    [body] = webhook.bodies
    assert [line.split("]")[0] for line in body["text"].splitlines()] == [
        "FIRING latency [country=SE"]
    assert "country=BR" not in body_text(smtp_server.messages[0], "plain")
    with database.connect() as conn:
        statuses = sorted(d.status for d in outbox.recent_deliveries(conn))
    assert statuses == ["sent", "sent", "silenced", "silenced"]

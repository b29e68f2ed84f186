"""An outage of both channels while alerts fire: nothing is lost, nothing is sent twice,
and each alert's notifications arrive in the order they happened — across a dispatcher
restart in the middle of the outage."""

from __future__ import annotations

import re
from collections import Counter

from monitor.alerts.settings import AlertSettings
from monitor.storage import outbox
from monitor.storage.database import Database
from monitor.storage.store import SqlStore
from tests.alerts.conftest import SMTP_PASSWORD, WEBHOOK_SECRET, dispatcher_for
from tests.alerts.helpers import Clock, hour, latency_metric
from tests.alerts.servers import SmtpServer, WebhookReceiver, body_text

SPEC = latency_metric()
BR = [1450.0, 1500.0, 200.0, 1450.0, 1500.0, 200.0]  # fires, resolves, fires, resolves
SE = [1450.0, 1500.0, 1600.0, 1600.0, 200.0, 200.0]  # fires, resolves
LINE = re.compile(r"^(FIRING|RESOLVED) latency \[(\S+)\] (.+?): .* window (\S+ \S+)-")


def alert_lines(text: str) -> list[tuple[str, str, str, str]]:
    """(kind, segment, rule, window) for each alert line of a message's text."""
    return [(m[1], m[2], m[3], m[4]) for line in text.splitlines() if (m := LINE.match(line))]


def test_nothing_is_lost_or_doubled_across_an_outage_and_a_restart(
    database: Database, settings: AlertSettings, clock: Clock, webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    webhook.stop()
    smtp_server.stop()
    store = SqlStore(database)
    dispatcher = dispatcher_for(database, settings, clock)
    for index, (br, se) in enumerate(zip(BR, SE, strict=True)):
        clock.advance(hours=1)
        store.write_windows_and_evaluate(
            SPEC, 1, "batch", hour(index, {"country=BR": br, "country=SE": se}), clock())
        for _ in range(3):
            clock.advance(seconds=31)
            report = dispatcher.run_once()
            assert report.messages_sent == 0
        if index == 2:
            dispatcher = dispatcher_for(database, settings, clock)  # the process restarts

    with database.connect() as conn:
        deliveries = outbox.recent_deliveries(conn, limit=1000)
    assert {d.status for d in deliveries} == {"pending"}
    tried = [d for d in deliveries if d.attempts]
    assert tried and all("unreachable" in (d.last_error or "") for d in tried)
    assert not any(secret in (d.last_error or "") for d in tried
                   for secret in (SMTP_PASSWORD, WEBHOOK_SECRET))

    webhook.start()
    smtp_server.start()
    dispatcher = dispatcher_for(database, settings, clock)  # and restarts again
    for _ in range(10):
        clock.advance(minutes=5)
        dispatcher.run_once()
    with database.connect() as conn:
        deliveries = outbox.recent_deliveries(conn, limit=1000)
    assert {d.status for d in deliveries} == {"sent"}

    expected = [("FIRING", "country=BR", "01:00"), ("RESOLVED", "country=BR", "02:00"),
                ("FIRING", "country=BR", "04:00"), ("RESOLVED", "country=BR", "05:00"),
                ("FIRING", "country=SE", "01:00"), ("RESOLVED", "country=SE", "04:00")]
    slack = [line for body in webhook.bodies for line in alert_lines(body["text"])]
    plain = [body_text(m, "plain") for m in smtp_server.messages]
    email = [line for text in plain for line in alert_lines(text)]
    for received in (slack, email):
        got = [(kind, segment, window[-5:]) for kind, segment, _, window in received]
        assert Counter(got) == Counter(expected)  # each exactly once
        for segment in ("country=BR", "country=SE"):  # in order per alert
            mine = [g for g in got if g[1] == segment]
            assert mine == [e for e in expected if e[1] == segment]
    keys = [body["idempotency_key"] for body in webhook.bodies]
    assert len(keys) == len(set(keys))
    message_ids = [m["Message-ID"] for m in smtp_server.messages]
    assert len(message_ids) == len(set(message_ids))

"""``monitor alerts dispatch`` started while Postgres is down waits for it, one log line per
try, and delivers once it is up, as it does through an outage that starts later."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from monitor.storage.database import Database
from monitor.storage.migrate import upgrade
from tests.alerts.conftest import WEBHOOK_SECRET
from tests.alerts.servers import WebhookReceiver
from tests.alerts.test_cli import fire_recently
from tests.cli_process import CliProcess
from tests.outage_proxy import OutageProxy
from tests.storage.conftest import throwaway_postgres

PASSWORD = "dispatch-s3cret"  # the test server trusts local users, so any password works


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with throwaway_postgres("monitor_dispatch") as url:
        upgrade(url)
        yield make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def test_a_dispatcher_started_while_postgres_is_down_waits_and_then_delivers(
    postgres_url: str, webhook: WebhookReceiver,
) -> None:
    with Database(postgres_url) as database:
        fire_recently(database, [1450.0, 1500.0])  # a notification is queued
    with OutageProxy.for_url(postgres_url) as proxy:
        proxy.down()
        dispatcher = CliProcess(
            ["alerts", "dispatch", "--group-wait", "0s", "--poll", "0.2",
             "--database-url", proxy.url(postgres_url)],
            {"MONITOR_APP": "", "MONITOR_SLACK_WEBHOOK_URL": webhook.url})
        try:
            dispatcher.wait_for(lambda: dispatcher.output.count("failed (try") >= 2, 20,
                                "two tries while the database is down")
            proxy.up()
            dispatcher.wait_for(lambda: webhook.bodies, 20, "the notification to be delivered")
            dispatcher.wait_for_line("the database is back", 5)
        finally:
            code = dispatcher.stop()
    assert code == 0, dispatcher.output
    assert "FIRING latency [country=BR]" in webhook.bodies[0]["text"]
    tries = [line for line in dispatcher.stderr if "failed (try" in line]
    assert all(line.startswith("WARNING monitor.storage.outages: connecting to the "
                               "database failed (try ")
               and f"postgresql+psycopg://postgres:***@127.0.0.1:{proxy.port}/" in line
               and "Connection refused" in line and "trying again in" in line
               for line in tries)
    assert "Traceback" not in dispatcher.output
    assert PASSWORD not in dispatcher.output and WEBHOOK_SECRET not in dispatcher.output
    assert dispatcher.stderr[-1] == "dispatcher stopped\n"


def test_a_dispatcher_stopped_while_waiting_for_postgres_exits_cleanly(
    postgres_url: str,
) -> None:
    with OutageProxy.for_url(postgres_url) as proxy:
        proxy.down()
        dispatcher = CliProcess(["alerts", "dispatch", "--database-url",
                                 proxy.url(postgres_url)], {"MONITOR_APP": ""})
        try:
            dispatcher.wait_for_line("failed (try 1)", 20)
        finally:
            code = dispatcher.stop()
    assert code == 0, dispatcher.output
    assert dispatcher.stderr[-1] == "dispatcher stopped\n"

"""No secret reaches any page: not the database password (in the URL the dashboard is
given), not the Slack webhook URL nor the SMTP password (in the environment), even when
they were stored in rows by a careless producer or channel.

The database is a throwaway Postgres database reached with a password (the test server
trusts loopback, so any password works): a copy of the seeded one, with the secrets
planted in a delivery error and a dead letter. Every element of every page is checked
in its serialized form: text, tables, chart specs and chart data.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from monitor.alerts.settings import SLACK_ENV, SMTP_ENV
from monitor.storage.migrate import upgrade
from tests.dashboard.conftest import PAGES, AppFactory
from tests.dashboard.helpers import page_bytes
from tests.dashboard.seed import SLOW_VIEWS, Seeded, copy_database, plant_secrets
from tests.storage.conftest import throwaway_postgres

DB_PASSWORD = "pg-Secret-4f9a2"
WEBHOOK_TOKEN = "xoxDashSecret123"
WEBHOOK = f"https://hooks.slack.com/services/T0DASH/B0DASH/{WEBHOOK_TOKEN}"
SMTP_PASSWORD = "smtp-Secret-77c1"
SMTP_URL = f"smtp://bot:{SMTP_PASSWORD}@mail.internal:2525?starttls=true&from=a@b.c"
SECRETS = (DB_PASSWORD, WEBHOOK, WEBHOOK_TOKEN, SMTP_PASSWORD)


@pytest.fixture(scope="module")
def secret_url(seeded: Seeded) -> Iterator[str]:
    with throwaway_postgres("monitor_dashboard") as url:
        with_password = make_url(url).set(password=DB_PASSWORD).render_as_string(
            hide_password=False)
        upgrade(with_password)
        copy_database(seeded.url, with_password)
        plant_secrets(with_password, [DB_PASSWORD, WEBHOOK, SMTP_PASSWORD])
        yield with_password


def test_no_secret_appears_on_any_page(secret_url: str, run_app: AppFactory,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SLACK_ENV, WEBHOOK)
    monkeypatch.setenv(SMTP_ENV, SMTP_URL)
    shown = {page: page_bytes(run_app(secret_url, page=page)) for page in PAGES}
    shown["metric:latency"] = page_bytes(run_app(secret_url, metric="latency"))
    # the seeded assertion whose sample holds the planted secret (the page opens on the
    # first assertion by name, the example app's fav_consistency)
    shown["assertion:slow_views"] = page_bytes(run_app(secret_url, page="assertions",
                                                       metric=SLOW_VIEWS.name))
    shown["alert link"] = page_bytes(run_app(secret_url, page="alerts", metric="latency",
                                             segment="*", stage="batch"))
    for page, blob in shown.items():
        for secret in SECRETS:
            assert secret.encode() not in blob, f"{secret!r} is on the {page} page"
    assert b"postgres:***@" in shown["overview"]  # the database is named, masked
    assert b"POST *** *** *** failed" in shown["alerts"]  # the planted error, scrubbed
    assert b'{"password": "***"}' in shown["dead_letters"]
    # the planted example's field, scrubbed
    assert b"*** *** ***" in shown["assertion:slow_views"]

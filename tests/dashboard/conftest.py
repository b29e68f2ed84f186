"""A seeded results database (read-only for the tests), an empty one, and AppTest runs of
the dashboard against either."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from monitor.storage.database_url import DATABASE_URL_ENV
from monitor.storage.migrate import upgrade
from tests.dashboard.seed import Seeded, seed

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = ("overview", "metric", "drift", "tails", "performance", "assertions", "alerts",
         "dead_letters")
TIMEOUT_S = 30

AppFactory = Callable[..., AppTest]


@pytest.fixture(scope="session")
def seeded_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where :func:`seeded` puts its database (known before it is filled)."""
    return f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'seeded.sqlite'}"


@pytest.fixture(scope="session")
def seeded(seeded_url: str) -> Seeded:
    return seed(seeded_url)


@pytest.fixture(scope="session")
def empty_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'empty.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture
def run_app(monkeypatch: pytest.MonkeyPatch) -> AppFactory:
    """``run_app(url, page="metric", metric="latency")``: the app on ``url``, run once on
    ``page`` (the entry page when None) with the rest as URL query parameters."""

    def run(url: str, page: str | None = None, **params: str) -> AppTest:
        monkeypatch.setenv(DATABASE_URL_ENV, url)
        app = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
        for name, value in params.items():
            app.query_params[name] = value
        app.run()
        if page is not None:
            app.switch_page(f"screens/{page}.py").run()
        assert not app.exception, [e.message for e in app.exception]
        return app

    return run

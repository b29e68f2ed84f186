"""A dispatcher assembled from the environment and the app's routes, for the commands
that deliver alerts (``monitor alerts dispatch``, ``monitor batch schedule
--dispatch-alerts``) and for embedding (the demo): settings are read here, once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monitor.alerts.dispatcher import Dispatcher, DispatcherThread
from monitor.alerts.policy import Policy
from monitor.alerts.routing import Route
from monitor.alerts.settings import AlertSettings
from monitor.notifiers.channels import build_channels
from monitor.storage.alert_store import SqlDispatchStore
from monitor.storage.database import Database


def dispatcher_from_env(database: Database, app_routes: Sequence[Route] = (),
                        policy: Policy | None = None,
                        environ: Mapping[str, str] | None = None,
                        settings: AlertSettings | None = None) -> Dispatcher:
    """A dispatcher over ``database`` with the channels and routes of the environment
    (``MONITOR_ALERT_ROUTES`` first, then ``app_routes``), or of ``settings`` when given."""
    settings = settings or AlertSettings.from_env(environ)
    return Dispatcher(SqlDispatchStore(database), build_channels(settings),
                      routes=[*settings.routes, *app_routes], policy=policy,
                      secrets=settings.secrets(), missing=settings.missing)


def start_dispatcher_thread(database: Database, app_routes: Sequence[Route] = (),
                            policy: Policy | None = None, poll_seconds: float = 1.0
                            ) -> DispatcherThread:
    """:func:`dispatcher_from_env` looping in a daemon thread; ``.stop()`` it when done."""
    return DispatcherThread(dispatcher_from_env(database, app_routes, policy),
                            poll_seconds).start()

"""The app the command runs: ``--app`` or ``$MONITOR_APP``, loaded with errors as usage errors."""

from __future__ import annotations

import os
import sys

import click

from monitor.app_loading import AppLoadError, MalformedAppTarget
from monitor.app_loading import load_app as load_app_target
from monitor.registry import Monitor
from monitor.spec import MetricSpec

APP_ENV = "MONITOR_APP"


def app_target(target: str | None) -> str:
    """``target`` (--app) or else ``$MONITOR_APP``; a usage error when neither is set."""
    target = target or os.environ.get(APP_ENV)
    if not target:
        raise click.UsageError(
            f"which app? pass --app module:attribute or set {APP_ENV}, "
            "e.g. --app examples.music_home:mon"
        )
    return target


def load_app(target: str | None) -> Monitor:
    """The Monitor at ``target`` (or ``$MONITOR_APP``), see :func:`monitor.app_loading.load_app`."""
    target = app_target(target)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the user's own modules live where they run us
    try:
        return load_app_target(target)
    except MalformedAppTarget as err:
        raise click.UsageError(str(err)) from None
    except AppLoadError as err:
        raise click.ClickException(str(err)) from err


def find_metric(app: Monitor, name: str) -> MetricSpec:
    try:
        return app.get(name)
    except KeyError as err:
        raise click.ClickException(str(err.args[0])) from None

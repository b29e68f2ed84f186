"""Loading the user's Monitor from ``module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys

import click

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
    """Import ``module:attribute`` (or ``$MONITOR_APP``) and check it is a Monitor."""
    target = app_target(target)
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise click.UsageError(f"--app {target!r} must look like module:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the user's own modules live where they run us
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise click.ClickException(f"cannot import {module_name!r} for --app: {err}") from err
    app = getattr(module, attribute, None)
    if not isinstance(app, Monitor):
        raise click.ClickException(
            f"{target} is {type(app).__name__}, not a monitor.Monitor; point --app at the "
            "Monitor your module builds"
        )
    return app


def find_metric(app: Monitor, name: str) -> MetricSpec:
    try:
        return app.get(name)
    except KeyError as err:
        raise click.ClickException(str(err.args[0])) from None

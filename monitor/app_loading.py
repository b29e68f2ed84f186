"""Loading the user's Monitor from its app target, ``module:attribute``.

Every process that runs the user's metrics imports them this way: the command line from
``--app`` (or ``MONITOR_APP``), the batch scheduler's jobs and a streaming worker's
processor from the target the command line was given (metric definitions hold user code,
which need not pickle, so a process imports the app itself rather than receive it).
"""

from __future__ import annotations

import importlib

from monitor.errors import MonitorError
from monitor.registry import Monitor


class AppLoadError(MonitorError):
    """The app target names no Monitor that can be imported; the message says why."""


class MalformedAppTarget(AppLoadError, ValueError):
    """The app target is not of the form ``module:attribute``."""


def load_app(target: str) -> Monitor:
    """Import ``module:attribute`` and check that it is a Monitor.

    >>> load_app("monitor")
    Traceback (most recent call last):
    ...
    monitor.app_loading.MalformedAppTarget: --app 'monitor' must look like module:attribute
    >>> load_app("monitor:__name__")
    Traceback (most recent call last):
    ...
    monitor.app_loading.AppLoadError: monitor:__name__ is str, not a monitor.Monitor; point \
--app at the Monitor your module builds
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise MalformedAppTarget(f"--app {target!r} must look like module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise AppLoadError(f"cannot import {module_name!r} for --app: {err}") from err
    app = getattr(module, attribute, None)
    if not isinstance(app, Monitor):
        raise AppLoadError(
            f"{target} is {type(app).__name__}, not a monitor.Monitor; point --app at the "
            "Monitor your module builds"
        )
    return app

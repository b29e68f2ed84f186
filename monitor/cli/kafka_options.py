"""Options shared by the commands that talk to Kafka."""

from __future__ import annotations

from typing import Any

import click

from streaming.broker import BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP


def bootstrap_option(function: Any) -> Any:
    """``--bootstrap``, read from ``MONITOR_KAFKA_BOOTSTRAP`` when not given."""
    return click.option(
        "--bootstrap", envvar=BOOTSTRAP_ENV, default=DEFAULT_BOOTSTRAP, show_default=True,
        show_envvar=True, metavar="HOST:PORT[,...]",
        help="The Kafka cluster; the default is where `monitor broker` listens.",
    )(function)

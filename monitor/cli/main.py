"""The ``monitor`` command."""

from __future__ import annotations

import logging

import click

from monitor.cli.alerts_cmd import alerts_group
from monitor.cli.batch_cmd import batch_group
from monitor.cli.broker_cmd import broker
from monitor.cli.dashboard_cmd import dashboard_command
from monitor.cli.db_cmd import db_group
from monitor.cli.demo_cmd import demo
from monitor.cli.metrics_cmd import metrics_group
from monitor.cli.promote_cmd import promote
from monitor.cli.research_cmd import research_group
from monitor.cli.schedule_cmd import schedule_command
from monitor.cli.stream_cmd import stream_group
from monitor.cli.values_cmd import values_group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--app", "app_target", metavar="MODULE:ATTR", envvar="MONITOR_APP",
              help="The Monitor to use, e.g. examples.music_home:mon [env: MONITOR_APP].")
@click.option("-v", "--verbose", is_flag=True, help="Log more about what is happening.")
@click.pass_context
def cli(ctx: click.Context, app_target: str | None, verbose: bool) -> None:
    """domain-monitor: ML metrics that mature from research to batch to streaming.

    Register metrics in a Python module of yours (a monitor.Monitor), then point this
    command at it with --app or MONITOR_APP. Start with `monitor metrics list`, then
    try a metric on a file with `monitor research run METRIC --data FILE` and check its
    alert rules against history with `monitor research backtest METRIC --data FILE`.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"app_target": app_target}


cli.add_command(metrics_group)
cli.add_command(research_group)
cli.add_command(db_group)
cli.add_command(batch_group)
batch_group.add_command(schedule_command)
cli.add_command(promote)
cli.add_command(values_group)
cli.add_command(stream_group)
cli.add_command(broker)
cli.add_command(alerts_group)
cli.add_command(dashboard_command)
cli.add_command(demo)

"""The ``monitor`` command."""

from __future__ import annotations

import importlib
import logging

import click

# Each command's module is imported when that command runs: importing them all (Faust,
# Streamlit, APScheduler, SQLAlchemy models, scipy) made every `monitor ...` take ~3.5 s.
COMMANDS = {
    "metrics": "monitor.cli.metrics_cmd:metrics_group",
    "research": "monitor.cli.research_cmd:research_group",
    "db": "monitor.cli.db_cmd:db_group",
    "batch": "monitor.cli.schedule_cmd:batch_group",  # with `schedule` added
    "promote": "monitor.cli.promote_cmd:promote",
    "values": "monitor.cli.values_cmd:values_group",
    "stream": "monitor.cli.stream_cmd:stream_group",
    "broker": "monitor.cli.broker_cmd:broker",
    "alerts": "monitor.cli.alerts_cmd:alerts_group",
    "dashboard": "monitor.cli.dashboard_cmd:dashboard_command",
    "demo": "monitor.cli.demo_cmd:demo",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (listing them imports all)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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



"""The ``monitor`` command."""

from __future__ import annotations

import importlib
import logging

import click

# Each command's module is imported when that command runs: importing them all (Faust,
# Streamlit, APScheduler, SQLAlchemy models, scipy) made every `monitor ...` take ~3.5 s.
# `monitor --help` lists the summaries below instead of importing every command for its
# own; tests/test_cli_help.py fails when one drifts from its command's docstring.
COMMANDS = {
    "metrics": ("monitor.cli.metrics_cmd:metrics_group", "Inspect the registered metrics."),
    "research": ("monitor.cli.research_cmd:research_group",
                 "Compute a metric ad hoc and backtest its alerts on history."),
    "db": ("monitor.cli.db_cmd:db_group", "Create and migrate the database that keeps "
           "values, states and the metric catalog."),
    "batch": ("monitor.cli.schedule_cmd:batch_group",  # with `schedule` added
              "Compute metrics in the batch stage, one-shot or on a schedule."),
    "promote": ("monitor.cli.promote_cmd:promote",
                "Move METRIC's current version to another stage."),
    "values": ("monitor.cli.values_cmd:values_group", "Read the stored metric values."),
    "stream": ("monitor.cli.stream_cmd:stream_group",
               "Send events to Kafka and run the streaming stage."),
    "broker": ("monitor.cli.broker_cmd:broker", "Run a Kafka-compatible broker (Tansu, in "
               "memory) on 127.0.0.1 until Ctrl-C."),
    "assertions": ("monitor.cli.assertions_cmd:assertions_group",
                   "Get the examples an assertion keeps out of the database."),
    "alerts": ("monitor.cli.alerts_cmd:alerts_group", "See, silence and deliver alerts."),
    "dashboard": ("monitor.cli.dashboard_cmd:dashboard_command", "Serve the dashboard: "
                  "metrics, stages, drift, tails, alerts and dead letters."),
    "demo": ("monitor.cli.demo_cmd:demo", "Everything end to end: research, batch, "
             "streaming, alerts and the dashboard."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, COMMANDS[name][1]))
            elif (command := super().get_command(ctx, name)) is not None:
                rows.append((name, command.get_short_help_str(limit=200)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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



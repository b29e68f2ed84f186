"""``monitor metrics ...``: what is registered."""

from __future__ import annotations

import click
import pandas as pd

from monitor.cli.app import load_app


@click.group("metrics")
def metrics_group() -> None:
    """Inspect the registered metrics."""


@metrics_group.command("list")
@click.pass_context
def list_metrics(ctx: click.Context) -> None:
    """Every metric with its stream, stage, window, segments, fields, alerts and owner."""
    app = load_app(ctx.obj["app_target"])
    if not app.metrics:
        click.echo("no metrics registered in this app yet; add some with mon.metric(...)")
        return
    rows = [
        {
            "metric": m.name,
            "stream": m.stream.name,
            "stage": "research",
            "window": m.window,
            "segments": ",".join(m.segment_by) or "-",
            "fields": _fields(m.fields),
            "alerts": len(m.alerts),
            "owner": m.owner or "-",
        }
        for m in sorted(app.metrics.values(), key=lambda m: m.name)
    ]
    click.echo(pd.DataFrame(rows).to_string(index=False))


def _fields(fields: tuple[str, ...] | None, width: int = 30) -> str:
    """The field names, cut to about ``width`` characters so the table stays readable."""
    if fields is None:
        return "(from reference)"
    joined = ",".join(fields)
    if len(joined) <= width:
        return joined
    return f"{len(fields)} fields: {fields[0]},..."

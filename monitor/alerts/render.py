r"""What a message says: a subject, plain text, HTML and a Slack payload for a group.

Pure functions of the notifications, so the wording is tested without a server. Each
alert line tells what a person on call needs first: firing or resolved, the metric and
segment, the window, the value against the threshold, and a link to the dashboard page.
The lines of a detail after its first (a firing assertion's example ids and the command
that exports the rest, :mod:`monitor.alerts.examples`) follow the alert's line.

>>> from datetime import datetime, UTC
>>> from monitor.alerts.records import AlertKey, Notification
>>> t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
>>> t1 = datetime(2026, 3, 2, 11, tzinfo=UTC)
>>> note = Notification("k1", "firing", AlertKey("latency", 1, "batch", "p99 over 1s", "*"),
...                     "critical", {"metric": "latency", "owner": "platform"}, t0, t1,
...                     1450.0, 1000.0, "1450 > 1000", t1)
>>> print(subject([note]))
[FIRING] latency: p99 over 1s (critical)
>>> print(alert_line(note).replace(", window", "\n  window"))
FIRING latency [*] p99 over 1s: value 1450 vs threshold 1000 (1450 > 1000)
  window 2026-03-02 10:00-11:00 UTC
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from monitor.alerts.records import Notification

HEADLINES = {"firing": "FIRING", "resolved": "RESOLVED", "repeat": "STILL FIRING",
             "test": "TEST"}
EMOJI = {"firing": ":rotating_light:", "resolved": ":white_check_mark:",
         "repeat": ":bell:", "test": ":wave:"}


def dashboard_link(base_url: str, note: Notification) -> str:
    """The dashboard page of the alert's metric and segment."""
    query = urlencode({"page": "alerts", "metric": note.alert.metric,
                       "segment": note.alert.segment, "stage": note.alert.stage})
    return f"{base_url.rstrip('/')}/?{query}"


def subject(notes: Sequence[Notification]) -> str:
    first = notes[0]
    kinds = sorted({HEADLINES[n.kind] for n in notes})
    head = "/".join(kinds)
    if len(notes) == 1:
        return f"[{head}] {first.alert.metric}: {first.alert.rule} ({first.severity})"
    metrics = sorted({n.alert.metric for n in notes})
    return f"[{head}:{len(notes)}] {', '.join(metrics)}: {len(notes)} alerts"


def _slack(text: str) -> str:
    """Text as Slack's mrkdwn shows it literally: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.6g}"


def _window(note: Notification) -> str:
    return f"{note.window_start:%Y-%m-%d %H:%M}-{note.window_end:%H:%M} UTC"


def alert_line(note: Notification) -> str:
    """One line per alert: what, where, how far over, when."""
    a = note.alert
    return (f"{HEADLINES[note.kind]} {a.metric} [{a.segment}] {a.rule}: value "
            f"{_number(note.value)} vs threshold {_number(note.bound)} ({note.finding}), "
            f"window {_window(note)}")


def text_body(notes: Sequence[Notification], dashboard_url: str, key: str) -> str:
    lines = []
    for note in notes:
        lines.append(alert_line(note))
        lines.extend(f"  {line}" for line in note.notes)
        owner = note.labels.get("owner")
        lines.append(f"  severity {note.severity}, stage {note.alert.stage}"
                     + (f", owner {owner}" if owner else ""))
        lines.append(f"  {dashboard_link(dashboard_url, note)}")
    lines.append("")
    lines.append(f"notification id {key}")
    return "\n".join(lines) + "\n"


def html_body(notes: Sequence[Notification], dashboard_url: str, key: str) -> str:
    rows = []
    for note in notes:
        a = note.alert
        link = html.escape(dashboard_link(dashboard_url, note), quote=True)
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in (
                HEADLINES[note.kind], a.metric, a.segment, a.rule, note.severity,
                _number(note.value), _number(note.bound), _window(note)))
            + f'<td><a href="{link}">dashboard</a></td></tr>'
        )
        if note.notes:  # an assertion's example ids, under its row
            rows.append(f'<tr><td></td><td colspan="8">'
                        f'{"<br>".join(html.escape(line) for line in note.notes)}</td></tr>')
    header = "".join(f"<th>{h}</th>" for h in ("", "metric", "segment", "rule", "severity",
                                               "value", "threshold", "window", ""))
    return (f"<html><body><h3>{html.escape(subject(notes))}</h3>"
            f"<table border=\"1\" cellpadding=\"4\"><tr>{header}</tr>{''.join(rows)}</table>"
            f"<p style=\"color:#888\">notification id {html.escape(key)}</p></body></html>")


def slack_payload(notes: Sequence[Notification], dashboard_url: str, key: str
                  ) -> dict[str, Any]:
    """An incoming-webhook body: ``text`` for notifications and clients without blocks,
    one section per alert, and the idempotency key in a context line and a field."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": subject(notes)[:150]}}]
    for note in notes:
        link = dashboard_link(dashboard_url, note)
        a = note.alert
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"{EMOJI[note.kind]} *{HEADLINES[note.kind]}* `{a.metric}` [{a.segment}] "
            f"{a.rule}\nvalue *{_number(note.value)}* vs threshold {_number(note.bound)} "
            f"({note.finding})\nwindow {_window(note)} · {note.severity} · "
            f"<{link}|dashboard>" + "".join(f"\n{_slack(line)}" for line in note.notes))}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"domain-monitor · notification id {key}"}]})
    return {"text": "\n".join(alert_line(n) for n in notes), "blocks": blocks,
            "idempotency_key": key}

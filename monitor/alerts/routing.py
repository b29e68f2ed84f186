"""Routing: which channels a notification goes to, by metric, severity and labels.

Routes are tried in order and the first that matches decides; a notification no route
matches goes to every configured channel (so a team that sets only a Slack webhook gets
everything in Slack without writing a route). A route may name a channel that is not
configured (its secret is not in the environment); the dispatcher records that delivery
as failed with the variable to set, rather than dropping it silently.

>>> routes = [Route(("email",), severity=("critical",)), Route((), metric="ctr")]
>>> channels_for({"metric": "latency", "severity": "critical"}, routes, ("slack", "email"))
('email',)
>>> channels_for({"metric": "ctr", "severity": "warning"}, routes, ("slack", "email"))
()
>>> channels_for({"metric": "latency", "severity": "info"}, routes, ("slack",))
('slack',)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.alerts.rules import SEVERITIES

CHANNELS = ("slack", "email")


@dataclass(frozen=True)
class Route:
    """Send matching notifications to ``channels`` (an empty tuple drops them)."""

    channels: tuple[str, ...]
    metric: str | None = None
    severity: tuple[str, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.channels, str):
            raise ValueError(f"route channels must be a list, e.g. [{self.channels!r}]")
        if unknown := [c for c in self.channels if c not in CHANNELS]:
            raise ValueError(f"route to unknown channel {unknown[0]!r}; channels are "
                             f"{', '.join(CHANNELS)}")
        if isinstance(self.severity, str):
            raise ValueError(f"route severity must be a list, e.g. [{self.severity!r}]")
        for severity in self.severity or ():
            if severity not in SEVERITIES:
                raise ValueError(f"route severity {severity!r} is not one of "
                                 f"{', '.join(SEVERITIES)}")

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.metric is not None and labels.get("metric") != self.metric:
            return False
        if self.severity is not None and labels.get("severity") not in self.severity:
            return False
        return all(labels.get(name) == value for name, value in self.labels.items())


def channels_for(labels: Mapping[str, str], routes: Sequence[Route],
                 configured: Sequence[str]) -> tuple[str, ...]:
    """The channels of the first matching route, else every configured channel."""
    for route in routes:
        if route.matches(labels):
            return route.channels
    return tuple(configured)


def routes_from_json(text: str) -> list[Route]:
    """Routes from ``MONITOR_ALERT_ROUTES``, a JSON list such as
    ``[{"severity": ["critical"], "channels": ["slack", "email"]}, {"channels": ["slack"]}]``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"alert routes are not valid JSON ({err}); expected a list like "
                         '[{"metric": "latency", "channels": ["email"]}]') from None
    if not isinstance(data, list):
        raise ValueError("alert routes must be a JSON list of objects with \"channels\"")
    return [route_from_dict(item) for item in data]


def route_from_dict(item: Any) -> Route:
    if not isinstance(item, dict) or "channels" not in item:
        raise ValueError(f"alert route {item!r} needs \"channels\", e.g. "
                         '{"severity": ["critical"], "channels": ["email"]}')
    unknown = set(item) - {"channels", "metric", "severity", "labels"}
    if unknown:
        raise ValueError(f"alert route has unknown keys {sorted(unknown)}; use channels, "
                         "metric, severity, labels")
    severity = item.get("severity")
    return Route(tuple(item["channels"]) if isinstance(item["channels"], list)
                 else item["channels"], metric=item.get("metric"),
                 severity=tuple(severity) if isinstance(severity, list) else severity,
                 labels=dict(item.get("labels") or {}))

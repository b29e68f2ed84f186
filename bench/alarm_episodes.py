"""Alert episodes over one series of hourly windows, and which of them are false alarms and
which catch an incident: the pure part of bench/estimate_alarms.py.

The episodes come from :func:`monitor.alerts.walk.walk`, the walk the backtest and the
live stages share, so a rule fires here where it would fire there. A series is one
segment's values hour by hour (NaN: no window that hour, as if it were not stored).

>>> from monitor.alerts.rules import Threshold
>>> rule = Threshold("v", below=0.5, for_windows=2)
>>> found = episodes([0.9, 0.4, 0.4, 0.9, 0.4, 0.4, 0.4, 0.9, 0.9], rule)
>>> found
[Episode(fired=2, resolved=3), Episode(fired=5, resolved=7)]
>>> score(found, 9, incident=(4, 7), for_windows=2)
Scored(false_alarms=1, quiet_hours=5, caught=True, delay_hours=2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.alerts.rules import Rule
from monitor.alerts.walk import Position, Window, walk

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # any hour: only the windows' order matters
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Episode:
    """An alert that fired at the close of window ``fired`` and resolved at window
    ``resolved`` (None: still firing at the end), both as hour indices of the series."""

    fired: int
    resolved: int | None


@dataclass(frozen=True)
class Scored:
    """One series judged against its incident (hours ``[start, end)``, or none).

    ``false_alarms`` are the episodes that fired in ``quiet_hours``: every hour but those
    whose firing depends on an incident window (the incident's hours and the
    ``for_windows - 1`` after it). ``caught``: an episode fired inside the incident (None
    without one); ``delay_hours``: from the incident's start to the close of the window
    that fired it."""

    false_alarms: int
    quiet_hours: int
    caught: bool | None
    delay_hours: int | None


def episodes(values: Iterable[float], rule: Rule) -> list[Episode]:
    """The episodes ``rule`` fires walking ``values`` (one per hour) from a quiet start."""
    windows: list[Window] = [(EPOCH + i * HOUR, EPOCH + (i + 1) * HOUR, float(v), None)
                             for i, v in enumerate(values) if not math.isnan(v)]
    found: list[Episode] = []
    fired: int | None = None
    for step in walk(rule, Position(), [], windows).steps:
        hour = (step.window_start - EPOCH) // HOUR
        if step.transition == "firing":
            fired = hour
        elif step.transition == "resolved" and fired is not None:
            found.append(Episode(fired, hour))
            fired = None
    if fired is not None:
        found.append(Episode(fired, None))
    return found


def score(found: Sequence[Episode], hours: int, incident: tuple[int, int] | None,
          for_windows: int) -> Scored:
    """Count ``found``'s false alarms over ``hours`` hours and whether it caught
    ``incident``; see :class:`Scored`."""
    if incident is None:
        return Scored(len(found), hours, None, None)
    start, end = incident
    if not 0 <= start < end <= hours:
        raise ValueError(f"the incident [{start}, {end}) is not inside {hours} hours")
    tainted = range(start, min(end + for_windows - 1, hours))
    false_alarms = sum(1 for e in found if e.fired not in tainted)
    inside = [e.fired for e in found if start <= e.fired < end]
    delay = inside[0] + 1 - start if inside else None
    return Scored(false_alarms, hours - len(tainted), bool(inside), delay)

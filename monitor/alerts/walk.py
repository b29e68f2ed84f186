"""Walk one alert over newly stored windows: the pure core of live evaluation.

The live stages keep, per alert, its lifecycle state and the start of the last window
they evaluated. ``walk`` checks each newer window against the rule, with the windows
before it as history, and skips windows at or before the last evaluated one — so storing
a window twice never fires twice. The research backtest walks a whole series from an
empty position with this same function.

The history of a window is the previous ``rule.history_needed`` windows, or every window
that started within ``rule.history_span`` before it (a seasonal baseline), leaving out
windows of fewer events than the rule's ``min_count``. The live evaluation reads the
history of its first new window from the store in that way
(:mod:`monitor.alerts.evaluate`) and the walk keeps the windows it passes in the same
way, so a window sees the same history whether it comes alone, in a batch, or in a
backtest.

>>> from datetime import datetime, timedelta, UTC
>>> from monitor.alerts.rules import Threshold
>>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
>>> hours = [(t0 + timedelta(hours=h), t0 + timedelta(hours=h + 1), v, 100)
...          for h, v in enumerate([1.0, 6.0, 7.0])]
>>> walked = walk(Threshold("x", above=5, for_windows=2), Position(), [], hours)
>>> [(step.transition, step.window_start.hour) for step in walked.steps]
[('pending', 1), ('firing', 2)]
>>> walk(Threshold("x", above=5, for_windows=2), walked.position, [], hours).steps
[]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.alerts.lifecycle import AlertState, Transition, step
from monitor.alerts.rules import Check, Point, Rule

# start, end, value of the rule's field, and the window's count of events (None: unknown)
Window = tuple[datetime, datetime, float, int | None]


@dataclass(frozen=True)
class Position:
    """Where an alert stands: its lifecycle state and the last window it has seen."""

    state: AlertState = field(default_factory=AlertState)
    last_window: datetime | None = None
    active_since: datetime | None = None  # first breached window of the current episode


@dataclass(frozen=True)
class Step:
    transition: Transition
    window_start: datetime
    window_end: datetime
    value: float
    check: Check


@dataclass(frozen=True)
class Walked:
    position: Position
    steps: list[Step]
    last: tuple[float, Check] | None  # value and check of the newest window walked


class History:
    """The earlier windows a rule compares with, oldest first, trimmed as the walk goes."""

    def __init__(self, rule: Rule, points: Sequence[Point]) -> None:
        self.rule = rule
        self.points = [p for p in points if rule.enough_events(p.count)]
        if rule.history_span is None:
            self._trim_to_count()

    def before(self, start: datetime) -> list[Point]:
        """The history of a window starting at ``start``."""
        span = self.rule.history_span
        if span is not None:
            oldest = start - span
            drop = 0
            while drop < len(self.points) and _start(self.points[drop]) < oldest:
                drop += 1
            del self.points[:drop]
        return self.points

    def add(self, point: Point) -> None:
        if not (self.rule.history_needed or self.rule.history_span):
            return
        if self.rule.enough_events(point.count):
            self.points.append(point)
            if self.rule.history_span is None:
                self._trim_to_count()

    def _trim_to_count(self) -> None:
        del self.points[: max(0, len(self.points) - self.rule.history_needed)]


def _start(point: Point) -> datetime:
    if point.start is None:
        raise ValueError("a history by time needs the start of every window")
    return point.start


def walk(rule: Rule, position: Position, history: Sequence[Point],
         windows: Sequence[Window]) -> Walked:
    """Advance over ``windows`` (sorted by start); ``history`` holds the stored windows
    before the first new one, oldest first (which ones: see the module's doc)."""
    recent = History(rule, history)
    state, last_window, since = position.state, position.last_window, position.active_since
    steps: list[Step] = []
    last: tuple[float, Check] | None = None
    for start, end, value, count in windows:
        if last_window is not None and start <= last_window:
            continue
        point = Point(start, float(value), None if count is None else int(count))
        check = rule.judge(recent.before(start), point)
        state, transition = step(state, check, rule.for_windows)
        if transition == "pending" or (transition == "firing" and since is None):
            since = start
        elif state.status == "inactive":
            since = None
        if transition is not None:
            steps.append(Step(transition, start, end, point.value, check))
        last, last_window = (point.value, check), start
        recent.add(point)
    return Walked(Position(state, last_window, since), steps, last)

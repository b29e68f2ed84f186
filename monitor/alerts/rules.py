"""Alert rules: pure checks of one window's value against a threshold or its own history.

A rule looks at one field of a metric, per segment. ``judge(history, current)`` says
whether a window breaches the rule given the earlier windows (oldest first), each a
:class:`Point`: its start, the field's value and the window's count of events.
``check(history, value, count)`` is the same for plain values. The pending/firing logic in
:mod:`monitor.alerts.lifecycle`, driven by :func:`monitor.alerts.walk.walk`, turns
breaches into alerts, so the research backtest, the batch stage and the streaming stage
all fire the same alerts.

Every rule takes two options about the window's count:

- ``min_count=N``: a window of fewer than N events is not judged at all. It is neither a
  breach nor a clean window: the alert keeps its state (a pending alert keeps its count of
  breached windows, a firing one keeps firing) exactly as if the window had not been
  stored — which is also what a window without any event is. So a quiet night hour
  cannot page, and cannot resolve an incident that is still on either. Such windows are
  left out of the history Change and Anomaly compare with, too.
- ``confidence=0.99`` (on a proportion: ``rate``, ``share``, ``null_rate``): a breach
  must also hold beyond sampling noise at the window's count, with false alarms at most
  ``1 - confidence`` (see :mod:`monitor.alerts.significance`). A window beyond the
  threshold but within noise is not judged either: it does not fire or count toward
  ``for_windows``, and it does not resolve a firing alert — an alert resolves when the
  value is back within bounds. Noise can then neither page nor make an incident flap.

Change and Anomaly compare with the previous windows, or with ``season="1d"`` (or
``"7d"``) with the same time of day (or week) over the previous ``seasons`` days (weeks).

>>> rule = Threshold(field="p95", above=4.0, for_windows=2)
>>> rule.check([], 5.0).breached
True
>>> Change(field="rate", relative=0.5, baseline_windows=3).check([1.0, 1.0, 1.2], 0.4).breached
True
>>> ctr = Threshold("rate", below=0.18, confidence=0.99)
>>> ctr.check([], 0.12, count=50).detail
'0.12 < 0.18 but within noise at n = 50: 99% upper bound 0.2671 >= 0.18'
>>> ctr.check([], 0.12, count=2000).breached
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, Self

import numpy as np

from monitor.alerts.significance import (
    Side,
    fisher_p,
    hits_of,
    lower_bound,
    percent,
    upper_bound,
)
from monitor.windows import parse_duration_ns

Direction = Literal["up", "down", "both"]
SEVERITIES = ("info", "warning", "critical")
NAN = float("nan")

# Options added after rules were first stored: left out of to_dict() at their defaults, so
# a rule that does not use them — and the id of its metric — stays what it was.
ADDED_OPTIONS = ("min_count", "confidence", "season", "seasons")

__all__ = ["Anomaly", "Change", "Check", "Point", "Rule", "Threshold", "rule_from_dict"]


@dataclass(frozen=True)
class Point:
    """A window as a rule sees it: its start, the watched field's value and the number of
    events the window counted (None: unknown)."""

    start: datetime | None
    value: float
    count: int | None = None


@dataclass(frozen=True)
class Check:
    """The outcome of a rule on one window: breached or not, and what it was compared with.

    ``judged`` is False for a window with too few events to say anything (``min_count``):
    the alert's lifecycle then keeps its state, as if the window were not there.
    """

    breached: bool
    bound: float  # the threshold the value was compared with (NaN when there is none yet)
    detail: str
    judged: bool = True


@dataclass(frozen=True)
class Rule:
    """Fields shared by every rule; subclasses add what they compare."""

    field: str | None = None
    for_windows: int = 1
    severity: str = "warning"
    name: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    min_count: int = 0
    confidence: float | None = None

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.for_windows < 1:
            raise ValueError(f"for_windows must be at least 1, not {self.for_windows}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if (isinstance(self.min_count, bool) or not isinstance(self.min_count, int)
                or self.min_count < 0):
            raise ValueError(f"min_count must be a whole number of events (0 or more), not "
                             f"{self.min_count!r}")
        if self.confidence is not None and not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0.5 and 1, e.g. 0.99 for at most 1% "
                             f"false alarms from sampling noise; not {self.confidence!r}")

    def check(self, history: Sequence[float | Point], value: float, count: int | None = None,
              start: datetime | None = None) -> Check:
        """:meth:`judge` for plain values: ``history`` holds earlier values (or points),
        oldest first; ``value`` is the field's value on a window of ``count`` events that
        starts at ``start``."""
        points = [h if isinstance(h, Point) else Point(None, float(h)) for h in history]
        return self.judge(points, Point(start, float(value), count))

    def judge(self, history: Sequence[Point], current: Point) -> Check:
        """Whether ``current`` breaches the rule, given the earlier windows, oldest first."""
        if not self.enough_events(current.count):
            events = "an unknown number of events" if current.count is None \
                else f"{current.count} events"
            return Check(False, NAN, f"{events}, fewer than min_count {self.min_count}: "
                                     "not judged", judged=False)
        return self._compare(history, current)

    def _compare(self, history: Sequence[Point], current: Point) -> Check:
        raise NotImplementedError

    def enough_events(self, count: int | None) -> bool:
        """Whether a window of ``count`` events is judged, and may serve as history."""
        return self.min_count == 0 or (count is not None and count >= self.min_count)

    @property
    def history_needed(self) -> int:
        """How many earlier windows (of enough events) the check looks at."""
        return 0

    @property
    def history_span(self) -> timedelta | None:
        """How far back before a window's start the check looks, when it looks by time
        (a seasonal baseline) rather than at the previous windows."""
        return None

    @property
    def title(self) -> str:
        """A name for the rule that is unique within its metric."""
        return self.name or f"{self.kind}:{self.field}:{self.describe()}"

    def describe(self) -> str:
        raise NotImplementedError

    def _options(self) -> str:
        """The count options, as a suffix of :meth:`describe` (empty when unused, so the
        titles of older rules stay the same)."""
        parts = []
        if self.min_count:
            parts.append(f" n>={self.min_count}")
        if self.confidence is not None:
            parts.append(f" at {percent(self.confidence)}")
        return "".join(parts)

    def for_field(self, field: str) -> Self:
        return replace(self, field=field)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = [list(pair) for pair in self.labels]
        for option in fields(self):
            if option.name in ADDED_OPTIONS and data[option.name] == option.default:
                del data[option.name]
        return {"kind": self.kind, **data}


@dataclass(frozen=True)
class Threshold(Rule):
    """Breached when the value is above ``above`` or below ``below``.

    With ``confidence`` (a proportion's field only), the value must be beyond the threshold
    by more than sampling noise at the window's count: the exact one-sided bound of the
    proportion at that confidence must lie beyond it. At most ``1 - confidence`` of the
    windows whose true rate sits exactly on the threshold breach, fewer when it is inside.
    A value beyond the threshold but within noise is not judged (the alert holds).
    """

    above: float | None = None
    below: float | None = None
    kind: ClassVar[str] = "threshold"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.above is None and self.below is None:
            raise ValueError("a threshold needs above=, below= or both")

    def _compare(self, history: Sequence[Point], current: Point) -> Check:
        value = current.value
        if math.isnan(value):
            return Check(False, NAN, "no value")
        if self.above is not None and value > self.above:
            return self._beyond_noise(current, self.above, "up",
                                      f"{value:.6g} > {self.above:.6g}")
        if self.below is not None and value < self.below:
            return self._beyond_noise(current, self.below, "down",
                                      f"{value:.6g} < {self.below:.6g}")
        bound = self.above if self.above is not None else self.below
        return Check(False, float(bound if bound is not None else "nan"), "within bounds")

    def _beyond_noise(self, current: Point, bound: float, side: str, plain: str) -> Check:
        if self.confidence is None:
            return Check(True, bound, plain)
        n, hits = current.count, hits_of(current.value, current.count)
        if n is None or hits is None:
            return Check(False, bound, f"{plain}, but not judged beyond noise: "
                                       f"{_why_no_hits(current)}", judged=False)
        level = percent(self.confidence)
        if side == "up":
            limit = lower_bound(hits, n, self.confidence)
            if limit > bound:
                return Check(True, bound, f"{plain} beyond noise at n = {n}: {level} lower "
                             f"bound {limit:.4g} > {bound:.6g}{_false_alarms(self.confidence)}")
            return Check(False, bound, f"{plain} but within noise at n = {n}: {level} lower "
                                       f"bound {limit:.4g} <= {bound:.6g}", judged=False)
        limit = upper_bound(hits, n, self.confidence)
        if limit < bound:
            return Check(True, bound, f"{plain} beyond noise at n = {n}: {level} upper "
                         f"bound {limit:.4g} < {bound:.6g}{_false_alarms(self.confidence)}")
        return Check(False, bound, f"{plain} but within noise at n = {n}: {level} upper "
                                   f"bound {limit:.4g} >= {bound:.6g}", judged=False)

    def describe(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f">{self.above:g}")
        if self.below is not None:
            parts.append(f"<{self.below:g}")
        return " or ".join(parts) + self._options()


@dataclass(frozen=True)
class Change(Rule):
    """Breached when the value moves more than ``relative`` from the median of the previous
    ``baseline_windows`` windows (``0.2`` means 20%), in the given direction.

    With ``season`` (``"1d"``, ``"7d"``) the baseline is the median of the windows that
    started exactly one, two ... ``seasons`` seasons earlier (the same hour of the previous
    days or weeks, in UTC), of which at least half (rounded up) must have a value.

    With ``confidence`` (a proportion's field only), the move must also be beyond sampling
    noise: Fisher's exact test of the window's hits against the baseline windows' pooled
    hits, one-sided in the direction of the move, at ``1 - confidence`` (split over both
    sides when ``direction="both"``). A move within noise is not judged (the alert holds).
    """

    relative: float = 0.2
    baseline_windows: int = 24
    direction: Direction = "both"
    season: str | None = None
    seasons: int = 4
    kind: ClassVar[str] = "change"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.relative <= 0:
            raise ValueError(f"relative change must be positive, not {self.relative}")
        if self.baseline_windows < 1:
            raise ValueError("baseline_windows must be at least 1")
        _check_direction(self.direction)
        _check_season(self, "baseline_windows")

    @property
    def history_needed(self) -> int:
        return 0 if self.season else self.baseline_windows

    @property
    def history_span(self) -> timedelta | None:
        return _season_span(self)

    def _compare(self, history: Sequence[Point], current: Point) -> Check:
        if self.season:
            points = _seasonal(self, history, current)
            needed = (self.seasons + 1) // 2
        else:
            points = _previous(self, history, self.baseline_windows)
            needed = self.baseline_windows
        recent = _finite([p.value for p in points])
        if len(recent) < needed or math.isnan(current.value):
            return Check(False, NAN, "not enough history")
        baseline = float(np.median(recent))
        if baseline == 0:
            return Check(False, 0.0, "baseline is zero; relative change undefined")
        change = (current.value - baseline) / abs(baseline)
        up, down = baseline * (1 + self.relative), baseline * (1 - self.relative)
        breached, bound = _directional(change, self.relative, self.direction, up, down)
        detail = f"{change:+.1%} against median {baseline:.6g}"
        if breached and self.confidence is not None:
            return _against_baseline(self, points, current, bound, detail)
        return Check(breached, bound, detail)

    def describe(self) -> str:
        against = _season_words(self) if self.season else f"{self.baseline_windows}w"
        return f"{self.direction} {self.relative:.0%} vs {against}{self._options()}"


@dataclass(frozen=True)
class Anomaly(Rule):
    """Breached when the robust z-score of the value against the previous
    ``history_windows`` windows exceeds ``z``.

    The score is ``0.6745 * (value - median) / MAD`` (Iglewicz and Hoaglin's modified
    z-score); when the MAD is zero it falls back to ``(value - median) / (1.2533 * mean
    absolute deviation)``, and when that is zero too any departure from the median breaches.

    With ``season`` the history is the windows that started one, two ... ``seasons``
    seasons earlier (the same hour of the previous days or weeks, in UTC), of which at
    least ``min_history`` must have a value. ``confidence`` works as in :class:`Change`:
    the departure must also be beyond sampling noise against the history's pooled hits.
    """

    z: float = 3.5
    history_windows: int = 48
    min_history: int = 12
    direction: Direction = "both"
    season: str | None = None
    seasons: int = 12
    kind: ClassVar[str] = "anomaly"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.z <= 0:
            raise ValueError(f"z must be positive, not {self.z}")
        _check_direction(self.direction)
        _check_season(self, "history_windows")
        if self.season:
            if not 1 <= self.min_history <= self.seasons:
                raise ValueError(f"need 1 <= min_history <= seasons; with seasons="
                                 f"{self.seasons} pass min_history={self.seasons} or fewer")
        elif not 1 <= self.min_history <= self.history_windows:
            raise ValueError("need 1 <= min_history <= history_windows")

    @property
    def history_needed(self) -> int:
        return 0 if self.season else self.history_windows

    @property
    def history_span(self) -> timedelta | None:
        return _season_span(self)

    def _compare(self, history: Sequence[Point], current: Point) -> Check:
        if self.season:
            points = _seasonal(self, history, current)
        else:
            points = _previous(self, history, self.history_windows)
        recent = _finite([p.value for p in points])
        value = current.value
        if len(recent) < self.min_history or math.isnan(value):
            return Check(False, NAN, "not enough history")
        median = float(np.median(recent))
        mad = float(np.median(np.abs(recent - median)))
        scale = mad / 0.6745 if mad > 0 else 1.2533 * float(np.mean(np.abs(recent - median)))
        if scale == 0:
            score = 0.0 if value == median else math.copysign(math.inf, value - median)
        else:
            score = (value - median) / scale
        up, down = median + self.z * scale, median - self.z * scale
        breached, bound = _directional(score, self.z, self.direction, up, down)
        detail = f"robust z {score:+.2f} against median {median:.6g}"
        if breached and self.confidence is not None:
            return _against_baseline(self, points, current, bound, detail)
        return Check(breached, bound, detail)

    def describe(self) -> str:
        over = _season_words(self) if self.season else f"{self.history_windows}w"
        return f"{self.direction} z>{self.z:g} over {over}{self._options()}"


Seasonal = Change | Anomaly


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def _previous(rule: Rule, history: Sequence[Point], windows: int) -> list[Point]:
    """The last ``windows`` earlier windows with enough events."""
    return [p for p in history if rule.enough_events(p.count)][-windows:]


def _seasonal(rule: Seasonal, history: Sequence[Point], current: Point) -> list[Point]:
    """The earlier windows that started a whole number of seasons (1 .. seasons) before
    ``current``, with enough events; ``history`` is sorted by start."""
    if current.start is None:
        raise ValueError(f"alert rule {rule.title}: a seasonal baseline needs the window's "
                         "start; pass start= (and points with starts as history)")
    season = timedelta(microseconds=parse_duration_ns(rule.season or "") // 1000)
    starts = [p.start for p in history]
    found = []
    for k in range(rule.seasons, 0, -1):  # oldest first
        target = current.start - k * season
        i = _bisect(starts, target)
        if i < len(history) and starts[i] == target and rule.enough_events(history[i].count):
            found.append(history[i])
    return found


def _bisect(starts: Sequence[datetime | None], target: datetime) -> int:
    low, high = 0, len(starts)
    while low < high:
        middle = (low + high) // 2
        start = starts[middle]
        if start is not None and start < target:
            low = middle + 1
        else:
            high = middle
    return low


def _check_season(rule: Seasonal, positional: str) -> None:
    if rule.season is None:
        return
    try:
        span = parse_duration_ns(rule.season)
    except ValueError as err:
        raise ValueError(f"season: {err}") from None
    if span <= 0:
        raise ValueError(f"season must be longer than zero, not {rule.season!r}")
    if isinstance(rule.seasons, bool) or not isinstance(rule.seasons, int) or rule.seasons < 1:
        raise ValueError(f"seasons must be a whole number, at least 1, not {rule.seasons!r}")
    default = next(f.default for f in fields(rule) if f.name == positional)
    if getattr(rule, positional) != default:
        raise ValueError(f"{positional} does not apply with season=; seasons= says how many "
                         "earlier seasons to compare with")


def _season_span(rule: Seasonal) -> timedelta | None:
    if rule.season is None:
        return None
    return timedelta(microseconds=parse_duration_ns(rule.season) // 1000) * rule.seasons


def _season_words(rule: Seasonal) -> str:
    return f"same time {rule.seasons}x{rule.season}"


def _why_no_hits(point: Point) -> str:
    if point.count is None:
        return "the window's count is unknown"
    return f"{point.value:.6g} is not a proportion of the window's {point.count} events"


def _false_alarms(confidence: float) -> str:
    return f" (false alarms <= {percent(1 - confidence)})"


def _against_baseline(rule: Change | Anomaly, baseline: Sequence[Point], current: Point,
                      bound: float, detail: str) -> Check:
    """A breach of ``rule`` that must also be beyond noise: Fisher's exact test of the
    window against the pooled baseline windows, in the direction of the move."""
    confidence = rule.confidence or 0.0
    hits = hits_of(current.value, current.count)
    if hits is None or current.count is None:
        return Check(False, bound, f"{detail}, but not judged beyond noise: "
                                   f"{_why_no_hits(current)}", judged=False)
    base_hits = base_n = 0
    for point in baseline:
        if math.isnan(point.value):
            continue
        point_hits = hits_of(point.value, point.count)
        if point_hits is None or point.count is None:
            return Check(False, bound, f"{detail}, but not judged beyond noise: in a baseline "
                                       f"window, {_why_no_hits(point)}", judged=False)
        base_hits, base_n = base_hits + point_hits, base_n + point.count
    side: Side = "up" if hits * base_n > base_hits * current.count else "down"
    alpha = 1 - confidence
    level = alpha / 2 if rule.direction == "both" else alpha
    p = fisher_p(hits, current.count, base_hits, base_n, side)
    where = (f"at n = {current.count} against {base_n} baseline events: one-sided Fisher "
             f"p = {p:.2g}")
    if p <= level:
        return Check(True, bound, f"{detail}, beyond noise {where} <= {level:.3g}"
                                  f"{_false_alarms(confidence)}")
    return Check(False, bound, f"{detail}, but within noise {where} > {level:.3g}",
                 judged=False)


def _check_direction(direction: str) -> None:
    if direction not in ("up", "down", "both"):
        raise ValueError(f"direction must be 'up', 'down' or 'both', not {direction!r}")


def _directional(
    score: float, limit: float, direction: Direction, up: float, down: float
) -> tuple[bool, float]:
    if direction in ("up", "both") and score > limit:
        return True, up
    if direction in ("down", "both") and score < -limit:
        return True, down
    return False, up if direction != "down" else down


_RULES: dict[str, type[Rule]] = {cls.kind: cls for cls in (Threshold, Change, Anomaly)}


def rule_from_dict(data: dict[str, Any]) -> Rule:
    """Inverse of :meth:`Rule.to_dict`; a dict stored before an option existed gets the
    option's default."""
    params = dict(data)
    kind = params.pop("kind")
    if kind not in _RULES:
        raise ValueError(f"unknown rule kind {kind!r}; known: {', '.join(_RULES)}")
    params["labels"] = tuple(tuple(pair) for pair in params.get("labels", ()))
    return _RULES[kind](**params)

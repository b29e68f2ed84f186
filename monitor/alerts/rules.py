"""Alert rules: pure checks of one window's value against a threshold or its own history.

A rule looks at one field of a metric, per segment. ``check(history, value)`` says whether
the value breaches the rule given the values of the earlier windows (oldest first); the
pending/firing logic in :mod:`monitor.alerts.episodes` turns breaches into alerts, so the
research backtest, the batch stage and the streaming stage all fire the same alerts.

>>> rule = Threshold(field="p95", above=4.0, for_windows=2)
>>> rule.check([], 5.0).breached
True
>>> Change(field="rate", relative=0.5, baseline_windows=3).check([1.0, 1.0, 1.2], 0.4).breached
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, Literal, Self

import numpy as np

Direction = Literal["up", "down", "both"]
SEVERITIES = ("info", "warning", "critical")

__all__ = ["Anomaly", "Change", "Check", "Rule", "Threshold", "rule_from_dict"]


@dataclass(frozen=True)
class Check:
    """The outcome of a rule on one window: breached or not, and what it was compared with."""

    breached: bool
    bound: float  # the threshold the value was compared with (NaN when there is none yet)
    detail: str


@dataclass(frozen=True)
class Rule:
    """Fields shared by every rule; subclasses add what they compare."""

    field: str | None = None
    for_windows: int = 1
    severity: str = "warning"
    name: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.for_windows < 1:
            raise ValueError(f"for_windows must be at least 1, not {self.for_windows}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")

    def check(self, history: Sequence[float], value: float) -> Check:
        raise NotImplementedError

    @property
    def history_needed(self) -> int:
        """How many earlier windows the check looks at."""
        return 0

    @property
    def title(self) -> str:
        """A name for the rule that is unique within its metric."""
        return self.name or f"{self.kind}:{self.field}:{self.describe()}"

    def describe(self) -> str:
        raise NotImplementedError

    def for_field(self, field: str) -> Self:
        return replace(self, field=field)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = [list(pair) for pair in self.labels]
        return {"kind": self.kind, **data}


@dataclass(frozen=True)
class Threshold(Rule):
    """Breached when the value is above ``above`` or below ``below``."""

    above: float | None = None
    below: float | None = None
    kind: ClassVar[str] = "threshold"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.above is None and self.below is None:
            raise ValueError("a threshold needs above=, below= or both")

    def check(self, history: Sequence[float], value: float) -> Check:
        if math.isnan(value):
            return Check(False, float("nan"), "no value")
        if self.above is not None and value > self.above:
            return Check(True, self.above, f"{value:.6g} > {self.above:.6g}")
        if self.below is not None and value < self.below:
            return Check(True, self.below, f"{value:.6g} < {self.below:.6g}")
        bound = self.above if self.above is not None else self.below
        return Check(False, float(bound if bound is not None else "nan"), "within bounds")

    def describe(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f">{self.above:g}")
        if self.below is not None:
            parts.append(f"<{self.below:g}")
        return " or ".join(parts)


@dataclass(frozen=True)
class Change(Rule):
    """Breached when the value moves more than ``relative`` from the median of the previous
    ``baseline_windows`` windows (``0.2`` means 20%), in the given direction."""

    relative: float = 0.2
    baseline_windows: int = 24
    direction: Direction = "both"
    kind: ClassVar[str] = "change"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.relative <= 0:
            raise ValueError(f"relative change must be positive, not {self.relative}")
        if self.baseline_windows < 1:
            raise ValueError("baseline_windows must be at least 1")
        _check_direction(self.direction)

    @property
    def history_needed(self) -> int:
        return self.baseline_windows

    def check(self, history: Sequence[float], value: float) -> Check:
        recent = _finite(history[-self.baseline_windows :])
        if len(recent) < self.baseline_windows or math.isnan(value):
            return Check(False, float("nan"), "not enough history")
        baseline = float(np.median(recent))
        if baseline == 0:
            return Check(False, 0.0, "baseline is zero; relative change undefined")
        change = (value - baseline) / abs(baseline)
        up, down = baseline * (1 + self.relative), baseline * (1 - self.relative)
        breached, bound = _directional(change, self.relative, self.direction, up, down)
        return Check(breached, bound, f"{change:+.1%} against median {baseline:.6g}")

    def describe(self) -> str:
        return f"{self.direction} {self.relative:.0%} vs {self.baseline_windows}w"


@dataclass(frozen=True)
class Anomaly(Rule):
    """Breached when the robust z-score of the value against the previous
    ``history_windows`` windows exceeds ``z``.

    The score is ``0.6745 * (value - median) / MAD`` (Iglewicz and Hoaglin's modified
    z-score); when the MAD is zero it falls back to ``(value - median) / (1.2533 * mean
    absolute deviation)``, and when that is zero too any departure from the median breaches.
    """

    z: float = 3.5
    history_windows: int = 48
    min_history: int = 12
    direction: Direction = "both"
    kind: ClassVar[str] = "anomaly"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.z <= 0:
            raise ValueError(f"z must be positive, not {self.z}")
        if not 1 <= self.min_history <= self.history_windows:
            raise ValueError("need 1 <= min_history <= history_windows")
        _check_direction(self.direction)

    @property
    def history_needed(self) -> int:
        return self.history_windows

    def check(self, history: Sequence[float], value: float) -> Check:
        recent = _finite(history[-self.history_windows :])
        if len(recent) < self.min_history or math.isnan(value):
            return Check(False, float("nan"), "not enough history")
        median = float(np.median(recent))
        mad = float(np.median(np.abs(recent - median)))
        scale = mad / 0.6745 if mad > 0 else 1.2533 * float(np.mean(np.abs(recent - median)))
        if scale == 0:
            score = 0.0 if value == median else math.copysign(math.inf, value - median)
        else:
            score = (value - median) / scale
        up, down = median + self.z * scale, median - self.z * scale
        breached, bound = _directional(score, self.z, self.direction, up, down)
        return Check(breached, bound, f"robust z {score:+.2f} against median {median:.6g}")

    def describe(self) -> str:
        return f"{self.direction} z>{self.z:g} over {self.history_windows}w"


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


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
    params = dict(data)
    kind = params.pop("kind")
    if kind not in _RULES:
        raise ValueError(f"unknown rule kind {kind!r}; known: {', '.join(_RULES)}")
    params["labels"] = tuple(tuple(pair) for pair in params.get("labels", ()))
    return _RULES[kind](**params)

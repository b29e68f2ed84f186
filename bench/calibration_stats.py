"""Rates with Wilson intervals and the checks of bench/drift_calibration.py (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class Rate:
    """``flags`` of ``windows`` flagged, with a 95% Wilson score interval."""

    flags: int
    windows: int

    @property
    def rate(self) -> float:
        return self.flags / self.windows if self.windows else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.flags, self.windows)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {"flags": self.flags, "windows": self.windows, "rate": self.rate,
                "ci95": [low, high]}

    def text(self, digits: int = 1) -> str:
        """``1.2% [0.8-1.9]``: the rate and its interval, in percent."""
        if not self.windows:
            return "-"
        low, high = self.interval
        return f"{100 * self.rate:.{digits}f}% [{100 * low:.{digits}f}-{100 * high:.{digits}f}]"


def wilson(flags: int, windows: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (NaNs for no windows).

    >>> [round(x, 4) for x in wilson(0, 2000)]
    [0.0, 0.0019]
    >>> [round(x, 4) for x in wilson(20, 2000)]
    [0.0065, 0.0154]
    """
    if windows == 0:
        return math.nan, math.nan
    p = flags / windows
    denominator = 1 + z * z / windows
    centre = (p + z * z / (2 * windows)) / denominator
    half = z * math.sqrt(p * (1 - p) / windows + z * z / (4 * windows * windows)) / denominator
    # at 0 (or all) flags the bound is 0 (or 1) exactly, not a rounding error away
    low = 0.0 if flags == 0 else max(0.0, centre - half)
    high = 1.0 if flags == windows else min(1.0, centre + half)
    return low, high


def pooled(rates: Iterable[Rate]) -> Rate:
    """Every window of every cell as one sample (cells of equal windows: the mean rate)."""
    rates = list(rates)
    return Rate(sum(r.flags for r in rates), sum(r.windows for r in rates))


def calibration_summary(cells: dict[str, Rate], alpha: float, cell_limit: float,
                        pooled_limit: float) -> dict[str, Any]:
    """Per-cell rates, the pooled rate and which cells pass ``cell_limit``.

    ``over_limit`` lists cells whose rate is above the limit; ``surely_over_limit`` those
    whose whole interval is (noise alone would not put them there).
    """
    total = pooled(cells.values())
    over = sorted(name for name, r in cells.items() if r.rate > cell_limit)
    surely = sorted(name for name, r in cells.items() if r.interval[0] > cell_limit)
    worst = max(cells, key=lambda name: cells[name].rate) if cells else None
    return {
        "alpha": alpha,
        "cell_limit": cell_limit,
        "pooled_limit": pooled_limit,
        "cells": {name: r.to_dict() for name, r in cells.items()},
        "pooled": total.to_dict(),
        "worst_cell": worst,
        "over_limit": over,
        "surely_over_limit": surely,
        "met": not over and total.rate <= pooled_limit,
    }


def power_check(ours_power: Rate, ours_false: Rate, peer_power: Rate,
                peer_false: Rate) -> dict[str, Any]:
    """Issue 13's check for one cell and one peer: where the peer's false-alarm rate (at
    the scenario's no-drift family and window size) is no higher than ours, our power must
    be at least the peer's. Point estimates decide ``ok``; ``surely_lower`` says whether
    our power's interval lies wholly below the peer's (a shortfall noise cannot explain).
    """
    applies = peer_false.rate <= ours_false.rate
    lower = ours_power.rate < peer_power.rate
    return {
        "applies": applies,
        "ok": (not applies) or not lower,
        "surely_lower": applies and ours_power.interval[1] < peer_power.interval[0],
        "ours_power": ours_power.rate,
        "peer_power": peer_power.rate,
        "ours_false_alarms": ours_false.rate,
        "peer_false_alarms": peer_false.rate,
    }

"""Drift decisions: beyond sampling noise at a stated error rate, and big enough to matter.

A drift aggregate tests many things at once: a report's columns, and every segment of a
window. Each test has a p-value for its window's count (:mod:`metrics.drift.null`) and an
effect (the statistic, or what the method says). :func:`decide` corrects the p-values
over the whole family — Benjamini–Hochberg by default, which keeps the expected share of
false alarms among the flags at ``alpha`` and, when nothing drifted, the chance of any
flag at ``alpha``; Bonferroni keeps the latter always — and flags a test when its
adjusted p-value is below ``alpha`` and its effect is at least its minimum.

>>> tests = {"x": ColumnTest(0.30, 1e-6, True), "y": ColumnTest(0.12, 0.03, True),
...          "z": ColumnTest(0.02, 1e-9, False)}
>>> for key, verdict in decide(tests, alpha=0.01, correction="bh").items():
...     print(key, verdict)
x Verdict(p_adjusted=1.5e-06, drifted=1.0)
y Verdict(p_adjusted=0.03, drifted=0.0)
z Verdict(p_adjusted=3e-09, drifted=0.0)

``z`` is far beyond the noise but too small an effect to flag; ``y`` is large enough
but could be noise at its window's size.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import NamedTuple, TypeVar

from metrics.drift.null import CORRECTIONS, correct

__all__ = ["DEFAULT_ALPHA", "ColumnTest", "Verdict", "check_decision", "decide", "why_drifted"]

DEFAULT_ALPHA = 0.01
K = TypeVar("K", bound=Hashable)


class ColumnTest(NamedTuple):
    statistic: float
    p_value: float  # NaN: no test (an empty window)
    large: bool  # the effect is at least its floor


class Verdict(NamedTuple):
    p_adjusted: float
    drifted: float  # 1.0, 0.0, or NaN without a test


def decide(tests: Mapping[K, ColumnTest], alpha: float, correction: str) -> dict[K, Verdict]:
    """Each test's adjusted p-value and flag, corrected over all of ``tests``."""
    adjusted = correct({key: test.p_value for key, test in tests.items()}, correction)
    verdicts = {}
    for key, test in tests.items():
        p = adjusted[key]
        if math.isnan(p):
            verdicts[key] = Verdict(p, float("nan"))
        else:
            verdicts[key] = Verdict(p, float(p < alpha and test.large))
    return verdicts


def check_decision(kind: str, alpha: float, correction: str, min_effect: float | None
                   ) -> None:
    """Refuse decision parameters that mean nothing, naming the aggregate."""
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ValueError(f"{kind}: alpha is the false-alarm rate, between 0 and 1 (e.g. "
                         f"0.01), not {alpha!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"{kind}: correction {correction!r} is not one of "
                         f"{', '.join(CORRECTIONS)}")
    if min_effect is not None and not (
            isinstance(min_effect, int | float) and math.isfinite(min_effect)
            and min_effect >= 0):
        raise ValueError(f"{kind}: min_effect must be a finite number >= 0, not "
                         f"{min_effect!r}")


def why_drifted(column: str | None, statistic: str, values: Mapping[str, float],
                count: int | None, alpha: float, correction: str, min_effect: float,
                shape_floor: float | None = None) -> str:
    """One column's decision in words, from a window's stored values (``column`` None:
    a single-column aggregate, whose fields have no column prefix). ``shape_floor``: the
    method also flags a change of shape of at least that total variation (see
    :func:`metrics.drift.methods.test_column`).

    >>> values = {"x.psi": 0.23, "x.p_value": 0.0004, "x.p_adjusted": 0.003, "x.drifted": 1.0}
    >>> why_drifted("x", "psi", values, 180, 0.01, "bh", 0.1)
    'x: psi 0.23 >= 0.1, beyond sampling noise at n = 180 (BH-adjusted p = 0.003 < 0.01)'
    """
    prefix = "" if column is None else f"{column}."
    name = "" if column is None else f"{column}: "
    value = values.get(f"{prefix}{statistic}", float("nan"))
    adjusted = values.get(f"{prefix}p_adjusted", float("nan"))
    size = "?" if count is None else f"{count:,}"
    if value >= min_effect:
        effect = f"{statistic} {value:.3g} >= {min_effect:g}"
    elif shape_floor is not None and values.get(f"{prefix}drifted") == 1.0:
        effect = (f"{statistic} {value:.3g} < {min_effect:g} but the shape changed (at least "
                  f"{shape_floor:.0%} of the mass moved)")
    else:
        effect = f"{statistic} {value:.3g} < {min_effect:g}"
    noise = "beyond" if adjusted < alpha else "within"
    how = {"bh": "BH-adjusted p", "bonferroni": "Bonferroni-adjusted p", "none": "p"}[correction]
    shown = f"= {adjusted:.2g}" if adjusted >= 1e-12 else "< 1e-12"
    return (f"{name}{effect}, {noise} sampling noise at n = {size} ({how} {shown} "
            f"{'<' if adjusted < alpha else '>='} {alpha:g})")

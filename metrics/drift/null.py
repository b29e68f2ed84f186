"""How large a drift statistic gets by chance: its null distribution at a window's size.

A fixed threshold on PSI or Jensen–Shannon ignores how many events a window holds: with
no drift at all, windows of 200 events flagged 32–50% of the time at PSI >= 0.1, and a
window of a million events flags shifts too small to matter. A decision needs to know how
far each statistic goes by sampling noise alone *at this window's count*.

:class:`ColumnNull` answers that for one column of a reference profile: ``p_value(stat,
counts)`` is the probability that the statistic is at least the observed one when the
window comes from the reference distribution. It is derived from the profile alone, by a
two-sample parametric bootstrap: the reference counts are redrawn from the reference
proportions (``Mult(n_ref, p)``, the reference is a sample too) and the window's from
what a new sample would look like (``Mult(n, p~)``: the reference proportions with
``1/(n_ref + 1)`` in each overflow bin of a numeric column; Turing's estimate for a
categorical one, which takes mass from its rarest categories to the unseen bucket). The
statistics are computed from counts alone (:func:`statistics`), the same way for the
observed window and for the draws.

The distribution is simulated at a grid of window sizes (powers of √2 from 1 to 2**23),
each only when a window of that size first needs it, with :data:`REPLICATES` draws seeded
from the column's counts and the size: the same profile gives the same p-values in every
process and stage. Between grid sizes, the quantiles are interpolated in ``log n``; past
the largest, the largest is used (a larger window's null is narrower, so that is
conservative).

A report of 25 columns over 10 segments is 250 tests, and Benjamini–Hochberg flags the
smallest p-value at 0.01/250 = 4e-5, so p-values must be right that far out. Plain draws
resolve about 1e-3; beyond it a heavy tail's statistic is ruled by a few events in its
rarest bins, and extrapolating from the draws made a Pareto column's p-values up to 3
times too small (1.3e-6 where a million draws say 4e-6). So 40% of the draws come from
windows tilted towards the rare bins and every draw is weighted back to the null
(defensive importance sampling, :meth:`ColumnNull._simulate`): the tails are kept as
quantiles at :data:`LEVELS` from p = 1 down to where fewer than :data:`RESOLVED` draws lie
beyond (about 1e-5 to 1e-7), within 20% of a million plain draws on the Pareto windows of
bench/drift_calibration.py's family-wise report. A p-value between two levels is the
larger level's (conservative by at most 11%, and right at ties, which discrete statistics
have); beyond the last level, ``log p`` is extrapolated linearly from the draws with
p <= 1%, in the statistic for divergences and in its square for distances (whose tails are
Gaussian-like), with the slope cut by :data:`TAIL_SLOPE` so that the extrapolation errs
towards larger p-values.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
from scipy import special

from metrics.drift.columns import CategoricalProfile, ColumnProfile, NumericProfile

__all__ = ["CORRECTIONS", "REPLICATES", "STATISTICS", "ColumnNull", "column_null", "correct",
           "statistics"]

K = TypeVar("K")
REPLICATES = 20_000
LEVELS = np.geomspace(1.0, 1e-7, 150)  # p of the stored quantiles, descending
RESOLVED = 10  # a quantile is kept while at least this many draws are at or above it
# Far-tail draws (see ColumnNull._simulate): this share of the replicates come from the
# null itself, the rest from windows pushed towards the rare bins by about TILT_SIGMAS.
PLAIN_SHARE = 0.6
TILT_SIGMAS = 5.0
TAIL_SLOPE = 0.85  # the extrapolated log p falls this fraction as fast as the fit says
GRID = np.unique(np.round(2.0 ** (np.arange(47) / 2.0)).astype(np.int64))  # 1 .. 2**23
CORRECTIONS = ("bh", "bonferroni", "none")
_CHUNK = 2_000  # draws computed at once (memory: CHUNK x bins x a few float64 arrays)
# counts kept (at most 40 MB with a reference under 65,536 values: up to 1,000 bins)
_KEEP_REFERENCE_DRAWS = 20_000_000
PSI_EPSILON = 1e-4  # as metrics.drift.stats.PSI_EPSILON
MIN_STD = 0.001  # as metrics.drift.methods.MIN_STD


# -- the statistics, from counts, one row per window -------------------------------------


def _proportions(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    return counts / np.where(totals == 0, 1, totals)


def _psi(p: np.ndarray, q: np.ndarray, _: _Context) -> np.ndarray:
    p = np.where(p == 0, PSI_EPSILON, p)
    q = np.where(q == 0, PSI_EPSILON, q)
    return np.sum((q - p) * np.log(q / p), axis=1)


def _js(p: np.ndarray, q: np.ndarray, _: _Context) -> np.ndarray:
    m = (p + q) / 2.0
    divergence = np.sum(special.rel_entr(p, m), axis=1) + np.sum(special.rel_entr(q, m), axis=1)
    return np.sqrt(np.maximum(divergence / 2.0, 0.0))


def _hellinger(p: np.ndarray, q: np.ndarray, _: _Context) -> np.ndarray:
    return np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=1) / 2.0)


def _ks(p: np.ndarray, q: np.ndarray, _: _Context) -> np.ndarray:
    gap = np.cumsum(p, axis=1)[:, :-1] - np.cumsum(q, axis=1)[:, :-1]
    return np.max(np.abs(gap), axis=1, initial=0.0)


def _wasserstein(p: np.ndarray, q: np.ndarray, context: _Context) -> np.ndarray:
    """W1 between the two samples with every value moved to its bin's reference mean (the
    overflow bins' to their edge), normed by the reference std."""
    assert context.means is not None
    gap = np.cumsum(p, axis=1)[:, :-1] - np.cumsum(q, axis=1)[:, :-1]
    return np.abs(gap) @ np.diff(context.means) / max(context.std, MIN_STD)


def _chi2(p: np.ndarray, q: np.ndarray, context: _Context) -> np.ndarray:
    """Pearson's statistic of the 2 x K table (homogeneity), no continuity correction:
    ``Σ (a_j·B − b_j·A)² / (A·B·(a_j + b_j))`` over bins not empty on both sides."""
    a, b = p * context.n_ref, q * context.n_current
    both = a + b
    big_a, big_b = context.n_ref, context.n_current
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = (a * big_b - b * big_a) ** 2 / (big_a * big_b * both)
    return np.sum(np.where(both > 0, terms, 0.0), axis=1)


def _chi2_gof(p: np.ndarray, q: np.ndarray, context: _Context) -> np.ndarray:
    """Pearson's goodness-of-fit statistic of the window against the reference
    proportions, ``n · Σ (q_j − p_j)² / p_j``, a proportion the reference lacks taken as
    ``1/(n_ref + 1)`` (the chance of a new value) so that it stays finite."""
    floor = np.maximum(p, 1.0 / (context.n_ref + 1))
    both = (p > 0) | (q > 0)
    terms = np.where(both, (q - p) ** 2 / floor, 0.0)
    return context.n_current[:, 0] * np.sum(terms, axis=1)


@dataclass(frozen=True)
class _Context:
    n_ref: float
    n_current: np.ndarray  # one per row, as a column
    means: np.ndarray | None  # numeric bin means (overflow bins at their edge)
    std: float


_Statistic = Callable[[np.ndarray, np.ndarray, _Context], np.ndarray]
# name -> (function, the power that makes it a divergence, the scale on which a tail is
# kept: 1 for divergences, 2 for distances, whose tails are Gaussian-like)
STATISTICS: dict[str, tuple[_Statistic, int]] = {
    "psi": (_psi, 1),
    "js": (_js, 2),
    "hellinger": (_hellinger, 2),
    "ks": (_ks, 2),
    "wasserstein": (_wasserstein, 2),
    "chi2": (_chi2, 1),
    "chi2_gof": (_chi2_gof, 1),
}
_NUMERIC_ONLY = {"ks", "wasserstein"}


def statistics(names: tuple[str, ...], reference: np.ndarray, current: np.ndarray,
               means: np.ndarray | None = None, std: float = 1.0) -> dict[str, np.ndarray]:
    """The named statistics of each row of ``current`` counts against ``reference`` counts
    (one row, or one row per current row).

    >>> ref = np.array([[0, 50, 50, 0]]); cur = np.array([[10, 40, 40, 10]])
    >>> {k: round(float(v[0]), 4) for k, v in statistics(("psi", "ks"), ref, cur).items()}
    {'psi': 1.4248, 'ks': 0.1}
    """
    reference = np.atleast_2d(reference)
    current = np.atleast_2d(current)
    # every row of a bootstrap's references sums to the reference size too
    context = _Context(float(reference[0].sum()),
                       current.sum(axis=1, keepdims=True).astype(np.float64), means, std)
    p, q = _proportions(reference), _proportions(current)
    return {name: STATISTICS[name][0](p, q, context) for name in names}


# -- the null at one window size ---------------------------------------------------------


@dataclass(frozen=True)
class _Tail:
    """The upper tail of one statistic's simulated null at one window size."""

    quantiles: np.ndarray  # the tail variable at LEVELS[:len(quantiles)] (nondecreasing)
    slope: float  # d log p / d u beyond the last quantile (< 0), or nan: no extrapolation
    last_draw: float  # the largest tail variable drawn

    def log_p(self, u: float) -> float:
        at = int(np.searchsorted(self.quantiles, u, side="right")) - 1  # last q_i <= u
        deepest = len(self.quantiles) - 1
        if at < 0:
            return 0.0
        if at < deepest or u <= self.quantiles[-1]:
            return float(np.log(LEVELS[at]))
        if math.isnan(self.slope):  # nothing to extrapolate from: as rare as a draw
            if u <= self.last_draw:
                return float(np.log(LEVELS[deepest]))
            return min(float(np.log(LEVELS[deepest])), -math.log(REPLICATES + 1))
        return float(np.log(LEVELS[deepest])
                     + TAIL_SLOPE * self.slope * (u - self.quantiles[-1]))

    @classmethod
    def between(cls, low: _Tail, high: _Tail, weight: float) -> _Tail:
        """The tail at a window size ``weight`` of the way (in log size) from ``low``'s to
        ``high``'s: quantiles and slope interpolated geometrically (a null that shrinks as
        a power of n is then exact), linearly where one is 0."""
        depth = min(len(low.quantiles), len(high.quantiles))
        return cls(_blend(low.quantiles[:depth], high.quantiles[:depth], weight),
                   float(-_blend(np.array([-low.slope]), np.array([-high.slope]), weight)[0]),
                   float(_blend(np.array([low.last_draw]), np.array([high.last_draw]),
                                weight)[0]))

    @classmethod
    def of(cls, draws: np.ndarray, weights: np.ndarray) -> _Tail:
        """The tail of weighted draws (importance weights, see ColumnNull._simulate)."""
        order = np.argsort(draws, kind="stable")
        ordered, weighted = draws[order], weights[order]
        r = len(ordered)
        # survival[k]: the weighted share of draws at or above draw k (nonincreasing)
        survival = np.cumsum(weighted[::-1])[::-1] / weighted.sum()
        # q_i: the largest draw with at least LEVELS[i] of the weight at or above it, kept
        # while at least RESOLVED draws are at or above it
        ranks = np.searchsorted(-survival, -LEVELS, side="right") - 1
        depth = max(1, int(np.sum((ranks >= 0) & (r - ranks >= RESOLVED))))
        quantiles = ordered[np.clip(ranks[:depth], 0, r - 1)]
        top = (survival <= 0.01) & (r - np.arange(r) >= RESOLVED)
        u, log_p = ordered[top], np.log(survival[top])
        slope = float("nan")
        if len(u) >= 2 and float(u.max() - u.min()) > 0:
            fitted = float(np.polyfit(u, log_p, 1)[0])
            if fitted < 0:
                slope = fitted
        return cls(quantiles, slope, float(ordered[-1]))


def _blend(low: np.ndarray, high: np.ndarray, weight: float) -> np.ndarray:
    """``low`` to ``high`` by ``weight``: geometrically where both are positive, linearly
    elsewhere (NaN stays NaN)."""
    linear = (1.0 - weight) * low + weight * high
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = np.exp((1.0 - weight) * np.log(low) + weight * np.log(high))
    return np.where((low > 0) & (high > 0), geometric, linear)


class ColumnNull:
    """The null distributions of every drift statistic of one reference column, simulated
    per window size on demand (see the module's docstring).

    >>> import pandas as pd
    >>> from metrics.drift.columns import CategoricalProfile
    >>> column = CategoricalProfile.fit(pd.Series(["ios"] * 600 + ["web"] * 400))
    >>> null = column_null(column)
    >>> round(null.p_value("chi2", np.array([50, 50, 0])), 3)  # chi2_contingency: 0.052
    0.054
    >>> null.p_value("chi2", np.array([30, 70, 0])) < 1e-6       # 60% -> 30%: not noise
    True
    """

    def __init__(self, column: ColumnProfile) -> None:
        self.reference = column.reference_counts()
        self.n_ref = int(self.reference.sum())
        self.names = tuple(name for name in STATISTICS
                           if isinstance(column, NumericProfile) or name not in _NUMERIC_ONLY)
        self.means: np.ndarray | None = None
        self.std = 1.0
        if isinstance(column, NumericProfile):
            self.means = column.reference_means()
            self.std = column.std
        self.draw_from = _window_proportions(column, self.reference)
        self.seed = int.from_bytes(hashlib.sha256(
            np.ascontiguousarray(self.reference).tobytes() + repr(self.names).encode()
        ).digest()[:8], "little")
        self._tails: dict[int, dict[str, _Tail]] = {}
        self._references: dict[int, np.ndarray] = {}  # see _reference_draws

    def p_value(self, statistic: str, current: np.ndarray) -> float:
        """P(the statistic >= its value on ``current`` | no drift), at this window's
        count; NaN for an empty window."""
        return float(self.p_values((statistic,), current)[statistic])

    def p_values(self, names: tuple[str, ...], current: np.ndarray) -> dict[str, float]:
        current = np.asarray(current, dtype=np.int64)
        n = int(current.sum())
        if n == 0 or self.n_ref == 0:
            return dict.fromkeys(names, float("nan"))
        observed = self.observed(names, current)
        below = int(np.searchsorted(GRID, n, side="right")) - 1
        if GRID[below] == n or below == len(GRID) - 1:
            tails = self._tails_at(below, tuple(observed))
        else:
            # Between grid sizes the quantiles are interpolated, not the p-value of a fixed
            # statistic: where the null moves fast with n (a window with fewer events than
            # bins), the latter was far off (p <= 5% for 11% of undrifted windows of 50).
            weight = (math.log(n) - math.log(GRID[below])) / (
                math.log(GRID[below + 1]) - math.log(GRID[below]))
            low = self._tails_at(below, tuple(observed))
            high = self._tails_at(below + 1, tuple(observed))
            tails = {name: _Tail.between(low[name], high[name], weight) for name in observed}
        return {name: math.exp(tails[name].log_p(value ** STATISTICS[name][1]))
                for name, value in observed.items()}

    def observed(self, names: tuple[str, ...], current: np.ndarray) -> dict[str, float]:
        """The statistics (counts only) of ``current`` against the reference."""
        self._check(names)
        values = statistics(names, self.reference, current, self.means, self.std)
        return {name: float(value[0]) for name, value in values.items()}

    def _tails_at(self, grid_index: int, names: tuple[str, ...]) -> dict[str, _Tail]:
        """The tails of ``names`` at a grid size, simulating the ones not yet known (the
        draws are seeded, so a statistic simulated later sees the same draws)."""
        tails = self._tails.setdefault(grid_index, {})
        if missing := tuple(name for name in names if name not in tails):
            tails.update(self._simulate(int(GRID[grid_index]), missing))
        return tails

    def _simulate(self, n: int, names: tuple[str, ...]) -> dict[str, _Tail]:
        """The tails at window size ``n``: :data:`PLAIN_SHARE` of the replicates are
        windows from the null, the rest windows from the null mixed with more of its rare
        bins (the proportions' square roots, about :data:`TILT_SIGMAS` standard deviations
        away), every draw weighted by how likely the null makes it against the mixture of
        the two (defensive importance sampling: a weight is at most 1/PLAIN_SHARE). A
        family of 250 tests needs p-values right down to 4e-5, where a heavy tail's
        statistic is ruled by a few events in its rarest bins, which 20,000 plain draws
        rarely see: extrapolated, a Pareto column's p came out 2.3 times too small."""
        draws: dict[str, list[np.ndarray]] = {name: [] for name in names}
        weights: list[np.ndarray] = []
        # Bins in descending order of probability for the draws: numpy's multinomial
        # stops a row once its n events are placed, so a window with fewer events than a
        # long tail of rare categories costs less (3x for 1,000 levels at 200 events).
        order = np.argsort(-self.draw_from, kind="stable")
        back = np.argsort(order)
        tilted = _tilted(self.draw_from, n)
        possible = self.draw_from > 0
        log_ratio = np.zeros_like(self.draw_from)
        log_ratio[possible] = np.log(tilted[possible] / self.draw_from[possible])
        plain_chunks = round(PLAIN_SHARE * REPLICATES / _CHUNK)
        rng = np.random.default_rng([self.seed, n])
        for chunk, start in enumerate(range(0, REPLICATES, _CHUNK)):
            size = min(_CHUNK, REPLICATES - start)
            source = self.draw_from if chunk < plain_chunks else tilted
            currents = rng.multinomial(n, source[order], size=size)[:, back]
            with np.errstate(over="ignore"):
                likelihood_ratio = np.exp(currents @ log_ratio)  # tilted / null
            weights.append(1.0 / (PLAIN_SHARE + (1.0 - PLAIN_SHARE) * likelihood_ratio))
            values = statistics(names, self._reference_draws(chunk, size), currents,
                                self.means, self.std)
            for name, value in values.items():
                draws[name].append(value ** STATISTICS[name][1])  # the divergence
        weight = np.concatenate(weights)
        return {name: _Tail.of(np.concatenate(parts), weight) for name, parts in draws.items()}

    def _reference_draws(self, chunk: int, size: int) -> np.ndarray:
        """The bootstrap's reference counts of one chunk of draws: the same at every window
        size (seeded by the chunk), kept in memory while that stays small."""
        kept = self._references.get(chunk)
        if kept is not None:
            return kept
        rng = np.random.default_rng([self.seed, 0, chunk])
        draws = rng.multinomial(self.n_ref, self.reference / self.n_ref, size=size)
        if REPLICATES * len(self.reference) <= _KEEP_REFERENCE_DRAWS:
            self._references[chunk] = draws.astype(np.min_scalar_type(self.n_ref))
        return draws

    def _check(self, names: tuple[str, ...]) -> None:
        if unknown := [name for name in names if name not in self.names]:
            raise ValueError(f"no null distribution for {unknown} on this column; it has "
                             f"{list(self.names)}")


def _window_proportions(column: ColumnProfile, reference: np.ndarray) -> np.ndarray:
    """What a window from the reference distribution falls into: the reference
    proportions, plus the mass a new sample puts where the reference sample had none."""
    n_ref = int(reference.sum())
    p = reference / n_ref
    if isinstance(column, CategoricalProfile):
        return _good_turing(reference)
    else:
        outside = 1.0 / (n_ref + 1)  # below the reference minimum, and above its maximum
        p = p * (1.0 - 2 * outside)
        p[0] += outside
        p[-1] += outside
    return p / p.sum()


def _tilted(p: np.ndarray, n: int) -> np.ndarray:
    """The null ``p`` mixed with its square roots (normalised), which weigh the rare bins
    more, by as much as moves a window of ``n`` events about :data:`TILT_SIGMAS` standard
    deviations (its chi-square distance from ``p`` is then TILT_SIGMAS**2 / n)."""
    flat = np.sqrt(p)
    flat /= flat.sum()
    possible = p > 0
    distance = float(np.sum(flat[possible] ** 2 / p[possible]) - 1.0)  # chi2(flat || p)
    if distance <= 0:
        return p
    share = min(0.5, TILT_SIGMAS / math.sqrt(n * distance))
    return (1.0 - share) * p + share * flat


def _good_turing(reference: np.ndarray) -> np.ndarray:
    """Category proportions for a new sample, from reference counts (the last bin: the
    unseen categories, 0 in the reference): Turing's estimate. A category seen r times
    in the reference is seen less often in a new sample than r/n says when r is small
    (the rare ones were lucky to be seen), and the categories never seen take the mass
    the singletons had: ``r* = (r + 1)·N(r+1)/N(r)`` for r <= 5 where N(r+1) > 0, unseen
    ``N(1)/n``. Without it a Zipf column of 1,000 levels drew its null from the raw
    proportions, and 5% of undrifted windows of 1,000 events had p <= 1%.

    >>> _good_turing(np.array([1, 1, 1, 2, 5, 0])).round(3).tolist()
    [0.056, 0.056, 0.056, 0.167, 0.417, 0.25]
    """
    counts = reference[:-1]
    seen_times = np.bincount(counts)
    adjusted = counts.astype(np.float64)
    for r in range(1, min(6, len(seen_times) - 1)):
        if seen_times[r] > 0 and seen_times[r + 1] > 0:
            adjusted[counts == r] = (r + 1) * seen_times[r + 1] / seen_times[r]
    unseen = float(seen_times[1]) if len(seen_times) > 1 else 0.0
    p = np.append(adjusted, unseen)
    return p / p.sum()


@lru_cache(maxsize=1024)
def column_null(column: ColumnProfile) -> ColumnNull:
    """The (cached) null distributions of a reference column."""
    return ColumnNull(column)


def correct(p_values: Mapping[K, float], method: str) -> dict[K, float]:
    """Adjusted p-values over a family of tests (NaN ones are left out of the family and
    stay NaN): Benjamini–Hochberg ("bh"), Bonferroni ("bonferroni") or "none".

    >>> correct({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")}, "bh")
    {'a': 0.03, 'b': 0.04, 'c': 0.04, 'd': nan}
    >>> correct({"a": 0.01, "b": 0.4}, "bonferroni")
    {'a': 0.02, 'b': 0.8}
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; use one of {sorted(CORRECTIONS)}")
    keys = [k for k, p in p_values.items() if not math.isnan(p)]
    adjusted = dict.fromkeys(p_values, float("nan"))
    m = len(keys)
    if not m:
        return adjusted
    if method == "none":
        adjusted.update({k: p_values[k] for k in keys})
    elif method == "bonferroni":
        adjusted.update({k: min(1.0, p_values[k] * m) for k in keys})
    else:
        order = sorted(keys, key=lambda k: p_values[k])  # stable: ties keep their order
        running = 1.0
        for rank in range(m, 0, -1):  # step-up: the running minimum from the largest
            key = order[rank - 1]
            running = min(running, p_values[key] * m / rank)
            adjusted[key] = running
    return adjusted


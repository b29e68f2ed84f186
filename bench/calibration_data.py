"""The data of bench/drift_calibration.py: distribution families, drift scenarios, seeded windows.

Every window is drawn from its own generator, seeded from the run's seed and the window's
place (what it is for, which family or scenario, its size, its index), so any window can be
drawn again on its own, the same on every machine (numpy's ``Generator`` streams are
stable), and the windows the peers read are exactly the first windows ours sees.

A sampler returns float64 values for numeric families and an object array of ``str`` for
categorical ones. No nulls: the benchmark is about the statistics, not missing values.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.stats import norm

Sampler = Callable[[np.random.Generator, int], np.ndarray]

# What a generator is for: the first entry of its spawn key, so a reference, a no-drift
# window, a drifted window and a family-wise window never share a stream.
REFERENCE, FALSE_ALARM, POWER, FAMILYWISE, FAMILYWISE_REFERENCE = range(5)

INTEGER_LEVELS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
INTEGER_WEIGHTS = np.array([0.10, 0.15, 0.25, 0.30, 0.20])  # a rating: skewed, no empty level
CATEGORIES = 20
CATEGORY_DECAY = 0.8  # level k has weight 0.8**k: the rarest of 20 holds 0.3%
ZIPF_LEVELS = 1000
ZIPF_EXPONENT = 1.0  # Zipf's law proper: a 10k reference sees about 91% of the levels
PARETO_SHAPE = 1.5  # infinite variance: the tail the reference range cannot hold
LOGNORMAL_SIGMA = 2.0
BIMODAL_SHARE = 0.6  # 60% N(0, 1), 40% N(5, 1)
P95 = float(norm.ppf(0.95))  # the normal family's 95th percentile


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "numeric" or "categorical": how every tool is told to treat the column
    sample: Sampler
    about: str


@dataclass(frozen=True)
class Scenario:
    """A drifted distribution and the no-drift family it departs from."""

    name: str
    family: str
    sample: Sampler
    about: str


def _bernoulli(p: float) -> Sampler:
    return lambda rng, n: (rng.random(n) < p).astype(np.float64)


def _normal(mean: float = 0.0, scale: float = 1.0) -> Sampler:
    return lambda rng, n: rng.normal(mean, scale, n)


@cache
def _labels(prefix: str, count: int) -> np.ndarray:
    return np.array([f"{prefix}{k:04d}" for k in range(count)], dtype=object)


@cache
def _category_weights() -> np.ndarray:
    weights = CATEGORY_DECAY ** np.arange(CATEGORIES)
    return weights / weights.sum()


@cache
def _zipf_weights() -> np.ndarray:
    weights = 1.0 / np.arange(1, ZIPF_LEVELS + 1) ** ZIPF_EXPONENT
    return weights / weights.sum()


def _categorical(labels: np.ndarray, weights: np.ndarray) -> Sampler:
    cumulative = np.cumsum(weights)
    cumulative /= cumulative[-1]

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        codes = np.searchsorted(cumulative, rng.random(n), side="right")
        return labels[np.minimum(codes, len(labels) - 1)]

    return sample


def _lognormal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.lognormal(0.0, LOGNORMAL_SIGMA, n)


def _pareto(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.pareto(PARETO_SHAPE, n) + 1.0  # classic Pareto, minimum 1


def _bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    first = rng.random(n) < BIMODAL_SHARE
    return np.where(first, rng.normal(0.0, 1.0, n), rng.normal(5.0, 1.0, n))


def _integers(rng: np.random.Generator, n: int) -> np.ndarray:
    return INTEGER_LEVELS[np.searchsorted(np.cumsum(INTEGER_WEIGHTS), rng.random(n),
                                          side="right").clip(0, 4)]


def _tail_moved(rng: np.random.Generator, n: int) -> np.ndarray:
    values = rng.normal(0.0, 1.0, n)
    return np.where(values > P95, values + 1.0, values)


def _new_category(share: float) -> Sampler:
    labels = np.append(_labels("c", CATEGORIES), "c_new")
    weights = np.append(_category_weights() * (1.0 - share), share)
    return _categorical(labels, weights)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("normal", "numeric", _normal(), "N(0, 1)"),
    Family("lognormal", "numeric", _lognormal, f"lognormal, sigma = {LOGNORMAL_SIGMA:g}"),
    Family("pareto", "numeric", _pareto, f"Pareto, shape {PARETO_SHAPE:g}, minimum 1"),
    Family("bimodal", "numeric", _bimodal,
           f"{BIMODAL_SHARE:.0%} N(0, 1) + {1 - BIMODAL_SHARE:.0%} N(5, 1)"),
    Family("integers", "numeric", _integers,
           "1..5 with weights " + "/".join(f"{w:g}" for w in INTEGER_WEIGHTS)),
    Family("binary3", "numeric", _bernoulli(0.03), "0/1, 3% ones"),
    Family("binary40", "numeric", _bernoulli(0.40), "0/1, 40% ones"),
    Family("categorical20", "categorical",
           _categorical(_labels("c", CATEGORIES), _category_weights()),
           f"{CATEGORIES} levels, weights {CATEGORY_DECAY:g}**k"),
    Family("zipf1000", "categorical",
           _categorical(_labels("z", ZIPF_LEVELS), _zipf_weights()),
           f"{ZIPF_LEVELS} levels, weights 1/k**{ZIPF_EXPONENT:g}"),
)}

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("mean+0.1sd", "normal", _normal(0.1), "N(0.1, 1)"),
    Scenario("mean+0.25sd", "normal", _normal(0.25), "N(0.25, 1)"),
    Scenario("mean+0.5sd", "normal", _normal(0.5), "N(0.5, 1)"),
    Scenario("scale*1.2", "normal", _normal(0.0, 1.2), "N(0, 1.2**2)"),
    Scenario("ones40->45%", "binary40", _bernoulli(0.45), "0/1, 45% ones (was 40%)"),
    Scenario("ones3->8%", "binary3", _bernoulli(0.08), "0/1, 8% ones (was 3%)"),
    Scenario("new_category_2%", "categorical20", _new_category(0.02),
             "a level unseen in the reference takes 2%, the others 98% of their share"),
    Scenario("above_p95+1sd", "normal", _tail_moved,
             "N(0, 1) with every value above its P95 (1.645) moved up by 1"),
)}


def key(name: str) -> int:
    """A stable integer for a family, scenario or column name (crc32): reordering or adding
    families changes no other family's windows."""
    return zlib.crc32(name.encode())


def generator(seed: int, *place: int) -> np.random.Generator:
    """The generator of one reference or window, from the run's seed and its place."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=place))


def reference_values(seed: int, family: str, rows: int, index: int = 0) -> np.ndarray:
    """Reference draw ``index`` of a family (the benchmark fits one profile per draw)."""
    return FAMILIES[family].sample(generator(seed, REFERENCE, key(family), index), rows)


def window_values(seed: int, purpose: int, name: str, n: int, index: int) -> np.ndarray:
    """Window ``index`` of size ``n`` of a family (no drift) or a scenario (drift)."""
    sample = FAMILIES[name].sample if purpose == FALSE_ALARM else SCENARIOS[name].sample
    return sample(generator(seed, purpose, key(name), n, index), n)


# -- the family-wise report: 25 columns cycling through the families, 10 segments ------

FAMILYWISE_COLUMNS = 25
# Segment sizes of one window: per-segment hourly counts of a mid-sized stream, all
# below the 10k reference so NannyML's default threshold (reference chunks of the
# segment's size) exists for every segment.
FAMILYWISE_SEGMENTS = (50, 100, 200, 200, 500, 500, 1000, 1000, 2000, 5000)


def familywise_columns(count: int = FAMILYWISE_COLUMNS) -> dict[str, str]:
    """Column name -> family: ``normal_0, lognormal_0, ..., zipf1000_0, normal_1, ...``."""
    names = list(FAMILIES)
    return {f"{names[i % len(names)]}_{i // len(names)}": names[i % len(names)]
            for i in range(count)}


def familywise_frame_values(seed: int, purpose: int, columns: dict[str, str], n: int,
                            *place: int) -> dict[str, np.ndarray]:
    """One segment's (or the reference's) values of every column, from one generator."""
    rng = generator(seed, purpose, *place)
    return {name: FAMILIES[family].sample(rng, n) for name, family in columns.items()}


def reference_of_window(window: int, references: int) -> int:
    """Which reference draw a window is compared with: round robin, so the peers' first
    windows spread over the references as ours do."""
    return window % references


def sizes_label(sizes: Sequence[int]) -> str:
    return ", ".join(f"{n:,}" for n in sizes)

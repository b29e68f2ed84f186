"""How one column of a reference profile bins values: numeric bins or categories.

A numeric column keeps edges ``e_0 < ... < e_last`` and counts values over
``len(edges) + 1`` bins, the same as ``np.histogram`` on the edges plus two open-ended
overflow bins::

    bin 0           x < e_0                (overflow below; empty in the reference)
    bin j           e_(j-1) <= x < e_j     (1 <= j < len(edges) - 1)
    bin last - 1    e_(last-1) <= x <= e_last   (closed, as np.histogram's last bin)
    bin last        x > e_last             (overflow above; empty in the reference)

Edges are strictly increasing, except that a constant reference column has the two edges
``(v, v)``: one point bin between the overflow bins.

The edges keep discrete values apart. A *point* value gets a bin of its own,
``[v, nextafter(v))``, which holds ``v`` and nothing else; the bin between two points,
``[nextafter(v), w)``, is empty in the reference and catches new values. When the
reference's top value is a point, the closed last bin is ``[nextafter(v),
nextafter(nextafter(v))]``: empty too, so that a point's bin never holds a second value.
The points are every distinct value of a column with at most ``bins`` of them (ratings,
flags, small counts), else the values that hold at least ``1/bins`` of the reference (a
point mass in a continuous column: zeros of a zero-inflated latency, a default value).
The rest of the values get quantile bins, as many as their share of the reference times
``bins`` (so ~1/bins each), deduplicated where quantiles repeat. No shift between two
point values can then hide inside one bin, and on a column of points alone the binned KS
statistic is the raw-data one (:func:`metrics.drift.stats.ks`).

Quantile bins hold equal mass, not equal width: a heavy tail's last bin can span most of
the range (lognormal σ = 2: the top 1% spans 99% of it), and Wasserstein's binning error
grows with a bin's mass times its width. So a quantile bin more than 4 times as wide as
the typical one is split at its middle value while its share of the reference times its
width is over 0.003 standard deviations, at most ``bins`` more edges, widest first; a
heavy tail's last values end up with a bin each (the largest in ``[v, nextafter(v)]``).
A column without wide bins (uniform, a light tail) keeps its ``bins + 1`` quantiles.

Numeric counting also keeps, per bin, the exact sum of the values' positions in fixed
point (``floor((x − e_0) · 2**32 / (e_last − e_0))``, integers so that they merge
exactly): the mean position of each bin's mass, which makes Wasserstein far more precise
than spreading the mass uniformly (see :func:`metrics.drift.stats.wasserstein`).

A categorical column keeps the reference categories and counts values over
``len(categories) + 1`` bins, the last one collecting every value the reference never had.

Nulls and, for numeric columns, infinities are skipped, as Evidently drops them before
testing; the stages send them to the dead-letter table before they get here anyway.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from metrics.exact_sum import _OFFSET, ExactSum

__all__ = [
    "Beyond", "CategoricalProfile", "Category", "ColumnProfile", "NumericProfile", "NumericTally",
]

Category = str | int | bool

# Sorting a block that fits in cache and locating the edges in it is how np.histogram
# counts over uneven bins; numpy's vectorised sort makes it ~10x faster than a binary
# search per value (np.searchsorted with unsorted values).
_SORT_BLOCK = 1 << 14
_LOWEST = -np.finfo(np.float64).max
# Positions within [e_0, e_last] in units of (e_last − e_0) / 2**32: fine enough to be
# negligible, coarse enough that int64 sums hold 2**31 values per bin.
_FIXED_POINT = 2.0**32
_FAR_UNITS = 2.0**40
# A quantile bin is split (see _split_wide_bins) while it is this many times wider than
# the typical one and its reference share times its width is over this share of the std.
_WIDE_BIN = 4.0
_WIDE_MASS = 3e-3


@dataclass
class NumericTally:
    """What counting numeric values gives: counts per bin and what lies outside the edges.

    ``offsets`` are the per-bin sums of fixed-point positions (0 for the overflow bins);
    ``low``/``high`` are the smallest value below ``e_0`` and the largest above ``e_last``
    (None while that overflow bin is empty); ``below``/``above`` say how far beyond the
    edges the overflow values lie. Wasserstein needs that: beyond the reference range one
    CDF is flat, so the distance there is the mean excess over the edge.
    """

    counts: np.ndarray
    offsets: np.ndarray
    low: float | None = None
    high: float | None = None
    below: Beyond = field(default_factory=lambda: Beyond(-1))
    above: Beyond = field(default_factory=lambda: Beyond(+1))


@dataclass
class Beyond:
    """How far, in total, the values beyond one edge of the reference range lie from it.

    Distances are kept in the fixed point of the bins' offsets, floored and summed as
    integers, for the values within ``2**40`` units (about 256 reference ranges) of the
    edge; the rare farther values are summed exactly (:class:`ExactSum`) with their count.
    Both merge exactly. ``side`` is -1 below ``e_0`` and +1 above ``e_last``.
    """

    side: int
    units: int = 0
    far_count: int = 0
    far_sum: ExactSum = field(default_factory=ExactSum)

    def add(self, values: np.ndarray, edge: float, scale: float) -> None:
        if scale > 0:
            with np.errstate(over="ignore"):  # a distance too large for a float is far
                units = (values - edge) * (self.side * scale)
            near = units < _FAR_UNITS
            if near.all():
                self.units += int(units.astype(np.int64).sum())  # < 2**54 for a sort block
                return
            self.units += int(units[near].astype(np.int64).sum())
            values = values[~near]
        # Without a fixed point (a constant reference: scale 0) everything is summed exactly.
        self.far_count += len(values)
        self.far_sum.add(values)

    def merge(self, other: Beyond) -> None:
        self.units += other.units
        self.far_count += other.far_count
        self.far_sum.merge(other.far_sum)

    def total(self, edge: float, scale: float) -> Fraction:
        """The summed distance to ``edge`` as an exact rational (from the floored units)."""
        near = Fraction(self.units) / Fraction(scale) if self.units else Fraction(0)
        far_sum = Fraction(self.far_sum.units, 1 << _OFFSET)
        return near + self.side * (far_sum - self.far_count * Fraction(edge))

    def to_list(self) -> list[int | str]:
        return [self.units, self.far_count, hex(self.far_sum.units)]

    @classmethod
    def from_list(cls, side: int, data: list[Any]) -> Beyond:
        units, far_count, far_sum = data
        return cls(side, int(units), int(far_count), ExactSum(int(far_sum, 16)))


@dataclass(frozen=True)
class NumericProfile:
    """Reference bins of a numeric column (a bin per point value, quantile bins for the
    rest; see the module docstring) and the reference's summary statistics.

    >>> col = NumericProfile.fit(np.array([1.0, 2.0, 3.0, 4.0]), bins=2)
    >>> col.edges, col.counts
    ((1.0, 2.5, 4.0), (0, 2, 2, 0))
    >>> col.reference_means().tolist()  # per bin; the overflow bins show their edge
    [1.0, 1.5, 3.5, 4.0]
    >>> tally = col.count(pd.Series([0.5, 2.5, 4.0, 9.0, 7.0, None]))
    >>> tally.counts.tolist(), tally.low, tally.high
    ([1, 0, 2, 2], 0.5, 9.0)
    >>> float(tally.above.total(col.edges[-1], col.fixed_point_scale))  # (9 - 4) + (7 - 4)
    8.0

    With few distinct values each has a bin of its own, with empty bins between them:

    >>> flags = NumericProfile.fit(np.array([0.0, 0.0, 0.0, 1.0]))
    >>> flags.edges  # [0, 0⁺) [0⁺, 1) [1, 1⁺) [1⁺, 1⁺⁺]
    (0.0, 5e-324, 1.0, 1.0000000000000002, 1.0000000000000004)
    >>> flags.counts
    (0, 3, 0, 1, 0, 0)
    >>> flags.count(np.array([0.0, 0.5, 1.0, 1.0])).counts.tolist()
    [0, 1, 1, 2, 0, 0]
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    offsets: tuple[int, ...]
    n: int
    mean: float
    std: float
    min: float
    max: float
    _search: np.ndarray = field(init=False, repr=False, compare=False)
    _scale: float = field(init=False, repr=False, compare=False)

    kind: ClassVar[str] = "numeric"

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.float64)
        if len(edges) < 2 or not np.isfinite(edges).all():
            raise ValueError(f"numeric bins need at least two finite edges, got {self.edges}")
        steps = np.diff(edges)
        if (steps < 0).any() or (len(edges) > 2 and (steps <= 0).any()):
            raise ValueError(f"bin edges are not strictly increasing: {self.edges}")
        _check_counts(self.counts, len(edges) + 1, self.n)
        if len(self.offsets) != len(self.counts) or any(o < 0 for o in self.offsets):
            raise ValueError(f"expected {len(self.counts)} non-negative bin offsets")
        for name in ("mean", "std", "min", "max"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"reference {name} is not finite: {getattr(self, name)}")
        object.__setattr__(self, "_search", _search_points(edges))
        object.__setattr__(self, "_scale", _fixed_point_scale(edges))

    @classmethod
    def fit(cls, values: np.ndarray, bins: int = 100) -> NumericProfile:
        """Bins of the finite ``values`` (nulls and infinities skipped): a bin per point
        value and about ``bins`` quantile bins over the rest (see the module docstring)."""
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            raise ValueError("no finite values to fit numeric bins on")
        with np.errstate(over="ignore"):  # an infinite std is refused just below, by name
            mean, std = float(np.mean(values)), float(np.std(values))
        ordered = np.sort(values)
        edges = _fit_edges(ordered, bins, std)
        tally = _bin_counts(_search_points(edges), _fixed_point_scale(edges), ordered)
        return cls(
            edges=tuple(edges.tolist()),
            counts=tuple(tally.counts.tolist()),
            offsets=tuple(tally.offsets.tolist()),
            n=len(values),
            mean=mean,
            std=std,
            min=float(values.min()),
            max=float(values.max()),
        )

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    def reference_counts(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=np.int64)

    @property
    def fixed_point_scale(self) -> float:
        """Fixed-point units per unit of value: ``2**32 / (e_last − e_0)`` (0 if constant)."""
        return self._scale

    def reference_means(self) -> np.ndarray:
        return self.bin_means(self.reference_counts(), np.asarray(self.offsets, dtype=np.int64))

    def bin_means(self, counts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The mean value of each bin's mass, from fixed-point offsets; the bin's middle
        when empty, and the edge for the overflow bins (whose means are not kept)."""
        edges = np.asarray(self.edges)
        middle = (edges[:-1] + edges[1:]) / 2.0
        means = np.concatenate([[edges[0]], middle, [edges[-1]]])
        filled = counts[1:-1] > 0
        if self._scale > 0 and filled.any():
            inner = means[1:-1]
            inner[filled] = edges[0] + offsets[1:-1][filled] / counts[1:-1][filled] / self._scale
        return means

    def count(self, values: pd.Series | np.ndarray) -> NumericTally:
        """Counts per bin and what lies outside the edges (finite values only)."""
        return _bin_counts(self._search, self._scale, float_array(values))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "offsets": list(self.offsets),
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        return cls(
            edges=tuple(float(e) for e in data["edges"]),
            counts=tuple(int(c) for c in data["counts"]),
            offsets=tuple(int(o) for o in data["offsets"]),
            n=int(data["n"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
            min=float(data["min"]),
            max=float(data["max"]),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """Reference categories of a column with their counts; other values count as unseen.

    Categories are all str, all int or all bool, and a value matches one only if it has
    the same type (an integral float from a column that picked up nulls counts as int):
    ``1`` never matches ``True`` nor ``"1"``.

    >>> col = CategoricalProfile.fit(pd.Series(["ios", "web", "ios", None]))
    >>> col.categories, col.counts
    (('ios', 'web'), (2, 1))
    >>> col.count(pd.Series(["web", "tv", "ios", "tv", None])).tolist()  # ios, web, unseen
    [1, 1, 2]
    """

    categories: tuple[Category, ...]
    counts: tuple[int, ...]
    n: int
    _family: str = field(init=False, repr=False, compare=False)
    _index: pd.Index = field(init=False, repr=False, compare=False)
    _lookup: dict[tuple[str, Category], int] = field(init=False, repr=False, compare=False)

    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        if not self.categories:
            raise ValueError("a categorical profile needs at least one category")
        families = {_family_of_value(c) for c in self.categories}
        if len(families) != 1 or None in families:
            types = sorted({type(c).__name__ for c in self.categories})
            raise ValueError(f"categories must be all str, all int or all bool, got {types}")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categories repeat: {self.categories}")
        _check_counts(self.counts, len(self.categories), self.n)
        family = families.pop()
        assert family is not None
        dtype = {"str": "str", "int": "int64", "bool": "bool"}[family]
        object.__setattr__(self, "_family", family)
        object.__setattr__(self, "_index", pd.Index(list(self.categories), dtype=dtype))
        lookup = {(family, c): i for i, c in enumerate(self.categories)}
        object.__setattr__(self, "_lookup", lookup)

    @classmethod
    def fit(cls, values: pd.Series) -> CategoricalProfile:
        """The observed categories of ``values`` (nulls skipped), sorted."""
        observed = values.value_counts(dropna=True)
        observed = observed[observed > 0]
        if len(observed) == 0:
            raise ValueError("no non-null values to fit categories on")
        pairs = sorted(
            zip((_category(v) for v in observed.index), observed.to_numpy().tolist(), strict=True)
        )
        categories = tuple(c for c, _ in pairs)
        counts = tuple(int(n) for _, n in pairs)
        return cls(categories=categories, counts=counts, n=sum(counts))

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 1

    def reference_counts(self) -> np.ndarray:
        return np.asarray((*self.counts, 0), dtype=np.int64)

    def count(self, values: pd.Series) -> np.ndarray:
        """Counts per reference category, then the count of unseen values."""
        # value_counts hashes each value once and returns one row per distinct value, so
        # only that small table is matched against the reference categories.
        observed = values.value_counts(dropna=True, sort=False)
        positions = self._positions(observed.index)
        positions[positions < 0] = len(self.categories)
        counts = np.zeros(self.n_bins, dtype=np.int64)
        np.add.at(counts, positions, observed.to_numpy(dtype=np.int64))
        return counts

    def _positions(self, observed: pd.Index) -> np.ndarray:
        if isinstance(observed, pd.CategoricalIndex):
            observed = pd.Index(observed.to_numpy(), dtype=observed.categories.dtype)
        family = _family_of_dtype(observed.dtype)
        if family == self._family:
            return np.asarray(self._index.get_indexer(observed), dtype=np.intp)
        if family is not None:  # a column of another type: nothing matches
            return np.full(len(observed), -1, dtype=np.intp)
        keys = (_category_key(v) for v in observed)
        return np.fromiter(
            (-1 if k is None else self._lookup.get(k, -1) for k in keys), np.intp, len(observed)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "categories": list(self.categories),
            "counts": list(self.counts),
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        return cls(
            categories=tuple(data["categories"]),
            counts=tuple(int(c) for c in data["counts"]),
            n=int(data["n"]),
        )


ColumnProfile = NumericProfile | CategoricalProfile


def column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    kind = data.get("type")
    if kind == NumericProfile.kind:
        return NumericProfile.from_dict(data)
    if kind == CategoricalProfile.kind:
        return CategoricalProfile.from_dict(data)
    raise ValueError(f"unknown column profile type {kind!r}; expected 'numeric' or 'categorical'")


def _fit_edges(ordered: np.ndarray, bins: int, std: float) -> np.ndarray:
    """Edges for sorted finite reference values: a bin of its own for every point value,
    quantile bins for the rest, split further in wide tails (see the module docstring)."""
    n = len(ordered)
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    distinct = ordered[starts] + 0.0  # -0.0 and 0.0 are one value; sorted in any order
    if len(distinct) == 1:
        return np.repeat(distinct, 2)  # a constant column: one closed point bin
    if len(distinct) <= bins:
        points, rest = distinct, ordered[:0]
    else:
        multiplicity = np.diff(np.append(starts, n))
        heavy = multiplicity * bins >= n
        points, rest = distinct[heavy], ordered[~np.repeat(heavy, multiplicity)]
    with np.errstate(over="ignore"):  # past the largest float: inf, dropped below
        parts = [points, np.nextafter(points, np.inf)]
        if len(points) and points[-1] == distinct[-1]:
            # The top point's bin is half-open too; the closed last bin holds only the next
            # float, which no reference value has, so a point's bin never holds another.
            parts.append(np.nextafter(parts[1][-1:], np.inf))
    if len(rest):
        # As many quantile bins over the rest as its share of the reference: ~1/bins each.
        share = -(-bins * len(rest) // n)
        quantiles = np.quantile(rest, np.linspace(0.0, 1.0, share + 1))
        parts.append(quantiles)
        if math.isfinite(std):
            parts.append(np.asarray(_split_wide_bins(rest, quantiles, n, std, bins)))
    with np.errstate(over="ignore"):
        edges = np.unique(np.concatenate(parts))
    return edges[np.isfinite(edges)]  # the next float after the largest one is inf


def _split_wide_bins(rest: np.ndarray, quantiles: np.ndarray, n: int, std: float,
                     budget: int) -> list[float]:
    """Edges that split the quantile bins over ``rest`` (sorted values; ``n`` in the whole
    column) where they are wide, widest first, at most ``budget`` of them.

    A bin is wide when it holds more than one value, is more than ``_WIDE_BIN`` times the
    typical (median) quantile bin's width, and its share of the reference times its width
    is over ``_WIDE_MASS`` times the std: about what it can add to the normed Wasserstein
    distance's binning error. It is split at its middle value, so that a heavy tail's
    last bins end up holding a value each (the largest in a bin of its own,
    ``[v, nextafter(v)]``), where the error was.
    """
    typical = float(np.median(np.diff(quantiles)))
    bounds = np.searchsorted(rest, quantiles, side="left")
    bounds[-1] = len(rest)  # the last bin is closed
    wide: list[tuple[float, int, int, float, float]] = []

    def consider(start: int, stop: int, left: float, right: float) -> None:
        held, width = stop - start, right - left
        if held > 1 and width > _WIDE_BIN * typical and held * width > _WIDE_MASS * std * n:
            heapq.heappush(wide, (-held * width, start, stop, left, right))

    for i in range(len(quantiles) - 1):
        consider(int(bounds[i]), int(bounds[i + 1]), float(quantiles[i]), float(quantiles[i + 1]))
    edges: list[float] = []
    while wide and len(edges) < budget:
        _, start, stop, left, right = heapq.heappop(wide)
        middle = float(rest[(start + stop) // 2])
        cut = int(np.searchsorted(rest, middle, side="left"))  # where its ties start
        if cut <= start:
            cut = int(np.searchsorted(rest, middle, side="right"))
        if cut >= stop:
            continue  # one value, repeated
        edge = float(rest[cut])
        edges.append(edge)
        if edge == rest[-1]:  # the top value: a closed bin of its own
            edges.append(float(np.nextafter(edge, np.inf)))
        consider(start, cut, left, edge)
        consider(cut, stop, edge, right)
    return edges


def _search_points(edges: np.ndarray) -> np.ndarray:
    """Where each bin starts: the number of sorted values below each point cumulates the bins.

    -inf sorts below the first point and +inf and NaN at or above the last, so they are
    left out; ``nextafter`` makes the last inner bin closed, as np.histogram's is.
    """
    return np.concatenate([[_LOWEST], edges[:-1], [np.nextafter(edges[-1], np.inf)], [np.inf]])


def _fixed_point_scale(edges: np.ndarray) -> float:
    """Units per unit of value; 0 (no fixed point: bin middles, exact outside sums) when
    the range is empty or too small or too large for the scale to be a finite float."""
    span = float(edges[-1] - edges[0])
    scale = _FIXED_POINT / span if span > 0 else 0.0
    return scale if math.isfinite(scale) else 0.0


def _bin_counts(search: np.ndarray, scale: float, values: np.ndarray) -> NumericTally:
    n_bins = len(search) - 1
    tally = NumericTally(np.zeros(n_bins, dtype=np.int64), np.zeros(n_bins, dtype=np.int64))
    first_edge = float(search[1])
    last_edge = float(np.nextafter(search[-2], -np.inf))  # undo the closing nextafter
    for start in range(0, len(values), _SORT_BLOCK):
        block = np.sort(values[start : start + _SORT_BLOCK])
        first = np.searchsorted(block, search)
        tally.counts += np.diff(first)
        # In the sorted block each bin is a slice, so per-bin sums are differences of
        # one cumulative sum (of integers: exact, whatever the chunking).
        inside = block[first[1] : first[-2]]
        if len(inside) and scale > 0:
            positions = ((inside - first_edge) * scale).astype(np.int64)
            cumulative = np.concatenate([[0], np.cumsum(positions)])
            tally.offsets[1:-1] += np.diff(cumulative[first[1:-1] - first[1]])
        if first[1] > first[0]:  # values below e_0; the block's smallest finite one first
            tally.below.add(block[first[0] : first[1]], first_edge, scale)
            low = float(block[first[0]]) + 0.0  # -0.0 and 0.0 sort in any order
            tally.low = low if tally.low is None else min(tally.low, low)
        if first[-1] > first[-2]:  # values above e_last
            tally.above.add(block[first[-2] : first[-1]], last_edge, scale)
            high = float(block[first[-1] - 1]) + 0.0
            tally.high = high if tally.high is None else max(tally.high, high)
    return tally


def _check_counts(counts: tuple[int, ...], length: int, n: int) -> None:
    if len(counts) != length:
        raise ValueError(f"expected {length} bin counts, got {len(counts)}")
    if any(c < 0 for c in counts):
        raise ValueError(f"bin counts must not be negative: {counts}")
    if sum(counts) != n:
        raise ValueError(f"bin counts add up to {sum(counts)}, not the reference size {n}")


def float_array(values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    if values.dtype == np.float64:
        return values.to_numpy()
    try:
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"values of dtype {values.dtype} are not numeric: {err}") from None


def _category(value: Any) -> Category:
    """A Python str, int or bool for a category value; anything else is refused."""
    key = _category_key(value)
    if key is None:
        raise ValueError(
            f"category {value!r} of type {type(value).__name__} is not a str, int or bool"
        )
    return key[1]


def _category_key(value: Any) -> tuple[str, Category] | None:
    if isinstance(value, bool | np.bool_):
        return ("bool", bool(value))
    if isinstance(value, int | np.integer):
        return ("int", int(value))
    if isinstance(value, str):
        return ("str", str(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return ("int", int(value))  # an integer column that picked up nulls became float
    return None


def _family_of_value(value: Any) -> str | None:
    key = _category_key(value)
    return None if key is None or isinstance(value, float) else key[0]


def _family_of_dtype(dtype: Any) -> str | None:
    """The category type every value of ``dtype`` has, or None for object columns."""
    if pd.api.types.is_object_dtype(dtype):
        return None
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "int"
    if pd.api.types.is_string_dtype(dtype):
        return "str"
    return "other"

"""Tail quantiles (P50, P95, P99, P99.9 ...) from a relative-error, log-bucket sketch.

Accuracy guarantee: with relative accuracy ``a`` (default 0.01), the value reported for a
quantile ``q`` of ``n`` values is within ``a`` times the magnitude of the true value of
that rank — the ``floor(q * (n - 1))``-th smallest value, counting from 0 (what
``np.quantile(..., method="lower")`` returns). At the default that means P99.9 of a
latency column is right to within 1%, however heavy the tail and however many values went
in; the only exception is that values smaller in magnitude than about ``2.2e-308`` are
counted, and reported, as 0. Estimates are also clamped into the exact minimum and maximum.

How: the mapping is DDSketch's logarithmic one (Masson, Rim and Lee, VLDB 2019). With
``gamma = (1 + a) / (1 - a)``, a value ``x`` goes to bucket ``k = ceil(log_gamma |x|)``,
that is ``gamma**(k-1) < |x| <= gamma**k``, and the bucket is reported as
``2 * gamma**k / (gamma + 1)``, which is within ``a`` of every value in it. Positive and
negative values have separate stores; near-zero values have a count of their own.

Why the sketch is deterministic: its state is a few integer counts plus an exact minimum
and maximum, so it merges exactly and any chunking or merge order gives the same bits.
The bucket of a value must then not depend on the machine: ``np.log`` only gives a rough
bucket (it may be off by one right at a boundary, and libms differ in the last bit), which
is corrected by comparing the value with each bucket's upper bound computed once in
decimal arithmetic. Bucket representatives come from the same decimal arithmetic.

>>> sketch = QuantileSketch(relative_accuracy=0.01)
>>> sketch.add(np.arange(1.0, 1001.0))
>>> round(sketch.quantile(0.99), 1)   # the exact value of that rank is 990
982.6
"""

from __future__ import annotations

import itertools
import math
import struct
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from functools import lru_cache
from typing import Self

import numpy as np
import pandas as pd

from metrics.base import Aggregate, ColumnKind, input_column
from metrics.groups import Groups

__all__ = ["QuantileSketch", "QuantileState", "Quantiles", "quantile_field", "quantiles"]

# Finer accuracy makes the dense bucket arrays large: at 1e-4 a single decade of data range
# already spans ~11,500 buckets (~90 kB in memory per state).
MIN_RELATIVE_ACCURACY = 1e-4

# Values are processed in blocks that keep every scratch array in the L2 cache and reuse
# it: allocating fresh arrays the size of the input costs more than the arithmetic.
_BLOCK = 1 << 15

# Enough digits that rounding a bucket bound to the nearest double is decided correctly.
_DECIMAL = Context(prec=60)

# A bound table grows in aligned steps so each bound is computed exactly once.
_TABLE_STEP = 256

_HEADER = struct.Struct("<4sdqdd")  # magic, relative accuracy, zero count, min, max
_STORE_HEADER = struct.Struct("<qqB")  # offset (first key), number of buckets, item size
_MAGIC = b"DMQ1"


class _BucketBounds:
    """``upper(k)``: the largest double ``<= gamma**k``, for the keys seen so far.

    A value ``v > 0`` is in bucket ``k`` exactly when ``upper(k-1) < v <= upper(k)``.
    The bounds are computed with decimal arithmetic (libmpdec, the same on every machine)
    and kept in a float64 table that grows as the data reaches new keys.
    """

    def __init__(self, gamma: float) -> None:
        self._gamma = Decimal(gamma)
        self._lock = threading.Lock()
        # (first key, bounds): replaced as a whole, so readers need no lock.
        self.table: tuple[int, np.ndarray] = (0, np.empty(0))
        # DDSketch's smallest indexable magnitude; anything smaller counts as 0.
        self.min_indexable = sys.float_info.min * gamma
        self.lowest_key = self.key(self.min_indexable, 1.0 / math.log(gamma))

    def key(self, magnitude: float, multiplier: float) -> int:
        """The bucket of one positive value, without growing the table."""
        key = math.ceil(math.log(magnitude) * multiplier) - 1  # the rough key is off by <= 1
        while magnitude > self.upper(key):
            key += 1
        return key

    def covering(self, low: int, high: int) -> tuple[int, np.ndarray]:
        """A table ``(first_key, bounds)`` that holds at least the keys ``low..high``."""
        first, bounds = self.table
        if first <= low and high < first + len(bounds):
            return first, bounds
        with self._lock:
            first, bounds = self.table
            if len(bounds) == 0:
                first = low - low % _TABLE_STEP
                bounds = np.empty(0)
            new_first = min(first, low - low % _TABLE_STEP)
            new_end = max(first + len(bounds), high + _TABLE_STEP - high % _TABLE_STEP)
            below = [self.upper(k) for k in range(new_first, first)]
            above = [self.upper(k) for k in range(first + len(bounds), new_end)]
            self.table = (new_first, np.concatenate([below, bounds, above]))
            return self.table

    def upper(self, key: int) -> float:
        """The largest double <= gamma**key."""
        exact = _DECIMAL.power(self._gamma, key)
        nearest = float(exact)
        return math.nextafter(nearest, -math.inf) if Decimal(nearest) > exact else nearest


@lru_cache(maxsize=64)
def _bucket_bounds(gamma: float) -> _BucketBounds:
    return _BucketBounds(gamma)


@lru_cache(maxsize=4096)
def _representative(gamma: float, key: int) -> float:
    """``2 * gamma**key / (gamma + 1)``, rounded once: within the accuracy of the bucket."""
    g = Decimal(gamma)
    twice = _DECIMAL.multiply(Decimal(2), _DECIMAL.power(g, key))
    return float(_DECIMAL.divide(twice, _DECIMAL.add(g, Decimal(1))))


class _Store:
    """Counts of consecutive bucket keys in a dense int64 array, trimmed to nonzero ends."""

    __slots__ = ("counts", "offset")

    def __init__(self, offset: int = 0, counts: np.ndarray | None = None) -> None:
        self.offset = offset  # the key of counts[0]
        self.counts = np.zeros(0, dtype=np.int64) if counts is None else counts

    def add(self, offset: int, counts: np.ndarray) -> None:
        """Add counts of keys ``offset, offset + 1, ...``; both of their ends must be nonzero."""
        if len(counts) == 0:
            return
        if len(self.counts) == 0:
            self.offset, self.counts = offset, counts.astype(np.int64, copy=True)
            return
        start = min(self.offset, offset)
        end = max(self.offset + len(self.counts), offset + len(counts))
        if start != self.offset or end != self.offset + len(self.counts):
            grown = np.zeros(end - start, dtype=np.int64)
            grown[self.offset - start : self.offset - start + len(self.counts)] = self.counts
            self.offset, self.counts = start, grown
        self.counts[offset - self.offset : offset - self.offset + len(counts)] += counts

    def add_trimmed(self, offset: int, counts: np.ndarray) -> None:
        nonzero = np.flatnonzero(counts)
        if len(nonzero):
            self.add(offset + int(nonzero[0]), counts[nonzero[0] : nonzero[-1] + 1])

    def total(self) -> int:
        return int(self.counts.sum())

    def key_at_rank(self, rank: int) -> int:
        """The key of the bucket holding the value of 0-based ``rank`` (DDSketch's rule)."""
        cumulative = np.cumsum(self.counts)
        index = np.searchsorted(cumulative, rank, side="right")
        return self.offset + min(int(index), len(self.counts) - 1)

    def pack(self) -> bytes:
        largest = int(self.counts.max()) if len(self.counts) else 0
        itemsize = next((size for size in (1, 2, 4) if largest < 1 << (8 * size)), 8)
        dtype = "<i8" if itemsize == 8 else f"<u{itemsize}"
        header = _STORE_HEADER.pack(self.offset, len(self.counts), itemsize)
        return header + self.counts.astype(dtype).tobytes()

    @classmethod
    def unpack(cls, data: bytes, at: int) -> tuple[_Store, int]:
        offset, length, itemsize = _STORE_HEADER.unpack_from(data, at)
        at += _STORE_HEADER.size
        if itemsize not in (1, 2, 4, 8) or at + length * itemsize > len(data):
            raise ValueError("quantile sketch bytes are truncated or corrupt")
        dtype = "<i8" if itemsize == 8 else f"<u{itemsize}"
        counts = np.frombuffer(data, dtype=dtype, count=length, offset=at).astype(np.int64)
        return cls(offset, counts), at + length * itemsize

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _Store) and self.offset == other.offset
                and np.array_equal(self.counts, other.counts))


class QuantileSketch:
    """A deterministic, exactly mergeable relative-error quantile sketch over numpy arrays.

    >>> a, b = QuantileSketch(), QuantileSketch()
    >>> a.add(np.array([-5.0, 0.0, 1.0]))
    >>> b.add(np.array([2.0, 1000.0]))
    >>> a.merge(b)
    >>> a.count, a.quantile(0.0), a.quantile(0.5), a.quantile(1.0)
    (5, -5.0, 0.99, 1000.0)
    """

    __slots__ = ("_bounds", "_multiplier", "count", "gamma", "max", "min", "negative",
                 "positive", "relative_accuracy", "zero_count")

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        _check_accuracy(relative_accuracy)
        self.relative_accuracy = float(relative_accuracy)
        self.gamma = (1.0 + self.relative_accuracy) / (1.0 - self.relative_accuracy)
        self._multiplier = 1.0 / math.log(self.gamma)  # only for the rough key
        self._bounds = _bucket_bounds(self.gamma)
        self.positive = _Store()
        self.negative = _Store()
        self.zero_count = 0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    # -- ingest -----------------------------------------------------------------------

    def add(self, values: np.ndarray) -> None:
        """Add finite values; raises ValueError on NaN or infinity before changing anything."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        if len(values) == 0:
            return
        low, high = float(values.min()), float(values.max())
        if math.isnan(low) or math.isnan(high):
            raise ValueError("QuantileSketch.add got NaN; drop nulls first")
        if math.isinf(low) or math.isinf(high):
            raise ValueError("QuantileSketch.add got an infinite value; the stages reject those")
        scratch = _Scratch(min(len(values), _BLOCK))
        with np.errstate(divide="ignore"):  # log(0) = -inf is handled as the zero bucket
            for start in range(0, len(values), _BLOCK):
                self._add_block(values[start : start + _BLOCK], scratch, low < 0)
        self.count += len(values)
        # + 0.0 turns -0.0 into 0.0, so min and max do not depend on which zero came first.
        self.min = min(self.min, low + 0.0)
        self.max = max(self.max, high + 0.0)

    def _add_block(self, values: np.ndarray, scratch: _Scratch, has_negatives: bool) -> None:
        n = len(values)
        magnitude, rough, keys = scratch.magnitude[:n], scratch.rough[:n], scratch.keys[:n]
        np.abs(values, out=magnitude)
        np.log(magnitude, out=rough)
        rough *= self._multiplier
        np.ceil(rough, out=rough)
        lowest = float(rough.min())
        zero = None
        if lowest <= self._bounds.lowest_key:  # there may be zeros or values below 1e-307
            zero = np.less(magnitude, self._bounds.min_indexable, out=scratch.flags[:n])
            zeros = int(np.count_nonzero(zero))
            if zeros == n:
                self.zero_count += n
                return
            # Any key seen in the block will do: the slots of these values are overwritten.
            np.copyto(rough, rough.max(), where=zero)
            lowest = float(rough.min())
        low, high = int(lowest), int(rough.max())
        first, bounds = self._bounds.covering(low - 1, high)
        # keys becomes an index into the bounds table: bounds[keys] is upper(rough key - 1)
        # and bounds[keys + 1] is upper(rough key). The rough key is off by at most one.
        np.copyto(keys, rough, casting="unsafe")
        keys -= first + 1
        below, above = scratch.below[:n], scratch.above[:n]
        np.take(bounds[:-1], keys, out=below)
        np.take(bounds[1:], keys, out=above)
        flags = scratch.other_flags[:n]
        keys += np.greater(magnitude, above, out=flags)
        keys -= np.less_equal(magnitude, below, out=flags)
        # Bucket slots: positive keys, then negative keys, then one slot for zeros.
        span = high - low + 3  # exact keys lie in low - 1 .. high + 1
        keys -= low - 2 - first
        if has_negatives:
            keys += np.less(values, 0.0, out=flags) * np.int64(span)
        if zero is not None:
            np.copyto(keys, 2 * span, where=zero)
        counts = np.bincount(keys, minlength=2 * span + 1)
        self.positive.add_trimmed(low - 1, counts[:span])
        self.negative.add_trimmed(low - 1, counts[span : 2 * span])
        self.zero_count += int(counts[2 * span])

    # -- merging and reading ----------------------------------------------------------

    def merge(self, other: QuantileSketch) -> None:
        """Add ``other``'s values to this sketch, exactly."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                f"cannot merge a quantile sketch with relative accuracy "
                f"{other.relative_accuracy} into one with {self.relative_accuracy}"
            )
        self.positive.add(other.positive.offset, other.positive.counts)
        self.negative.add(other.negative.offset, other.negative.counts)
        self.zero_count += other.zero_count
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        """The estimate of quantile ``q`` in [0, 1]; NaN when the sketch is empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self.count == 0:
            return math.nan
        # The lower quantile's 0-based rank, as an integer: the negative side counts down
        # from it, and in floats 2 - 0.9999999999999999 - 1 is 0, one value off.
        rank = math.floor(q * (self.count - 1))
        negatives = self.negative.total()
        if rank < negatives:
            key = self.negative.key_at_rank(negatives - rank - 1)
            estimate = -_representative(self.gamma, key)
        elif rank < negatives + self.zero_count:
            estimate = 0.0
        else:
            key = self.positive.key_at_rank(rank - negatives - self.zero_count)
            estimate = _representative(self.gamma, key)
        return min(max(estimate, self.min), self.max)

    # -- serialization ----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_MAGIC, self.relative_accuracy, self.zero_count,
                              self.min, self.max)
        return header + self.negative.pack() + self.positive.pack()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        if len(data) < _HEADER.size or data[:4] != _MAGIC:
            raise ValueError("not quantile sketch bytes (bad header)")
        _, accuracy, zero_count, low, high = _HEADER.unpack_from(data)
        sketch = cls(accuracy)
        sketch.negative, at = _Store.unpack(data, _HEADER.size)
        sketch.positive, at = _Store.unpack(data, at)
        if at != len(data):
            raise ValueError("quantile sketch bytes have trailing data")
        sketch.zero_count = zero_count
        sketch.count = zero_count + sketch.negative.total() + sketch.positive.total()
        sketch.min, sketch.max = low, high
        return sketch

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, QuantileSketch)
                and self.relative_accuracy == other.relative_accuracy
                and self.count == other.count and self.zero_count == other.zero_count
                and self.min == other.min and self.max == other.max
                and self.positive == other.positive and self.negative == other.negative)

    def __repr__(self) -> str:
        return (f"QuantileSketch(relative_accuracy={self.relative_accuracy}, "
                f"count={self.count}, min={self.min}, max={self.max})")


class _Scratch:
    """Reusable per-block arrays."""

    def __init__(self, size: int) -> None:
        self.magnitude = np.empty(size)
        self.rough = np.empty(size)
        self.below = np.empty(size)
        self.above = np.empty(size)
        self.keys = np.empty(size, dtype=np.int64)
        self.flags = np.empty(size, dtype=bool)
        self.other_flags = np.empty(size, dtype=bool)


def _check_accuracy(relative_accuracy: float) -> None:
    if not MIN_RELATIVE_ACCURACY <= relative_accuracy < 1:
        raise ValueError(
            f"relative_accuracy must be in [{MIN_RELATIVE_ACCURACY}, 1) (finer accuracy makes "
            f"the bucket arrays large), got {relative_accuracy!r}"
        )


# -- the aggregate --------------------------------------------------------------------


class QuantileState:
    """A quantile sketch of one numeric column; nulls are skipped."""

    __slots__ = ("column", "sketch")

    def __init__(self, column: str, relative_accuracy: float) -> None:
        self.column = column
        self.sketch = QuantileSketch(relative_accuracy)

    def update(self, frame: pd.DataFrame) -> None:
        values = frame[self.column].to_numpy(dtype=np.float64, na_value=np.nan)
        # min propagates NaN, so this costs one pass and no mask when there are no nulls.
        if len(values) and np.isnan(values.min()):
            values = values[~np.isnan(values)]
        self.sketch.add(values)

    def merge(self, other: Self) -> None:
        if other.column != self.column:
            raise ValueError(
                f"cannot merge quantiles of {other.column!r} into quantiles of {self.column!r}"
            )
        self.sketch.merge(other.sketch)

    def to_bytes(self) -> bytes:
        return self.sketch.to_bytes()

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output."""
        sketch = QuantileSketch.from_bytes(data)
        if sketch.relative_accuracy != self.sketch.relative_accuracy:
            raise ValueError(
                f"stored quantile sketch has relative accuracy {sketch.relative_accuracy}, "
                f"expected {self.sketch.relative_accuracy}"
            )
        self.sketch = sketch
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, QuantileState) and self.column == other.column
                and self.sketch == other.sketch)

    def __repr__(self) -> str:
        return f"QuantileState({self.column!r}, {self.sketch!r})"


@dataclass(frozen=True)
class Quantiles(Aggregate):
    """Quantiles of a numeric column (nulls skipped), each within ``relative_accuracy``.

    Fields are named after the percentile: ``p50``, ``p95``, ``p99``, ``p99.9``.
    """

    column: str | None
    ps: tuple[float, ...] = (0.5, 0.95, 0.99)
    relative_accuracy: float = 0.01
    kind = "quantiles"

    def __post_init__(self) -> None:
        try:
            ps = tuple(float(p) for p in self.ps)
        except (TypeError, ValueError):
            raise ValueError(f"ps must be a sequence of numbers, got {self.ps!r}") from None
        if not ps:
            raise ValueError("ps must name at least one quantile")
        outside = [p for p in ps if not 0.0 < p <= 1.0]
        if outside:
            raise ValueError(f"ps must be in (0, 1], got {outside}")
        if any(a >= b for a, b in itertools.pairwise(ps)):
            raise ValueError(f"ps must be sorted and unique, got {list(ps)}")
        try:
            accuracy = float(self.relative_accuracy)
        except (TypeError, ValueError):
            raise ValueError(
                f"relative_accuracy must be a number, got {self.relative_accuracy!r}"
            ) from None
        _check_accuracy(accuracy)
        object.__setattr__(self, "ps", ps)
        object.__setattr__(self, "relative_accuracy", accuracy)

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): "numeric"}

    def fields(self) -> tuple[str, ...]:
        return tuple(quantile_field(p) for p in self.ps)

    def new_state(self) -> QuantileState:
        return QuantileState(input_column(self), self.relative_accuracy)

    def state_from_bytes(self, data: bytes) -> QuantileState:
        return self.new_state().load(data)

    def update_groups(self, states: Sequence[QuantileState], frame: pd.DataFrame,
                      groups: Groups) -> None:
        values = frame[input_column(self)].to_numpy(dtype=np.float64, na_value=np.nan)
        for state, part in zip(states, groups.split_finite(values), strict=True):
            state.sketch.add(part)

    def value(self, state: QuantileState) -> dict[str, float]:
        return {quantile_field(p): state.sketch.quantile(p) for p in self.ps}


def quantile_field(p: float) -> str:
    """The field name of quantile ``p``: 0.5 -> "p50", 0.999 -> "p99.9", 1.0 -> "p100"."""
    percent = Decimal(repr(float(p))).scaleb(2).normalize()
    return f"p{percent:f}"


def quantiles(
    column: str | None = None,
    ps: tuple[float, ...] = Quantiles.ps,
    relative_accuracy: float = Quantiles.relative_accuracy,
) -> Quantiles:
    """Quantiles of ``column`` at ``ps`` (nulls skipped), each within ``relative_accuracy``
    of the true value; the fields are named after the percentiles. Without a ``column``, the
    aggregate of a per-event function (``@mon.metric``).

    >>> quantiles("latency_ms").fields()
    ('p50', 'p95', 'p99')
    >>> agg = quantiles("latency_ms", ps=(0.5, 0.99, 0.999))
    >>> agg.fields()
    ('p50', 'p99', 'p99.9')
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"latency_ms": [12.0, 15.0, None, 18.0, 250.0]}))
    >>> agg.value(state)  # of the 4 values, P99 and P99.9 are the 3rd smallest: 18
    {'p50': 15.03, 'p99': 17.99, 'p99.9': 17.99}
    """
    return Quantiles(column, ps, relative_accuracy)

"""An exact, order-independent sum of float64 values, vectorised with numpy.

Floating-point addition is not associative, so a plain running sum gives different bits
for different chunkings and merge orders — which would break the promise that every
stage stores bit-identical values. Every finite double is an integer multiple of
2**-1126 once written as ``mantissa * 2**exponent`` with a 53-bit integer mantissa, so
the sum is kept as one Python integer in those units: exact, mergeable by integer
addition, and rounded to float only when read.

>>> s = ExactSum()
>>> s.add(np.array([1e16, 1.0, -1e16]))
>>> s.value()
1.0
>>> sum([1e16, 1.0, -1e16])  # what a naive float sum gives
0.0
"""

from __future__ import annotations

import numpy as np

_MANTISSA_BITS = 53
# frexp's exponent of the smallest subnormal is -1073; minus the 53 mantissa bits.
_OFFSET = 1073 + _MANTISSA_BITS
_LOW_BITS = 27
_LOW_MASK = (1 << _LOW_BITS) - 1
# bincount adds in float64; sums of integers below 2**53 are exact. Each half-mantissa is
# below 2**27, so a block of at most 2**25 values cannot lose a bit.
_BLOCK = 1 << 25


class ExactSum:
    """The exact sum of the finite float64 values added to it."""

    __slots__ = ("units",)

    def __init__(self, units: int = 0) -> None:
        self.units = units  # the sum, in units of 2**-_OFFSET

    def add(self, values: np.ndarray) -> None:
        """Add finite values; raises ValueError on NaN or infinity (filter them first)."""
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("ExactSum.add needs finite values; filter NaN and inf first")
        for start in range(0, len(values), _BLOCK):
            self.units += _block_units(values[start : start + _BLOCK])

    def merge(self, other: ExactSum) -> None:
        self.units += other.units

    def value(self) -> float:
        """The exact sum rounded once to the nearest float (inf if it overflows)."""
        try:
            return self.units / (1 << _OFFSET)
        except OverflowError:
            return float("inf") if self.units > 0 else float("-inf")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExactSum) and self.units == other.units

    def __repr__(self) -> str:
        return f"ExactSum({self.value()!r})"


def _block_units(values: np.ndarray) -> int:
    if len(values) == 0:
        return 0
    fractions, exponents = np.frexp(values)
    mantissas = np.ldexp(fractions, _MANTISSA_BITS).astype(np.int64)  # exact: |m| < 2**53
    shifts = exponents.astype(np.int64) - _MANTISSA_BITS + _OFFSET
    signs = np.sign(mantissas)
    magnitudes = np.abs(mantissas)
    high = np.bincount(shifts, weights=signs * (magnitudes >> _LOW_BITS))
    low = np.bincount(shifts, weights=signs * (magnitudes & _LOW_MASK))
    total = 0
    for shift in np.flatnonzero((high != 0) | (low != 0)):
        total += (int(high[shift]) << (int(shift) + _LOW_BITS)) + (int(low[shift]) << int(shift))
    return total

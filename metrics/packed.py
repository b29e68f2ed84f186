"""Counts and texts of a state packed as bytes, read back with every size checked.

A state that keeps thousands of texts (a consistency check's keys and their values)
spent most of a window's serialization building one JSON list per key: about 5 µs a key,
more than its update. Packed here, the texts of a state are one UTF-8 block after their
lengths, and its counts one array of the narrowest unsigned width that holds the largest
(1, 2, 4 or 8 bytes, named in a byte before them): numpy writes and reads both at once,
and the bytes are as small as the JSON was or smaller. The same arrays always pack to the
same bytes, so states still compare byte for byte across stages.

>>> data = pack_counts(np.array([3, 1, 300])) + pack_texts(["ab", "", "é"])
>>> reader = Reader(data, "a test state")
>>> reader.counts(3).tolist(), reader.texts(3)
([3, 1, 300], ['ab', '', 'é'])
>>> reader.end()
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["Reader", "pack_counts", "pack_texts"]

_WIDTHS = (1, 2, 4, 8)  # bytes of an unsigned count
_SIZE = struct.Struct("<Q")  # the byte length of a text block


def pack_counts(counts: np.ndarray) -> bytes:
    """Non-negative integers as their width (a byte) and the little-endian array."""
    largest = int(counts.max()) if len(counts) else 0
    if len(counts) and int(counts.min()) < 0:
        raise ValueError(f"cannot pack a negative count ({int(counts.min())})")
    width = next((w for w in _WIDTHS if largest < 1 << (8 * w)), None)
    if width is None:
        raise ValueError(f"cannot pack a count of {largest}: over 64 bits")
    return bytes([width]) + counts.astype(f"<u{width}").tobytes()


def pack_texts(texts: list[str]) -> bytes:
    """Texts as their lengths in code points (:func:`pack_counts`), the UTF-8 block's size
    and the block: one join and one encoding for them all."""
    block = "".join(texts).encode("utf-8")
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    return pack_counts(lengths) + _SIZE.pack(len(block)) + block


class Reader:
    """Reads packed parts in the order they were written; a ValueError naming ``what``
    when the bytes end early, hold a bad width or UTF-8, or do not add up."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what
        self.at = 0

    def unpack(self, layout: struct.Struct) -> tuple[object, ...]:
        self._need(layout.size)
        fields = layout.unpack_from(self.data, self.at)
        self.at += layout.size
        return fields

    def counts(self, n: int) -> np.ndarray:
        """``n`` counts of :func:`pack_counts`, as int64 (a count over 2**63 is refused)."""
        self._need(1)
        width = self.data[self.at]
        if width not in _WIDTHS:
            raise ValueError(f"{self.what}: bad count width {width}")
        self.at += 1
        self._need(n * width)
        counts = np.frombuffer(self.data, dtype=f"<u{width}", count=n, offset=self.at)
        self.at += n * width
        if width == 8 and n and int(counts.max()) >= 1 << 63:
            raise ValueError(f"{self.what}: a count over 2**63")
        return counts.astype(np.int64)

    def texts(self, n: int) -> list[str]:
        """``n`` texts of :func:`pack_texts`."""
        lengths = self.counts(n)
        (size,) = self.unpack(_SIZE)
        assert isinstance(size, int)
        self._need(size)
        try:
            block = self.data[self.at:self.at + size].decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{self.what}: texts are not UTF-8 ({err.reason})") from err
        self.at += size
        if n and int(lengths.max()) > len(block):  # also keeps the sum below from overflowing
            raise ValueError(f"{self.what}: a text of {int(lengths.max())} code points in "
                             f"texts of {len(block)}")
        ends = np.cumsum(lengths)
        if (int(ends[-1]) if n else 0) != len(block):
            raise ValueError(f"{self.what}: text lengths add up to "
                             f"{int(ends[-1]) if n else 0}, the texts hold {len(block)}")
        return [block[start:end] for start, end
                in zip((ends - lengths).tolist(), ends.tolist(), strict=True)]

    def end(self) -> None:
        """Check that nothing follows the parts read."""
        if self.at != len(self.data):
            raise ValueError(f"{self.what}: {len(self.data) - self.at} bytes of trailing data")

    def _need(self, size: int) -> None:
        if size < 0 or self.at + size > len(self.data):
            raise ValueError(f"{self.what}: the bytes end early ({len(self.data)} bytes, "
                             f"{self.at + size} needed)")

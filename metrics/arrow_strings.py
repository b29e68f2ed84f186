"""Some rows of a pandas Arrow string column as Python strings, read from its buffers.

An assertion reads its string ids at the few violating rows of each chunk.
``ArrowStringArray.take`` (Arrow's compute ``take``, then ``to_pylist``) cost about 50 µs
for 40 rows between the engine's other work on a micro-batch, as much as spelling the
rest of the records; the offsets and bytes of the array give the same strings in about
three fifths of that. Only a plain Arrow string array in one chunk is read so (what the
schema's ``str`` makes); anything else returns None and the caller takes it the usual
way. The kept fields, taken to be spelled later, are read so too
(:func:`metrics.sample_records.take_column`): in the engine, timed by CPU between its
other work on each chunk, ~35 µs for a chunk's 40 rows against ~50 µs for pyarrow's
``take`` on the Arrow array and ``to_numpy``.

>>> values = pd.array(["ann", None, "é", ""], dtype="str")
>>> arrow_strings_at(values, np.array([2, 1, 0, 3]))
['é', None, 'ann', '']
>>> arrow_strings_at(pd.array(["a"], dtype="string[python]"), np.array([0])) is None
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["arrow_strings_at"]

_OFFSETS = {pa.string(): np.int32, pa.large_string(): np.int64}  # offset width per type


def arrow_strings_at(values: Any, rows: np.ndarray) -> list[str | None] | None:
    """The strings of ``values`` at positions ``rows`` (None for a null), or None when
    ``values`` is not an Arrow string array in one chunk."""
    if not isinstance(values, pd.arrays.ArrowStringArray):
        return None
    chunked = values.__arrow_array__()
    if chunked.num_chunks != 1:
        return None
    array = chunked.chunk(0)
    width = _OFFSETS.get(array.type)
    if width is None:  # string views and the like: laid out otherwise
        return None
    validity, offsets, data = array.buffers()
    at = np.asarray(rows, dtype=np.int64) + array.offset  # a slice shares its parent's buffers
    bounds = np.frombuffer(offsets, dtype=width)
    text = memoryview(b"" if data is None else data)
    strings: list[str | None] = [
        str(text[start:stop], "utf-8")
        for start, stop in zip(bounds[at].tolist(), bounds[at + 1].tolist(), strict=True)]
    if array.null_count:
        bits = np.frombuffer(validity, dtype=np.uint8)
        for i in np.flatnonzero((bits[at >> 3] >> (at & 7)) & 1 == 0).tolist():
            strings[i] = None
    return strings

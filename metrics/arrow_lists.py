"""A ranked-list column held in Arrow (``list<string>``), read without a Python list per row.

The batch stage reads a Postgres ``text[]`` column straight into Arrow and keeps it there
(:mod:`monitor.batch.postgres_columns`): turning half a million homepages into Python
lists, then validating and copying them, cost more than all the metrics that read them.
Here the same answers as :mod:`metrics.ranked_lists` gives for Python lists come from the
column's flat items and their row numbers, at C speed: where the engaged item first sits
in each list (Arrow's ``equal`` compares the UTF-8 bytes, which for text is what Python's
``==`` compares), and the lists themselves as Python lists when a metric (or a per-event
function, which every stage gives Python lists) needs them.

A ranked list's items come from a small catalogue (a homepage's carousels, a shelf's
items), so a column of them holds a few distinct texts many times over. Arrow's own
conversion makes a new ``str`` for every item; :func:`string_lists` makes each distinct
text once and the lists share it (a ``str`` cannot change, so sharing it is safe; each
row's list is its own): for a day of the example's homepages (72k lists, 832k items, 24
distinct texts), 33 ms where Arrow's conversion took 61 ms. The cyclic collector waits
until the lists are made (:mod:`metrics.gc_pause`). The values are equal to
:meth:`pyarrow.Array.to_pylist`'s: a list of ``str`` per row, None for a null list and
for a null item.

>>> frame = pd.DataFrame({"shown": pd.array([["a", "b", "c"], ["c", "a"], None, ["b"]],
...                                         dtype=pd.ArrowDtype(pa.list_(pa.string()))),
...                       "clicked": ["b", "b", "a", None]})
>>> first_positions(arrow_lists(frame["shown"]), frame["clicked"]).tolist()
[1, -1, -1, -1]
>>> python_lists(arrow_lists(frame["shown"])).tolist()
[['a', 'b', 'c'], ['c', 'a'], None, ['b']]
>>> lists = string_lists(pa.chunked_array([pa.array([["a", "b"], None, [], ["b", None]],
...                                                 pa.list_(pa.string()))]))
>>> lists
[['a', 'b'], None, [], ['b', None]]
>>> lists[0][1] is lists[3][0]
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from metrics.gc_pause import paused_collection

__all__ = ["arrow_lists", "first_positions", "holds_arrow_lists", "holds_string_lists",
           "python_lists", "string_lists"]


def holds_string_lists(data_type: pa.DataType) -> bool:
    """Whether an Arrow column of ``data_type`` holds lists of strings (a ranked list)."""
    return ((pa.types.is_list(data_type) or pa.types.is_large_list(data_type))
            and (pa.types.is_string(data_type.value_type)
                 or pa.types.is_large_string(data_type.value_type)))


def holds_arrow_lists(dtype: object) -> bool:
    """Whether a pandas column of ``dtype`` holds lists of strings in Arrow (what
    :func:`arrow_lists` reads), told without the column."""
    return isinstance(dtype, pd.ArrowDtype) and holds_string_lists(dtype.pyarrow_dtype)


def arrow_lists(values: pd.Series) -> pa.ListArray | pa.LargeListArray | None:
    """The column as one Arrow array of lists of strings, or None when it is held
    otherwise (Python lists in an object column, as every other source gives them)."""
    if not holds_arrow_lists(values.dtype):
        return None
    # Joined even when it is one chunk: handing on that chunk as it is (a slice of the
    # read's batch) saved the copy (~1 ms a day) but measured ~0.1 CPU s a week slower
    # in bench/batch.py (2026-12-04, alternated runs), for reasons not pinned down.
    return values.array.__arrow_array__().combine_chunks()


def first_positions(lists: pa.ListArray | pa.LargeListArray, items: pd.Series
                    ) -> np.ndarray | None:
    """Per row the 0-based position of the first occurrence of the row's item in its list,
    -1 where it is not there (or either is null); None when the items cannot be compared
    in Arrow (not text), for the caller to compare them in Python."""
    flat = pc.list_flatten(lists)
    try:  # an Arrow string column as it is; Python strings (None, NaN for null) converted
        wanted = pa.array(items, from_pandas=True)
    except (pa.ArrowException, TypeError, UnicodeEncodeError):
        return None
    if not (pa.types.is_string(wanted.type) or pa.types.is_large_string(wanted.type)
            or pa.types.is_null(wanted.type)):  # bytes are no text: Python's == says so
        return None
    wanted = wanted.cast(flat.type)
    rows = pc.list_parent_indices(lists).to_numpy()  # each flat item's row
    # where each row's items start among the flat ones (a null list has none)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    same = pc.fill_null(pc.equal(flat, pc.take(wanted, rows)), False)
    hits = np.flatnonzero(same.to_numpy(zero_copy_only=False))
    positions = np.full(len(lists), -1, dtype=np.int64)
    if len(hits):
        hit_rows = rows[hits]  # in order: a row's items are consecutive
        first_rows, first = np.unique(hit_rows, return_index=True)
        positions[first_rows] = hits[first] - starts[first_rows]
    return positions


def python_lists(lists: pa.ListArray | pa.LargeListArray) -> np.ndarray:
    """The lists as an object array of Python lists of str, None for a null list (see
    :func:`string_lists`)."""
    out = np.empty(len(lists), dtype=object)
    out[:] = string_lists(lists)  # a slice: numpy must not nest the lists
    return out


def string_lists(column: pa.ChunkedArray | pa.Array) -> list[list[Any] | None]:
    """Each row's list of str, None for a null, each distinct text made once (see the
    module)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out: list[list[Any] | None] = []
    with paused_collection():  # a list per row, none of them in a cycle
        for chunk in chunks:
            out.extend(_chunk_lists(chunk))
    return out


def _chunk_lists(lists: pa.Array) -> list[list[Any] | None]:
    items = _items(pc.list_flatten(lists))
    ends = np.cumsum(pc.fill_null(pc.list_value_length(lists), 0).to_numpy()).tolist()
    valid = lists.is_valid().to_numpy(zero_copy_only=False).tolist()
    out: list[list[Any] | None] = []
    start = 0
    for end, present in zip(ends, valid, strict=True):
        out.append(items[start:end] if present else None)
        start = end
    return out


def _items(texts: pa.Array) -> list[Any]:
    """The items as Python objects, each distinct text made once (when texts repeat)."""
    encoded = pc.dictionary_encode(texts)
    distinct = encoded.dictionary
    if 2 * len(distinct) > len(texts):  # mostly distinct: nothing to share
        return texts.to_pylist()
    made = np.empty(len(distinct) + 1, dtype=object)
    made[:-1] = distinct.to_pylist()  # made[-1] stays None: where an item is null
    positions = pc.fill_null(encoded.indices, len(distinct)).to_numpy()
    return made[positions].tolist()

"""The values of a ``list[str]`` field (a ranked list of item ids): what is accepted as one.

Events reach validation from many places, and a list arrives in as many shapes: a Python
list (a JSON event, a DataFrame, a Postgres ``json`` or ``text[]`` column), a tuple, a
one-dimensional numpy array (a Parquet ``list<string>`` column), or text holding a JSON
array (a CSV cell, a SQLite column, an event that sent the array encoded as a string) -
bytes too, when they are UTF-8 text. All of these are accepted and come out as a plain
Python ``list`` of ``str``, in order; an empty list is a list (nothing was shown).

A column the source read into Arrow (``list<string>``: the batch stage's Postgres read)
is judged there, with no Python list made (:func:`arrow_list_problems`): Arrow's strings
are UTF-8 text already (checked), so the one fault such a column can hold is a null item.

Anything else is rejected, never guessed at: a number, a mapping, text that is not a JSON
array (``"a,b"``, or Python's ``"['a', 'b']"``, whose quotes JSON does not take), and a
list with an item that is not a string (a null, a number). An item that is no text (a lone
UTF-16 surrogate, which ``json.loads`` lets through) is rejected as well, as the file
readers reject such a string: a database or Parquet writer would fail on it later.

>>> lists, problems = parse_string_lists(pd.Series(
...     [["a", "b"], '["c"]', ("d",), np.array(["e"]), "a,b", [1], "[]"]))
>>> lists.tolist()
[['a', 'b'], ['c'], ['d'], ['e'], None, None, []]
>>> problems.tolist()
[None, None, None, None, 'is not a list of strings', 'holds an item that is not a string', None]
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from metrics.gc_pause import paused_collection
from monitor.surrogates import LONE_SURROGATE

LIST_OF_STR = "list[str]"  # the schema type's name
NOT_A_LIST = "is not a list of strings"
NOT_STRINGS = "holds an item that is not a string"
NOT_TEXT = "holds an item that is not UTF-8 text"
NOT_UTF8 = "is not UTF-8 text"
PROBLEMS = (NOT_A_LIST, NOT_STRINGS, NOT_TEXT, NOT_UTF8)


def parse_string_lists(values: pd.Series, skip: np.ndarray | None = None
                       ) -> tuple[pd.Series, np.ndarray]:
    """Each value as a list of str (None where skipped or rejected), and per row the
    problem (one of :data:`PROBLEMS`) or None.

    ``skip`` marks rows to leave alone (nulls, which the caller judges).
    """
    items = values.to_numpy(dtype=object).tolist()
    skipped = [False] * len(items) if skip is None else np.asarray(skip, dtype=bool).tolist()
    copies = _all_string_lists(items, skipped, skip is None or not any(skipped))
    if copies is not None:
        lists = np.empty(len(copies), dtype=object)
        lists[:] = copies
        return (pd.Series(lists, index=values.index, dtype=object),
                np.full(len(copies), None, dtype=object))
    parsed = [_SKIPPED if skip_it else _one(value)
              for value, skip_it in zip(items, skipped, strict=True)]
    lists = np.empty(len(parsed), dtype=object)
    lists[:] = [found for found, _ in parsed]  # a slice: numpy must not nest the lists
    problems = np.array([problem for _, problem in parsed], dtype=object)
    return pd.Series(lists, index=values.index, dtype=object), problems


_SKIPPED: tuple[None, None] = (None, None)


def decoded_arrow_lists(lists: pa.ListArray | pa.LargeListArray
                        ) -> tuple[list[list[str | None] | None], np.ndarray]:
    """The lists of an Arrow column whose bytes are not all UTF-8 text as Python lists
    (None for a null list and item), and where a row holds an item that is no text
    (:data:`NOT_TEXT`; its list None): a row at fault, not a chunk that cannot be read."""
    binary = pa.large_list(pa.large_binary()) if pa.types.is_large_list(lists.type) \
        else pa.list_(pa.binary())
    out: list[list[str | None] | None] = []
    undecodable = np.zeros(len(lists), dtype=bool)
    for row, items in enumerate(lists.cast(binary).to_pylist()):
        try:
            out.append(None if items is None else
                       [None if item is None else item.decode("utf-8") for item in items])
        except UnicodeDecodeError:
            out.append(None)
            undecodable[row] = True
    return out, undecodable
_OFFSETS = {pa.string(): np.int32, pa.large_string(): np.int64}  # offset width per type


def _all_ascii(texts: pa.Array) -> bool:
    """Whether the bytes of ``texts`` (their null slots too) are all ASCII, so UTF-8 text:
    one pass over the bytes, where Arrow's check of UTF-8 goes string by string."""
    width = _OFFSETS.get(texts.type)
    if width is None:
        return False
    _, offsets, data = texts.buffers()
    if data is None or not len(texts):
        return True
    bounds = np.frombuffer(offsets, dtype=width)[texts.offset:texts.offset + len(texts) + 1]
    used = np.frombuffer(data, dtype=np.uint8)[bounds[0]:bounds[-1]]
    return not len(used) or int(used.max()) < 0x80


def arrow_list_problems(lists: pa.ListArray | pa.LargeListArray) -> np.ndarray | None:
    """Per row of an Arrow column of string lists the problem :func:`parse_string_lists`
    finds in the same lists (a null item: :data:`NOT_STRINGS`), or None; a null list has
    none (the caller judges nulls). None for the whole column when its bytes are not all
    UTF-8 text (Arrow does not check that when it is handed them): judge those in Python.
    """
    flat = pc.list_flatten(lists)
    if not _all_ascii(flat):  # the bytes of text are checked, at four times the cost
        try:
            lists.validate(full=True)
        except pa.ArrowInvalid:
            return None
    problems = np.full(len(lists), None, dtype=object)
    if flat.null_count:
        rows = pc.list_parent_indices(lists).to_numpy()
        problems[rows[flat.is_null().to_numpy(zero_copy_only=False)]] = NOT_STRINGS
    return problems


def _all_string_lists(items: list[Any], skipped: list[bool], none_skipped: bool
                      ) -> list[list[str] | None] | None:
    """A copy of each list (None where skipped) when every value left is a list of text,
    the shape nearly every column has (validated events, a Postgres array or JSON read);
    None otherwise, for :func:`_one` to find the rows at fault. The check is one join over
    all the items at C speed, where a call per row cost more than reading the column."""
    kept = items if none_skipped else [v for v, skip_it in zip(items, skipped, strict=True)
                                       if not skip_it]
    if not set(map(type, kept)) <= {list}:
        return None
    try:
        joined = "".join(itertools.chain.from_iterable(kept))
    except TypeError:  # an item that is no string
        return None
    if not joined.isascii() and LONE_SURROGATE.search(joined):
        return None
    with paused_collection():  # a copy per row, none of them in a cycle
        if none_skipped:
            return list(map(list, items))
        return [None if skip_it else list(v)
                for v, skip_it in zip(items, skipped, strict=True)]


def _one(value: object) -> tuple[list[str] | None, str | None]:
    if type(value) is list:  # most values, validated or read: straight to the items
        return _items(value)
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None, NOT_UTF8
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            return None, NOT_A_LIST
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            return None, NOT_A_LIST
        value = value.tolist()
    if not isinstance(value, list | tuple):
        return None, NOT_A_LIST
    return _items(value)


def _items(value: list[Any] | tuple[Any, ...]) -> tuple[list[str] | None, str | None]:
    try:  # a C loop: join takes only strings (numpy's str_ too, a subclass)
        joined = "".join(value)
    except TypeError:
        return None, NOT_STRINGS
    if not joined.isascii() and LONE_SURROGATE.search(joined):
        return None, NOT_TEXT
    # a new list either way: the clean frame shares no mutable object with the caller's
    return list(value), None

"""The values of a ``list[str]`` field (a ranked list of item ids): what is accepted as one.

Events reach validation from many places, and a list arrives in as many shapes: a Python
list (a JSON event, a DataFrame, a Postgres ``json`` or ``text[]`` column), a tuple, a
one-dimensional numpy array (a Parquet ``list<string>`` column), or text holding a JSON
array (a CSV cell, a SQLite column, an event that sent the array encoded as a string) -
bytes too, when they are UTF-8 text. All of these are accepted and come out as a plain
Python ``list`` of ``str``, in order; an empty list is a list (nothing was shown).

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

import json

import numpy as np
import pandas as pd

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
    items = values.to_numpy(dtype=object)
    lists = np.full(len(items), None, dtype=object)
    problems = np.full(len(items), None, dtype=object)
    for row, value in enumerate(items):
        if skip is not None and skip[row]:
            continue
        parsed, problem = _one(value)
        lists[row], problems[row] = parsed, problem
    return pd.Series(lists, index=values.index, dtype=object), problems


def _one(value: object) -> tuple[list[str] | None, str | None]:
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
    if not all(isinstance(item, str) for item in value):
        return None, NOT_STRINGS
    # str() turns a subclass (numpy's str_) into a plain str; a new list either way, so the
    # clean frame shares no mutable object with what the caller handed in.
    parsed = [item if type(item) is str else str(item) for item in value]
    if not all(item.isascii() for item in parsed) and any(
            LONE_SURROGATE.search(item) for item in parsed):
        return None, NOT_TEXT
    return parsed, None

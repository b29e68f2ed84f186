"""Segment labels: the text that names a combination of segment values, and its inverse.

A label is ``column=value`` pairs joined by commas in ``segment_by`` order
(``"country=BR,device=ios"``); the overall segment is ``*``, a null value is ``<null>``.
Labels are stored (as part of unique keys), shown and typed back (``--segment``), so
they must be unambiguous, reversible and storable:

- **Escaped**: in names and values, ``%``, ``,``, ``=``, control characters (NUL
  included) and lone surrogates are percent-encoded as the UTF-8 bytes of the character
  (``%2C``), as is a leading ``*`` and a value that is literally ``<null>``. Nothing
  else changes, so ordinary values (``BR``, ``SE``, ``1``, ``São Paulo``) keep the labels
  they always had, and no label holds a character Postgres text cannot (NUL) or that
  UTF-8 cannot encode.
- **Bounded**: a value whose escaped text is longer than ``MAX_VALUE_BYTES`` UTF-8 bytes
  is labelled by its longest prefix that fits in ``SHORT_PREFIX_BYTES`` (whole
  characters and escapes), then ``%~`` and the first 16 hex digits of the SHA-256 of the
  whole value. It depends on nothing but the value, so every event, chunk and stage
  labels it the same, and two long values that differ anywhere get different labels.
  Postgres caps a unique index entry near 2.7 kB; unbounded, one 10 kB value would make
  every store of its window fail.

>>> segment_label({"country": "BR", "device": "ios"})
'country=BR,device=ios'
>>> segment_label({"country": "=,*"}), segment_label({"note": "a,x=y"})
('country=%3D%2C*', 'note=a%2Cx%3Dy')
>>> segment_label({"country": "SE\\x00"}), segment_label({"country": None}), segment_label({})
('country=SE%00', 'country=<null>', '*')
>>> parse_label("note=a%2Cx%3Dy"), parse_label("country=<null>"), parse_label("*")
({'note': 'a,x=y'}, {'country': None}, {})
>>> long = segment_label({"query": "x" * 10_000})
>>> len(long), long[-24:]
(216, 'xxxxxx%~e4ee97ec252749d2')
>>> parse_label(long)["query"][-32:]
'xxxxxx…(sha256 e4ee97ec252749d2)'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from monitor.spec import OVERALL

NULL_LABEL = "<null>"
MAX_VALUE_BYTES = 256  # of a value's escaped text; longer ones are shortened
SHORT_PREFIX_BYTES = 192  # of escaped text kept before the hash of a shortened value
HASH_DIGITS = 16
SHORTENED = "%~"  # never in an escaped value: a literal '%' is always '%25'

# One character to escape: the label's syntax, control characters (C0, DEL, C1) and lone
# surrogates (which UTF-8 cannot encode; percent-encoded with surrogatepass, reversibly).
_SPECIAL = re.compile("[%,=\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_ESCAPES = re.compile("(?:%[0-9A-F]{2})+")
_PIECES = re.compile("%[0-9A-F]{2}|.", flags=re.DOTALL)  # an escape or one character


def segment_label(values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """The label of one segment: its (column, value) pairs in ``segment_by`` order."""
    pairs = list(values.items() if isinstance(values, Mapping) else values)
    if not pairs:
        return OVERALL
    return ",".join(f"{escape(name)}={label_value(value)}" for name, value in pairs)


def label_value(value: Any) -> str:
    """One value as it appears in a label: escaped, bounded, ``<null>`` for a null."""
    if _is_null(value):
        return NULL_LABEL
    text = value_text(value)
    if text == NULL_LABEL:
        return "%3Cnull>"
    escaped = escape(text)
    if len(escaped.encode("utf-8")) <= MAX_VALUE_BYTES:
        return escaped
    return _shortened(text, escaped)


def value_text(value: Any) -> str:
    """A segment value as text: a whole float as an integer (``1.0`` reads ``1``, as the
    same value in an int column would), anything else as ``str``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def escape(text: str) -> str:
    """``text`` with the characters that mean something in a label percent-encoded.

    >>> escape("100%"), escape("*"), escape("a*")
    ('100%25', '%2A', 'a*')
    """
    escaped = _SPECIAL.sub(_percent, text)
    return "%2A" + escaped[1:] if escaped.startswith("*") else escaped


def unescape(text: str) -> str:
    """The inverse of :func:`escape`."""
    return _ESCAPES.sub(lambda m: bytes.fromhex(m.group().replace("%", "")).decode(
        "utf-8", "surrogatepass"), text)


def parse_label(label: str) -> dict[str, str | None]:
    """The ``{column: value}`` a label names (None for a null); ``{}`` for overall.

    A shortened value comes back as its prefix, ``…`` and its hash (the rest of it is
    not in the label). ValueError says what is wrong with text that is not a label.
    """
    if label == OVERALL:
        return {}
    values: dict[str, str | None] = {}
    for part in label.split(","):  # a comma in a name or value is always escaped
        name, sep, value = part.partition("=")
        if not sep or not name or SHORTENED in name:
            raise ValueError(f"segment {label!r} is not a label: each part must look like "
                             "column=value, e.g. country=BR (or * for overall)")
        column = unescape(name)
        if column in values:
            raise ValueError(f"segment {label!r} names column {column!r} twice")
        values[column] = _parse_value(value)
    return values


def _parse_value(value: str) -> str | None:
    if value == NULL_LABEL:
        return None
    prefix, shortened, digest = value.partition(SHORTENED)
    if not shortened:
        return unescape(value)
    return f"{unescape(prefix)}…(sha256 {digest})"


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))


def _shortened(text: str, escaped: str) -> str:
    """The longest prefix of ``escaped`` within SHORT_PREFIX_BYTES that cuts no character
    or escape, then SHORTENED and the hash of the whole value."""
    kept, size = [], 0
    for piece in _PIECES.findall(escaped):
        size += len(piece.encode("utf-8"))
        if size > SHORT_PREFIX_BYTES:
            break
        kept.append(piece)
    prefix = "".join(kept)
    # Cut between the bytes of one escaped character: keep whole characters only.
    prefix = re.sub("(?:%[0-9A-F]{2})+$", lambda m: _whole_escapes(m.group()), prefix)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}{SHORTENED}{digest[:HASH_DIGITS]}"


def _whole_escapes(run: str) -> str:
    """A trailing run of escapes, without the bytes of a character it cut in two."""
    data = bytes.fromhex(run.replace("%", ""))
    for end in range(len(data), -1, -1):
        try:
            data[:end].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            continue
        return run[:3 * end]
    return ""


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)

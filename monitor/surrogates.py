"""JSON strings that are no text: a lone UTF-16 surrogate escape.

JSON may escape a character as two surrogates (``"\\ud83d\\ude00"`` is one emoji), and
``json.loads`` joins such a pair; a lone one (``"\\udc00"``) it keeps as it is, a str
that cannot be encoded as UTF-8: pandas and pyarrow then fail on it (or drop it). Readers
reject such an event as malformed instead. The check is cheap to skip: only text that
holds a surrogate escape at all needs it.

>>> has_surrogate_escape('{"c": "\\\\udc00x"}'), holds_lone_surrogate({"c": "\\udc00x"})
(True, True)
>>> holds_lone_surrogate({"c": "\\U0001f600"})
False
"""

from __future__ import annotations

import json
import re
from typing import Any

SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
LONE_SURROGATE_DETAIL = "a string holds a lone surrogate escape (not text)"


def has_surrogate_escape(text: str) -> bool:
    return "\\u" in text and SURROGATE_ESCAPE.search(text) is not None


def holds_lone_surrogate(value: Any) -> bool:
    """Whether a key or string anywhere in ``value`` (parsed JSON) is a lone surrogate."""
    return LONE_SURROGATE.search(json.dumps(value, ensure_ascii=False)) is not None

"""Reading what an AppTest run drew: every element, chart specs and their data."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
from streamlit.testing.v1 import AppTest


def nodes(app: AppTest) -> Iterator[Any]:
    stack: list[Any] = [app._tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(getattr(node, "children", {}).values())


def page_bytes(app: AppTest) -> bytes:
    """Every element as its serialized message: text, tables, chart specs and data."""
    return b"\n".join(node.proto.SerializeToString() for node in nodes(app)
                      if getattr(node, "proto", None) is not None)


def charts(app: AppTest) -> list[tuple[dict[str, Any], list[pd.DataFrame]]]:
    """Each Vega-Lite chart's spec and its data sets."""
    found = []
    for chart in app.get("vega_lite_chart"):
        data = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
        found.append((json.loads(chart.proto.spec), data))
    return found


def marks(spec: dict[str, Any]) -> list[str]:
    """The marks of a chart's layers, in order; a nested layer's marks are left out (call
    again on it)."""
    layers = spec.get("layer", [spec])
    return [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
            for layer in layers if "mark" in layer]


def texts(app: AppTest) -> str:
    """The text of the markdown, captions, titles, headers and alerts, one per line,
    Markdown escapes removed."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success",
                 "warning", "error"):
        parts += [str(element.value) for element in getattr(app, kind)]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))

"""A window's state with its count, and the two steps every stage takes with them the same
way: merging stored states by key, and valuing a window's states into stored values.

Research, batch (slices and roll-ups), streaming (closing a window from its partitions'
partials and any state stored before) and the dashboard all go through these two
functions, so the same events give bit-identical stored values wherever they were
computed. Pure: states in, states or values out.

>>> import metrics
>>> import pandas as pd
>>> from monitor.spec import MetricSpec, StreamSpec
>>> from monitor.schema import Schema
>>> stream = StreamSpec("home", Schema.parse({"latency_ms": "float"}))
>>> spec = MetricSpec("latency", stream, metrics.mean("latency_ms"), window="1h")
>>> fed = []
>>> for values in ([100.0], [200.0, 600.0]):
...     state = spec.aggregate.new_state()
...     state.update(pd.DataFrame({"latency_ms": values}))
...     fed.append((("latency", "*", 0), state.to_bytes(), len(values)))
>>> partials = merge_stored(spec.aggregate, fed)
>>> partials[("latency", "*", 0)].rows, partial_values(spec, partials)
(3, {('latency', '*', 0): {'mean': 300.0}})
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from metrics.base import Aggregate, State
from monitor.spec import MetricSpec

PartialKey = tuple[str, str, int]  # (metric, segment, window start in ns since epoch)
Key = TypeVar("Key", bound=Hashable)


@dataclass
class Partial:
    """The state of one (metric, segment, window) and how many events it absorbed."""

    state: State
    rows: int = 0

    def merge(self, other: Partial) -> None:
        self.state.merge(other.state)
        self.rows += other.rows


def merge_stored(aggregate: Aggregate, stored: Iterable[tuple[Key, bytes, int]]
                 ) -> dict[Key, Partial]:
    """Serialized states ``(key, aggregate state bytes, events it absorbed)`` revived and
    merged by key, in the order given: each key's partial holds what one state fed all
    their events would (states merge exactly)."""
    merged: dict[Key, Partial] = {}
    for key, data, rows in stored:
        partial = Partial(aggregate.state_from_bytes(data), rows)
        if key in merged:
            merged[key].merge(partial)
        else:
            merged[key] = partial
    return merged


def partial_values(metric: MetricSpec, partials: Mapping[PartialKey, Partial]
                   ) -> dict[PartialKey, dict[str, float]]:
    """The stored values of ``metric``'s partials (others in ``partials`` are left out): a
    float per field, in the aggregate's field order.

    The segments of a window are valued together (``Aggregate.window_values``: a drift
    report corrects its tests over the columns and segments of a window), so ``partials``
    must hold every segment of each window it holds, merged."""
    windows: dict[int, dict[str, State]] = {}
    for (name, segment, start_ns), partial in partials.items():
        if name == metric.name:
            windows.setdefault(start_ns, {})[segment] = partial.state
    fields = metric.aggregate.fields()
    valued = {}
    for start_ns, states in windows.items():
        values = metric.aggregate.window_values(states)
        for segment in states:
            valued[(metric.name, segment, start_ns)] = {
                field: float(values[segment][field]) for field in fields}
    return valued

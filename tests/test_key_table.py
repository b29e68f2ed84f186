"""The key table behind consistency checks and expect_unique: whatever the batches, their
order, merges and hash collisions, it holds what a plain Python model of its definition
holds — the k keys of the lowest (hash, text), each with its events summed and its keep
values of the lowest (hash, text)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.key_table import Keys, KeyTable, text_array

TEXTS = [f"k{i}" for i in range(12)]
VALUES = [f'"{v}"' for v in "abcdefg"]


def colliding_hash(text: str) -> int:
    """A hash with only four values, so that distinct texts share one often (the table
    must then order them by text), some near the top of the 64-bit range."""
    return [3, 2**64 - 1, 7, 2**63][sum(map(ord, text)) % 4]


Batch = dict[str, tuple[int, frozenset[str]]]  # key -> (events, its values)

batches = st.lists(st.dictionaries(
    st.sampled_from(TEXTS),
    st.tuples(st.integers(1, 5), st.frozensets(st.sampled_from(VALUES), max_size=4))),
    max_size=6)


def as_keys(batch: Batch) -> Keys:
    texts = list(batch)
    owners = [i for i, text in enumerate(texts) for _ in batch[text][1]]
    values = [value for text in texts for value in sorted(batch[text][1])]
    return Keys(np.array([colliding_hash(t) for t in texts], dtype=np.uint64),
                text_array(texts), np.array([batch[t][0] for t in texts], dtype=np.int64),
                np.array(owners, dtype=np.intp),
                np.array([colliding_hash(v) for v in values], dtype=np.uint64),
                text_array(values))


def model(parts: list[Batch], k: int, keep: int) -> tuple[list[tuple[str, int, list[str]]],
                                                          bool]:
    events: dict[str, int] = {}
    values: dict[str, set[str]] = {}
    for batch in parts:
        for text, (n, held) in batch.items():
            events[text] = events.get(text, 0) + n
            values.setdefault(text, set()).update(held)
    order = sorted(events, key=lambda t: (colliding_hash(t), t))
    return [(t, events[t], sorted(values[t], key=lambda v: (colliding_hash(v), v))[:keep])
            for t in order[:k]], len(order) > k


def contents(table: KeyTable) -> list[tuple[str, int, list[str]]]:
    held = table.held()
    owners = held.owners.tolist()
    return [(text, events, [v for v, o in zip(held.value_texts.tolist(), owners, strict=True)
                            if o == i])
            for i, (text, events) in enumerate(zip(held.texts.tolist(), held.events.tolist(),
                                                   strict=True))]


@settings(max_examples=200, deadline=None)
@given(left=batches, right=batches, k=st.integers(1, 8), keep=st.integers(0, 3))
def test_batches_and_merges_hold_what_the_model_holds(left: list[Batch], right: list[Batch],
                                                      k: int, keep: int) -> None:
    if not keep:  # a table without values (expect_unique)
        left = [{t: (n, frozenset()) for t, (n, _) in b.items()} for b in left]
        right = [{t: (n, frozenset()) for t, (n, _) in b.items()} for b in right]
    tables = []
    for parts in (left, right):
        table = KeyTable(k, keep)
        for batch in parts:
            table.add(as_keys(batch))
        assert (contents(table), table.dropped) == model(parts, k, keep)
        tables.append(table)
    tables[0].merge(tables[1])
    assert (contents(tables[0]), tables[0].dropped) == model(left + right, k, keep)
    whole = KeyTable(k, keep)
    for batch in right + left:
        whole.add(as_keys(batch))
    assert whole == tables[0]

"""The promises every built-in aggregate keeps (the cases live in builtins.py).

- every aggregate kind the ``metrics`` package registers has a case;
- bytes round trip: a state rebuilt from its bytes is equal and gives the same values;
- any chunking, merged in any order, gives values bit-identical to one update over all;
- merging an empty state changes nothing;
- ``update_groups`` (the engine's one pass over a chunk's many groups) leaves each state
  byte-identical to ``update`` on that group's rows.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.base import Aggregate, aggregate_from_dict
from metrics.groups import Groups
from tests.builtins import CASES, CASES_BY_KIND, EXAMPLES, Case

ids = [case.name for case in CASES]


@pytest.mark.parametrize("kind", sorted(CASES_BY_KIND))
def test_every_built_in_kind_has_a_case(kind: str) -> None:
    assert CASES_BY_KIND[kind], (
        f"aggregate kind {kind!r} has no case in tests/builtins.py: add one to EXAMPLES so "
        "the contract tests hold it to their promises")


def test_every_example_is_of_a_built_in_kind() -> None:
    assert [case.name for case in EXAMPLES if case.aggregate.kind not in CASES_BY_KIND] == []


def same_bits(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal keys and bit-identical floats (NaN equal to NaN)."""
    if a.keys() != b.keys():
        return False
    return all(
        np.float64(a[k]).tobytes() == np.float64(b[k]).tobytes()
        or (math.isnan(a[k]) and math.isnan(b[k]))
        for k in a
    )


def whole(aggregate: Aggregate, frame: pd.DataFrame) -> dict[str, float]:
    state = aggregate.new_state()
    state.update(frame)
    return aggregate.value(state)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_bytes_round_trip(case: Case) -> None:
    frame = case.make_frame(np.random.default_rng(7), 500)
    state = case.aggregate.new_state()
    state.update(frame)
    again = case.aggregate.state_from_bytes(state.to_bytes())
    assert again == state
    assert same_bits(case.aggregate.value(again), case.aggregate.value(state))
    assert again.to_bytes() == state.to_bytes()


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_definition_round_trip(case: Case) -> None:
    rebuilt = aggregate_from_dict(case.aggregate.to_dict())
    assert rebuilt.id == case.aggregate.id
    assert rebuilt.fields() == case.aggregate.fields()


@pytest.mark.parametrize("case", CASES, ids=ids)
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 400),
    cuts=st.lists(st.floats(0, 1), max_size=6),
    order=st.randoms(use_true_random=False),
    through_bytes=st.booleans(),
)
def test_any_chunking_and_merge_order_is_bit_identical(
    case: Case, seed: int, rows: int, cuts: list[float], order, through_bytes: bool
) -> None:
    frame = case.make_frame(np.random.default_rng(seed), rows)
    expected = whole(case.aggregate, frame)

    bounds = sorted({0, rows, *(int(c * rows) for c in cuts)})
    partials = []
    for start, stop in itertools.pairwise(bounds):
        state = case.aggregate.new_state()
        state.update(frame.iloc[start:stop])
        if through_bytes:
            state = case.aggregate.state_from_bytes(state.to_bytes())
        partials.append(state)
    partials.append(case.aggregate.new_state())  # an empty partial merges as a no-op
    order.shuffle(partials)
    # merge in a random tree shape, not only left to right
    while len(partials) > 1:
        i = order.randrange(len(partials) - 1)
        left, right = partials[i], partials.pop(i + 1)
        left.merge(right)
    assert same_bits(case.aggregate.value(partials[0]), expected)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_values_name_every_field(case: Case) -> None:
    values = whole(case.aggregate, case.make_frame(np.random.default_rng(3), 300))
    assert tuple(values) == case.aggregate.fields()


@pytest.mark.parametrize("case", CASES, ids=ids)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 400), n_groups=st.integers(1, 12),
       twice=st.booleans())
def test_grouped_update_equals_update_per_group(case: Case, seed: int, rows: int,
                                                 n_groups: int, twice: bool) -> None:
    """As the engine calls it: each row in one group, or (``twice``) each row in an overall
    group and again in a segment's group, as segmented metrics do."""
    rng = np.random.default_rng(seed)
    frame = case.make_frame(rng, rows)
    codes = rng.integers(0, n_groups, rows)
    entries = np.arange(rows)
    if twice:
        codes = np.concatenate([codes, n_groups + rng.integers(0, n_groups, rows)])
        entries = np.concatenate([entries, entries])
        n_groups *= 2
    grouped = [case.aggregate.new_state() for _ in range(n_groups)]
    case.aggregate.update_groups(grouped, frame, Groups(codes, n_groups, entries))
    for group, state in enumerate(grouped):
        alone = case.aggregate.new_state()
        alone.update(frame.iloc[entries[codes == group]])
        assert state.to_bytes() == alone.to_bytes(), f"group {group}"
        assert same_bits(case.aggregate.value(state), case.aggregate.value(alone))

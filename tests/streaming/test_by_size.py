"""The worker hands a micro-batch to its processor in parts bounded by bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streaming.messages import RawMessage
from streaming.worker import by_size


def batch(sizes: list[int]) -> list[RawMessage]:
    return [RawMessage(0, offset, b"x" * size if size else None)
            for offset, size in enumerate(sizes)]


@given(st.lists(st.integers(0, 50), max_size=40), st.integers(1, 60))
def test_parts_keep_every_message_in_order_and_stay_under_the_limit(
        sizes: list[int], limit: int) -> None:
    messages = batch(sizes)
    parts = list(by_size(messages, limit))
    assert [m for part in parts for m in part] == messages
    for part in parts:
        assert part  # never an empty part
        total = sum(len(m.value or b"") for m in part)
        assert total <= limit or len(part) == 1  # only a lone message may be over


def test_a_message_over_the_limit_goes_alone_and_small_ones_share() -> None:
    parts = [[m.offset for m in part] for part in by_size(batch([3, 3, 10, 2, 2, 2]), 6)]
    assert parts == [[0, 1], [2], [3, 4, 5]]

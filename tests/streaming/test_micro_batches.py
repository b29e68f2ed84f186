"""How the agent gathers micro-batches: due when full by messages or bytes, or when the
first message waited long enough; nothing lost or reordered by take and drop."""

from __future__ import annotations

from streaming.micro_batches import Gathering


def gathering(messages: int = 4, size: int = 100, within: float = 0.5) -> Gathering[str]:
    return Gathering(max_messages=messages, max_bytes=size, within_s=within)


def test_due_when_full_by_messages() -> None:
    g = gathering(messages=3)
    for i in range(2):
        g.add(f"m{i}", partition=0, length=1, now=0.0)
        assert not g.due(0.0)
    g.add("m2", partition=0, length=1, now=0.0)
    assert g.full and g.due(0.0)
    assert g.take() == ["m0", "m1", "m2"]
    assert not g.due(10.0) and not g.full


def test_due_when_full_by_bytes_even_with_one_message_over_the_bound() -> None:
    g = gathering(size=100)
    g.add("a", partition=0, length=60, now=0.0)
    assert not g.due(0.0)
    g.add("b", partition=1, length=40, now=0.0)
    assert g.full
    g.take()
    g.add("huge", partition=0, length=10_000, now=1.0)
    assert g.due(1.0) and g.take() == ["huge"]


def test_the_wait_counts_from_the_first_message() -> None:
    g = gathering(within=0.5)
    assert not g.due(100.0)  # nothing gathered
    g.add("a", partition=0, length=1, now=10.0)
    g.add("b", partition=0, length=1, now=10.4)
    assert not g.due(10.49)
    assert g.due(10.5)
    assert not g.full  # due by time: not a backlog
    g.take()
    g.add("c", partition=0, length=1, now=20.0)
    assert not g.due(20.2)  # the clock starts again with the next message


def test_drop_forgets_only_the_revoked_partitions_in_order() -> None:
    g = gathering(messages=100, size=1_000)
    items = [("p0-a", 0, 5), ("p1-a", 1, 7), ("p0-b", 0, 11), ("p2-a", 2, 13), ("p1-b", 1, 17)]
    for name, partition, length in items:
        g.add(name, partition=partition, length=length, now=0.0)
    dropped = g.drop({1, 3})
    assert dropped == ["p1-a", "p1-b"]
    assert g.size == 5 + 11 + 13
    assert g.take() == ["p0-a", "p0-b", "p2-a"]


def test_while_messages_wait_it_grows_to_its_bounds() -> None:
    g = gathering(messages=3, within=0.5)
    g.add("a", partition=0, length=1, now=0.0)
    assert not g.due(1.0, waiting=True)  # behind: keep gathering
    assert g.due(1.0, waiting=False)  # caught up: the wait is over
    g.add("b", partition=0, length=1, now=1.0)
    g.add("c", partition=0, length=1, now=1.0)
    assert g.due(1.0, waiting=True) and g.full  # full goes whatever waits

"""Reading ahead (monitor.batch.read_ahead): the same chunks in the same order, at most one
range and two chunks ahead, a read's error handed to its own range, and a reader that
stops when told (its read closed, its thread gone)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pandas as pd
import pytest

from monitor.batch.read_ahead import ReadAhead, reads_ahead
from monitor.batch.sources import FileSource, TableSource
from monitor.schema import Schema
from monitor.spec import StreamSpec

T0 = pd.Timestamp("2026-03-02", tz="UTC")
HOUR = pd.Timedelta("1h")
RANGES = [(T0 + i * HOUR, T0 + (i + 1) * HOUR) for i in range(5)]
WAIT_S = 5.0


def eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class FakeSource:
    """``chunks_per_range`` chunks per range, each a frame naming its range and number;
    notes what was read, on which thread, and which reads were closed before their end.
    ``fail`` maps a range's index to the chunk number its read raises at (on its first
    ``failures`` reads)."""

    def __init__(self, chunks_per_range: int = 1, fail: dict[int, int] | None = None,
                 failures: int = 1) -> None:
        self.chunks_per_range = chunks_per_range
        self.fail = fail or {}
        self.failures = failures
        self.reads: list[int] = []  # range indexes, in the order their reads started
        self.yielded = 0
        self.threads: set[str] = set()
        self.closed_early: list[int] = []
        self.lock = threading.Lock()

    def check(self) -> None:
        pass

    def earliest(self) -> pd.Timestamp | None:
        return T0

    def reads_ahead(self) -> bool:
        return True

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        index = RANGES.index((since, until))
        with self.lock:
            self.reads.append(index)
            self.threads.add(threading.current_thread().name)
            failing = index in self.fail and self.reads.count(index) <= self.failures
        finished = False
        try:
            for number in range(self.chunks_per_range):
                if failing and number == self.fail[index]:
                    raise RuntimeError(f"read of range {index} broke at chunk {number}")
                with self.lock:
                    self.yielded += 1
                yield chunk(index, number)
            finished = True
        finally:
            if not finished:
                self.closed_early.append(index)


def chunk(index: int, number: int) -> pd.DataFrame:
    return pd.DataFrame({"range": [index], "chunk": [number]})


def taken(ahead: ReadAhead, index: int) -> list[tuple[int, int]]:
    return [(int(c["range"][0]), int(c["chunk"][0])) for c in ahead.chunks(*RANGES[index])]


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("read-ahead")]


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    yield
    assert eventually(lambda: not read_ahead_threads()), read_ahead_threads()


def test_each_range_gives_the_sources_chunks_in_order_read_on_another_thread() -> None:
    source = FakeSource(chunks_per_range=3)
    with ReadAhead(source, RANGES) as ahead:
        got = [taken(ahead, i) for i in range(len(RANGES))]
    assert got == [[(i, n) for n in range(3)] for i in range(len(RANGES))]
    assert source.reads == list(range(len(RANGES)))  # each range read once, in order
    assert source.threads == {"read-ahead"}


def test_the_next_range_is_read_while_the_run_works_on_this_one() -> None:
    source = FakeSource()
    with ReadAhead(source, RANGES) as ahead:
        assert taken(ahead, 0) == [(0, 0)]
        # range 0 is computed and stored here: range 1 is read meanwhile
        assert eventually(lambda: source.reads == [0, 1])


def test_the_reader_is_at_most_one_range_ahead() -> None:
    source = FakeSource()
    with ReadAhead(source, RANGES) as ahead:
        taken(ahead, 0)
        assert eventually(lambda: source.reads == [0, 1])
        time.sleep(0.2)  # time enough to read on, were it not held back
        assert source.reads == [0, 1]
        taken(ahead, 1)
        assert eventually(lambda: source.reads == [0, 1, 2])
        time.sleep(0.2)
        assert source.reads == [0, 1, 2]


def test_the_reader_is_at_most_two_chunks_ahead() -> None:
    source = FakeSource(chunks_per_range=50)
    with ReadAhead(source, RANGES, max_chunks=2) as ahead:
        chunks = ahead.chunks(*RANGES[0])
        next(chunks)
        # one taken, two waiting, one read and waiting for room
        assert eventually(lambda: source.yielded == 4)
        time.sleep(0.2)
        assert source.yielded == 4
        next(chunks)
        assert eventually(lambda: source.yielded == 5)
        time.sleep(0.2)
        assert source.yielded == 5
        assert isinstance(chunks, Generator)
        chunks.close()


def test_a_read_error_fails_its_own_range_and_the_range_is_read_again() -> None:
    source = FakeSource(chunks_per_range=2, fail={1: 1})
    with ReadAhead(source, RANGES) as ahead:
        assert taken(ahead, 0) == [(0, 0), (0, 1)]  # range 1 failed meanwhile: not range 0's
        assert eventually(lambda: source.reads == [0, 1])
        got = []
        with pytest.raises(RuntimeError, match="read of range 1 broke at chunk 1"):
            for c in ahead.chunks(*RANGES[1]):
                got.append(int(c["chunk"][0]))
        assert got == [0]  # what came before the error; the run drops the slice's try
        time.sleep(0.2)
        assert source.reads == [0, 1]  # reading ahead stopped at the error
        assert taken(ahead, 1) == [(1, 0), (1, 1)]  # the retry reads the range afresh
        assert taken(ahead, 2) == [(2, 0), (2, 1)]
    assert source.reads == [0, 1, 1, 2, 3]


def test_an_error_opening_a_read_goes_to_its_range_too() -> None:
    source = FakeSource(fail={2: 0}, failures=3)
    with ReadAhead(source, RANGES) as ahead:
        taken(ahead, 0)
        taken(ahead, 1)
        for _ in range(3):  # every try of the range fails, as the source's read does
            with pytest.raises(RuntimeError, match="read of range 2"):
                taken(ahead, 2)
        assert taken(ahead, 2) == [(2, 0)]


def test_a_range_asked_for_again_or_out_of_order_is_read_afresh() -> None:
    source = FakeSource(chunks_per_range=2)
    with ReadAhead(source, RANGES) as ahead:
        taken(ahead, 0)
        assert taken(ahead, 0) == [(0, 0), (0, 1)]  # a retried slice (its store failed)
        half = ahead.chunks(*RANGES[1])
        next(half)
        assert isinstance(half, Generator)
        half.close()  # the slice's computation failed half-way: the rest is not handed on
        assert taken(ahead, 1) == [(1, 0), (1, 1)]
        assert taken(ahead, 3) == [(3, 0), (3, 1)]
    assert source.reads[:2] == [0, 1]
    assert source.reads.count(1) >= 2 and 3 in source.reads


def test_a_range_not_of_the_run_is_read_on_this_thread() -> None:
    source = FakeSource()
    with ReadAhead(source, RANGES[:2]) as ahead:
        assert taken(ahead, 3) == [(3, 0)]
    assert source.threads == {threading.current_thread().name}


def test_closing_stops_the_reader_promptly_and_closes_its_read() -> None:
    source = FakeSource(chunks_per_range=1000)
    ahead = ReadAhead(source, RANGES)
    chunks = ahead.chunks(*RANGES[0])
    next(chunks)
    assert eventually(lambda: source.yielded == 4)  # the reader waits for room
    began = time.monotonic()
    ahead.close()
    assert time.monotonic() - began < 1.0
    assert not read_ahead_threads()
    assert source.closed_early == [0]  # its read closed (a connection not kept)


def test_an_interrupt_stops_the_reader() -> None:
    source = FakeSource(chunks_per_range=1000)
    with pytest.raises(KeyboardInterrupt), ReadAhead(source, RANGES) as ahead:
        for _ in ahead.chunks(*RANGES[0]):
            raise KeyboardInterrupt  # Ctrl-C while a chunk is computed
    assert not read_ahead_threads()
    assert source.closed_early == [0]


def test_a_reader_waiting_for_the_run_to_start_the_next_range_stops_too() -> None:
    source = FakeSource()
    ahead = ReadAhead(source, RANGES)
    taken(ahead, 0)
    assert eventually(lambda: source.reads == [0, 1])
    ahead.close()
    assert not read_ahead_threads()
    assert source.reads == [0, 1]


def test_a_bound_of_no_chunk_is_refused() -> None:
    with pytest.raises(ValueError, match="max_chunks must be at least 1"):
        ReadAhead(FakeSource(), RANGES, max_chunks=0)


def test_only_the_sources_read_outside_python_read_ahead(tmp_path: Path) -> None:
    import sqlalchemy as sa

    stream = StreamSpec("s", Schema.parse({"x": "float"}), table="t")
    assert not reads_ahead(TableSource(sa.create_engine("sqlite://"), stream))
    pg = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")  # never connects
    assert reads_ahead(TableSource(pg, stream))
    frame = pd.DataFrame({"ts": pd.date_range(T0, periods=3, freq="min"), "x": [1.0, 2, 3]})
    frame.to_parquet(tmp_path / "e.parquet")
    (tmp_path / "e.jsonl").write_text(frame.to_json(orient="records", lines=True,
                                                             date_format="iso"))
    files = [StreamSpec("s", Schema.parse({"x": "float"}), files=str(tmp_path / f"e.{kind}"))
             for kind in ("parquet", "jsonl")]
    assert reads_ahead(FileSource(files[0]))
    assert not reads_ahead(FileSource(files[1]))
    assert not reads_ahead(object())  # a source that does not say

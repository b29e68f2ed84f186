"""Parquet files read for a time range by the batch stage: the filter pushed into the scan
(only the range's rows leave the scanner) and the rows the same as reading the files whole
and filtering after parsing, rows without a readable time included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor import Monitor
from monitor.batch import parquet_scan, sources
from monitor.batch.sources import FileSource

START = pd.Timestamp("2026-04-01T00:00:00Z")
DAY = pd.Timedelta("1D")
RANGES = [(START, START + DAY), (START + DAY, START + 2 * DAY),
          (START + pd.Timedelta("6h"), START + pd.Timedelta("30h")),
          (START - DAY, START), (START + 3 * DAY, START + 4 * DAY)]


def times(kind: str, rng: np.random.Generator, n: int, null_share: float) -> pa.Array:
    """``n`` times over three days from START as a column of ``kind``, with nulls and
    (for epoch milliseconds) values the parser cannot read."""
    offsets = np.sort(rng.integers(0, 3 * 86_400_000_000, n))  # microseconds
    stamps = (START.value // 1000 + offsets).astype("datetime64[us]")
    nulls = rng.random(n) < null_share
    if kind == "int64 ms":
        millis = pa.array(stamps.astype("datetime64[ms]").astype(np.int64), mask=nulls)
        millis = millis.to_numpy(zero_copy_only=False)
        values = [None if np.isnan(v) else int(v) for v in millis]
        values[3], values[7] = 2**62, -(2**60)  # beyond a nanosecond timestamp: no time
        return pa.array(values, pa.int64())
    unit, _, zone = kind.partition(" ")
    array = pa.array(stamps.astype(f"datetime64[{unit}]"), mask=nulls)
    return array.cast(pa.timestamp(unit, zone or None))


def write_days(directory: Path, kind: str, files: int = 3, rows: int = 3_000,
               null_share: float = 0.02) -> str:
    """Rows over three days in ``files`` Parquet files of many row groups; their glob."""
    rng = np.random.default_rng(7)
    for number in range(files):
        ts = times(kind, rng, rows, null_share)
        table = pa.table({
            "ts": ts,
            "latency_ms": pa.array(np.where(rng.random(rows) < 0.05, np.nan,
                                            rng.gamma(2.0, 40.0, rows))),
            "country": pa.array(rng.choice(np.array(["SE", "BR", None]), rows).tolist()),
            "n": pa.array(np.where(rng.random(rows) < 0.1, np.array(None), rng.integers(0, 9, rows)
                                   ).tolist(), pa.int64()),
            "items": pa.array([["a", "b"][: i % 3] for i in range(rows)],
                              pa.list_(pa.string())),
        })
        pq.write_table(table, directory / f"events-{number}.parquet", row_group_size=250)
    return str(directory / "events-*.parquet")


def file_source(glob: str, chunk_rows: int = 1_000) -> FileSource:
    stream = Monitor().stream("events", files=glob, time="ts",
                              schema={"latency_ms": "float", "country": "str?",
                                      "n": "int?", "items": "list[str]"})
    return FileSource(stream, chunk_rows=chunk_rows)


def read_all(source: FileSource) -> list[pd.DataFrame | None]:
    """Each range's rows (one frame per range, None for a range with none), the ranges
    read in order."""
    frames: list[pd.DataFrame | None] = []
    for since, until in RANGES:
        chunks = list(source.chunks(since, until))
        frames.append(pd.concat(chunks, ignore_index=True) if chunks else None)
    return frames


KINDS = ["us UTC", "ns Europe/Stockholm", "ms", "s UTC", "int64 ms"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_scan_keeps_the_rows_reading_the_files_whole_keeps(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    glob = write_days(tmp_path, kind)
    scanned = read_all(file_source(glob))
    earliest = file_source(glob).earliest()
    with monkeypatch.context() as patch:
        patch.setattr(sources, "scan_for", lambda paths, time: None)
        whole = read_all(file_source(glob))
        whole_earliest = file_source(glob).earliest()
    assert earliest == whole_earliest
    for ours, theirs in zip(scanned, whole, strict=True):
        if theirs is None or not len(theirs):
            assert ours is None or not len(ours)
            continue
        assert ours is not None
        pd.testing.assert_frame_equal(ours, theirs, check_dtype=False, check_exact=True)
        schema = file_source(glob).stream.schema
        for left, right in zip(schema.validate(ours), schema.validate(theirs), strict=True):
            pd.testing.assert_frame_equal(left, right, check_exact=True)
    # the first range took the rows without a readable time, and only it
    assert scanned[0] is not None and scanned[0]["ts"].isna().any()
    assert all(frame is None or not frame["ts"].isna().any() for frame in scanned[1:])


def test_only_the_ranges_rows_leave_the_scanner(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    glob = write_days(tmp_path, "us UTC")
    everything = pq.ParquetDataset(sorted(tmp_path.glob("*.parquet"))).read()
    ts = everything.column("ts").to_pandas()
    day = (START + DAY, START + 2 * DAY)
    in_day = int(((ts >= day[0]) & (ts < day[1])).sum())
    out = []
    real = parquet_scan.ParquetScan.batches

    def batches(self: parquet_scan.ParquetScan, *args: Any, **kwargs: Any
                ) -> Iterator[pa.RecordBatch]:
        for batch in real(self, *args, **kwargs):
            out.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(parquet_scan.ParquetScan, "batches", batches)
    source = file_source(glob, chunk_rows=400)
    list(source.chunks(START, START + DAY))  # the first range read takes the timeless rows
    out.clear()
    chunks = list(source.chunks(*day))
    assert sum(out) == in_day < everything.num_rows / 2
    assert max(out) <= 400 and sum(len(c) for c in chunks) == in_day


@pytest.mark.parametrize("null_share", [0.0, 0.02])
def test_the_scan_skips_row_groups_outside_the_range(tmp_path: Path, null_share: float
                                                     ) -> None:
    """Row groups whose statistics lie outside the range are not even read; but Arrow
    prunes no group that holds a null time (its rows are still filtered)."""
    write_days(tmp_path, "us UTC", files=1, null_share=null_share)
    scan = parquet_scan.scan_for(sorted(tmp_path.glob("*.parquet")), "ts")
    assert scan is not None
    [fragment] = scan.dataset.get_fragments()
    day = scan._in_range(START + DAY, START + 2 * DAY)
    kept = fragment.split_by_row_group(filter=day)
    metadata = pq.ParquetFile(fragment.path).metadata
    stats = [metadata.row_group(i).column(0).statistics for i in range(metadata.num_row_groups)]
    overlapping = [i for i, st in enumerate(stats)
                   if st.min < (START + 2 * DAY).to_pydatetime()
                   and st.max >= (START + DAY).to_pydatetime()]
    assert metadata.num_row_groups == 12 and 0 < len(overlapping) <= 5  # 250 rows: ~6 h
    assert len(kept) == (len(overlapping) if null_share == 0 else 12)


def test_files_the_scan_cannot_filter_are_read_whole(tmp_path: Path) -> None:
    text_times = pa.table({"ts": ["2026-04-01T00:00:00+02:00"], "latency_ms": [1.0]})
    pq.write_table(text_times, tmp_path / "text.parquet")
    assert parquet_scan.scan_for([tmp_path / "text.parquet"], "ts") is None
    stamps = pa.table({"ts": pa.array([START.value // 1000], pa.timestamp("us", "UTC")),
                       "latency_ms": [1.0]})
    pq.write_table(stamps, tmp_path / "stamps.parquet")
    other = stamps.append_column("extra", pa.array([1]))
    pq.write_table(other, tmp_path / "other.parquet")
    assert parquet_scan.scan_for([tmp_path / "stamps.parquet"], "ts") is not None
    assert parquet_scan.scan_for([tmp_path / "stamps.parquet", tmp_path / "other.parquet"],
                                 "ts") is None
    assert parquet_scan.scan_for([tmp_path / "stamps.parquet"], "time") is None
    [chunk] = file_source(str(tmp_path / "text.parquet")).chunks(START - DAY, START)
    assert chunk["latency_ms"].tolist() == [1.0]  # 2026-03-31T22:00Z, parsed as before

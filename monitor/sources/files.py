"""Reading event files (JSON lines, CSV, Parquet; globs) without losing track of bad rows.

A row that cannot even be parsed (malformed JSON, a CSV line with the wrong number of
fields, a JSON value that is not an object, a line that is not UTF-8 text, a JSON string
with a lone surrogate escape such as ``"\\udc00"``, which is no text either) is returned
as a reject with its location and reason; everything else goes on to schema validation.
A file with no events (0 bytes, blank lines only, a CSV header alone) reads as no events
and no rejects, whatever its format. A NaN stays apart from a null (see
:mod:`monitor.event_frames`): JSON's ``NaN`` and a CSV ``NaN`` in a number column are
NaN, an empty CSV field (or ``NULL``, ``NA``) is a null. Parquet strings are always
UTF-8; its binary columns come as bytes, which validation decodes (or rejects) for a
``str`` field.
"""

from __future__ import annotations

import codecs
import csv
import glob
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from monitor.event_frames import frame_from_arrow, frame_from_records
from monitor.surrogates import (
    LONE_SURROGATE_DETAIL,
    SURROGATE_ESCAPE_BYTES,
    holds_lone_surrogate,
)

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}
EXCERPT = 200  # characters of a bad row kept for the reject record
UTF8_CHECK_BYTES = 1 << 24  # checked at a time, so the check holds no copy of a whole file
# pyarrow's null spellings except NaN's: "NaN" in a number column is a NaN, not a null.
CSV_NULLS = [v for v in pacsv.ConvertOptions().null_values if v.lower() not in ("nan", "-nan")]
# A JSON escape of a UTF-16 surrogate: a lone one is no text (pandas' reader drops a lone
# high one silently, a lone low one fails the read), so a file with any surrogate escape
# takes the slow path, which checks (monitor.surrogates).
LONE_SURROGATE_REASON = f"malformed JSON: {LONE_SURROGATE_DETAIL}"


@dataclass
class ReadResult:
    events: pd.DataFrame
    rejects: pd.DataFrame  # columns: row (file:line), reason, excerpt


def resolve_paths(pattern: str | Path) -> list[Path]:
    """The files a path or glob names, sorted; FileNotFoundError says what was looked for."""
    text = str(pattern)
    paths = sorted(Path(p) for p in glob.glob(text)) if glob.has_magic(text) else [Path(text)]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise FileNotFoundError(f"no event file matches {text!r}")
    return paths


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"cannot tell the format of {path}: use .jsonl, .csv or .parquet (got {suffix!r})"
        )
    return FORMATS[suffix]


def read_events(pattern: str | Path) -> ReadResult:
    """Every event in the files a path or glob names, plus the rows that did not parse."""
    results = [_read_one(path) for path in resolve_paths(pattern)]
    events = pd.concat([r.events for r in results], ignore_index=True)
    rejects = pd.concat([r.rejects for r in results], ignore_index=True)
    return ReadResult(events, rejects)


def _read_one(path: Path) -> ReadResult:
    kind = file_format(path)
    if kind == "parquet":
        return ReadResult(frame_from_arrow(pq.read_table(path)), no_rejects())
    if kind == "csv":
        return _read_csv(path)
    return _read_jsonl(path)


def no_rejects() -> pd.DataFrame:
    """An empty frame of rejects (``row``, ``reason``, ``excerpt``)."""
    return pd.DataFrame({"row": pd.Series(dtype=str), "reason": pd.Series(dtype=str),
                         "excerpt": pd.Series(dtype=str)})


def _rejects(bad: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(bad, columns=["row", "reason", "excerpt"]) if bad else no_rejects()


def _read_jsonl(path: Path) -> ReadResult:
    data = path.read_bytes()
    # Fast path: a clean UTF-8 file of objects. A NaN token takes the slow path, which
    # keeps NaN apart from null (pandas makes both NaN).
    if b"NaN" not in data and not SURROGATE_ESCAPE_BYTES.search(data) and _is_utf8(data):
        try:
            # dtype=False keeps values as written (no date guessing); precise_float keeps
            # every float's bits, which the stages' bit-identical values depend on.
            events = pd.read_json(path, lines=True, dtype=False, precise_float=True)
            return ReadResult(events, no_rejects())
        except ValueError:
            pass
    records, bad = [], []
    for number, raw in enumerate(data.splitlines(), start=1):
        where = f"{path.name}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append((where, "not UTF-8 text", _excerpt(raw)))
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append((where, f"malformed JSON: {err.msg}", line[:EXCERPT]))
            continue
        if not isinstance(record, dict):
            bad.append((where, "not a JSON object", line[:EXCERPT]))
            continue
        if SURROGATE_ESCAPE_BYTES.search(raw) and holds_lone_surrogate(record):
            bad.append((where, LONE_SURROGATE_REASON, line[:EXCERPT]))
            continue
        records.append(record)
    return ReadResult(frame_from_records(records), _rejects(bad))


def _read_csv(path: Path) -> ReadResult:
    data = path.read_bytes()
    if not data or data.isspace():  # pyarrow: "Empty CSV file"; a JSON lines file: no events
        return ReadResult(pd.DataFrame(), no_rejects())
    bad: list[tuple[str, str, str]] = []
    undecodable: dict[str, tuple[str, str]] = {}  # marker line -> (reason, excerpt)
    if not _is_utf8(data):
        data, undecodable = _mark_undecodable_lines(path, data)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        where = f"{path.name}:{row.number}" if row.number is not None else path.name
        text = row.text or ""
        if text in undecodable:
            bad.append((where, *undecodable[text]))
        else:
            bad.append((where, f"malformed CSV row: expected {row.expected_columns} fields, "
                               f"got {row.actual_columns}", text[:EXCERPT]))
        return "skip"

    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True, null_values=CSV_NULLS),
    )
    return ReadResult(frame_from_arrow(table), _rejects(bad))


def _mark_undecodable_lines(path: Path, data: bytes) -> tuple[bytes, dict[str, tuple[str, str]]]:
    """``data`` with each line that is not UTF-8 replaced by a marker line that has one
    field too many, so the CSV reader hands it to the invalid-row handler with its row
    number; and what to report for each marker.

    (pyarrow decodes an invalid row's text before its handler sees it, and a bad byte
    there fails inside the reader; a bad byte in a valid row makes its column binary.)
    """
    lines = data.splitlines(keepends=True)
    try:
        header = lines[0].decode("utf-8") if lines else ""
    except UnicodeDecodeError as err:
        raise ValueError(f"the header line of {path} is not UTF-8 text (byte {err.start}); "
                         "save the file as UTF-8") from None
    columns = len(next(csv.reader([header]), [""]))
    markers: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(lines[1:], start=2):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            marker = f"\x1fnot UTF-8: line {number}\x1f" + "," * columns
            markers[marker] = ("not UTF-8 text", _excerpt(line))
            ending = line[len(line.rstrip(b"\r\n")):]
            lines[number - 1] = marker.encode() + (ending or b"\n")
    return b"".join(lines), markers


def _is_utf8(data: bytes) -> bool:
    if data.isascii():  # most event files, checked at memory speed
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(view), UTF8_CHECK_BYTES):
            decoder.decode(view[start:start + UTF8_CHECK_BYTES])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _excerpt(raw: bytes) -> str:
    """The start of a line that is not UTF-8, its bad bytes shown as ``\\xff``."""
    return raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")[:EXCERPT]

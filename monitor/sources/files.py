"""Reading event files (JSON lines, CSV, Parquet; globs) without losing track of bad rows.

A row that cannot even be parsed (malformed JSON, a CSV line with the wrong number of
fields, a JSON value that is not an object) is returned as a reject with its location and
reason; everything else goes on to schema validation.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}
EXCERPT = 200  # characters of a bad row kept for the reject record


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
        return ReadResult(pd.read_parquet(path), _no_rejects())
    if kind == "csv":
        return _read_csv(path)
    return _read_jsonl(path)


def _no_rejects() -> pd.DataFrame:
    return pd.DataFrame({"row": pd.Series(dtype=str), "reason": pd.Series(dtype=str),
                         "excerpt": pd.Series(dtype=str)})


def _read_jsonl(path: Path) -> ReadResult:
    try:  # fast path: a clean file of objects
        # dtype=False keeps values as written (no date guessing); precise_float keeps
        # every float's bits, which the stages' bit-identical values depend on.
        events = pd.read_json(path, lines=True, dtype=False, precise_float=True)
        return ReadResult(events, _no_rejects())
    except ValueError:
        pass
    records, bad = [], []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                bad.append((f"{path.name}:{number}", f"malformed JSON: {err.msg}", line[:EXCERPT]))
                continue
            if not isinstance(record, dict):
                bad.append((f"{path.name}:{number}", "not a JSON object", line[:EXCERPT]))
                continue
            records.append(record)
    rejects = pd.DataFrame(bad, columns=["row", "reason", "excerpt"]) if bad else _no_rejects()
    return ReadResult(pd.DataFrame.from_records(records), rejects)


def _read_csv(path: Path) -> ReadResult:
    bad: list[tuple[str, str, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        where = f"{path.name}:{row.number}" if row.number is not None else path.name
        bad.append((where, f"malformed CSV row: expected {row.expected_columns} fields, "
                           f"got {row.actual_columns}", (row.text or "")[:EXCERPT]))
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
    )
    rejects = pd.DataFrame(bad, columns=["row", "reason", "excerpt"]) if bad else _no_rejects()
    return ReadResult(table.to_pandas(), rejects)

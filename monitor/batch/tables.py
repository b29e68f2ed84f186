"""An events table shaped like a stream's schema, and loading validated events into it.

For trying the batch stage on files (the demo loads the example history this way), for
tests and for benchmarks; production tables are the upstream team's.

Loading leaves out the rows that fail validation and the rows the database cannot hold,
and says why for each: on Postgres, a ``str`` value or a ``list[str]`` item with a NUL
character (its text type holds any other character of a UTF-8 database; a lone surrogate
never reaches here, the file readers reject it). One such row would otherwise fail the
whole load.

On Postgres a ``list[str]`` field is an array of text. Tables made by versions before it
was (JSON columns) are read as before, and loading into one writes JSON into it; to move
one to arrays (read in C, where JSON is parsed row by row in Python), load its events
into a new table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from monitor.spec import StreamSpec
from monitor.string_lists import LIST_OF_STR

_SQL_TYPES: dict[str, Any] = {
    "float": sa.Float(precision=53),  # double precision: every float64 bit survives
    "int": sa.BigInteger(),
    "bool": sa.Boolean(),
    "str": sa.Text(),
    # An array of text on Postgres, which the columnar read decodes into an Arrow list
    # column in C (a JSON column is parsed row by row in Python, which cost more than
    # reading all the other columns); JSON on SQLite, which has no arrays (read back as
    # JSON text, which validation takes). Tables made as JSON on Postgres by earlier
    # versions are read and loaded as they are (see load_and_report).
    "list[str]": sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql"),
}
_INSERT_ROWS = 20_000


def events_table(stream: StreamSpec, name: str | None = None, json_lists: Iterable[str] = ()
                 ) -> sa.Table:
    """A table for the stream's events: typed columns, event time as timestamptz, indexed.

    ``json_lists`` names ``list[str]`` columns to write as JSON whatever the database (as
    an existing table made by an earlier version holds them)."""
    table_name = name or stream.table
    if not table_name:
        raise ValueError(f"stream {stream.name!r} declares no table=; pass a table name")
    schema = stream.schema
    as_json = set(json_lists)
    columns = [sa.Column(schema.time, sa.DateTime(timezone=True), nullable=False, index=True)]
    columns += [sa.Column(f.name, sa.JSON() if f.name in as_json else _SQL_TYPES[f.type],
                          nullable=f.nullable)
                for f in schema.fields]
    return sa.Table(table_name, sa.MetaData(), *columns)


def _json_list_columns(engine: sa.Engine, stream: StreamSpec, table_name: str) -> list[str]:
    """The ``list[str]`` columns an existing Postgres table holds as JSON (an earlier
    version made them so), which a load must write as JSON, not as arrays."""
    if engine.dialect.name != "postgresql":
        return []
    declared = {f.name for f in stream.schema.fields if f.type == LIST_OF_STR}
    return [column["name"] for column in sa.inspect(engine).get_columns(table_name)
            if column["name"] in declared and isinstance(column["type"], sa.JSON)]


@dataclass(frozen=True)
class LoadReport:
    loaded: int  # rows inserted
    rejects: pd.DataFrame  # the events left out: row (their index in the input), reason


def load_events(engine: sa.Engine, stream: StreamSpec, events: pd.DataFrame,
                name: str | None = None) -> int:
    """Validate ``events`` against the stream and append the clean ones to its table
    (created if missing); returns how many rows were inserted."""
    return load_and_report(engine, stream, events, name).loaded


def load_and_report(engine: sa.Engine, stream: StreamSpec, events: pd.DataFrame,
                    name: str | None = None) -> LoadReport:
    """:func:`load_events`, and which events were left out and why (see the module)."""
    table = events_table(stream, name)
    table.create(engine, checkfirst=True)
    json_lists = _json_list_columns(engine, stream, table.name)
    if json_lists:
        table = events_table(stream, name, json_lists)
    clean, rejects = stream.schema.validate(events)
    unstorable = _unstorable(clean, stream, engine.dialect.name, json_lists)  # by position
    if len(unstorable):
        kept = events.index[~events.index.isin(rejects["row"])]  # clean's rows, in order
        clean = clean.drop(index=unstorable["row"].tolist())
        unstorable["row"] = kept[unstorable["row"].to_numpy()]
        rejects = pd.concat([rejects, unstorable], ignore_index=True)
    columns = [c.name for c in table.columns]
    records = rows_for_insert(clean[columns])
    with engine.begin() as connection:
        for start in range(0, len(records), _INSERT_ROWS):
            connection.execute(table.insert(), records[start : start + _INSERT_ROWS])
    return LoadReport(len(records), rejects)


def _unstorable(clean: pd.DataFrame, stream: StreamSpec, dialect: str,
                json_lists: Iterable[str] = ()) -> pd.DataFrame:
    """The rows of ``clean`` the database cannot hold (``row``: their position, ``reason``):
    on Postgres, those with a NUL in a ``str`` field or in an item of a ``list[str]`` field
    held as an array (SQLite's text holds it, and Postgres' json its ``\\u0000``)."""
    reasons = pd.Series(None, index=clean.index, dtype=object)
    as_json = set(json_lists)
    if dialect == "postgresql":
        for field in stream.schema.fields:
            if field.type == "str":
                nul = clean[field.name].str.contains("\x00", regex=False, na=False).to_numpy()
                what = "a NUL character"
            elif field.type == LIST_OF_STR and field.name not in as_json:
                nul = np.array([items is not None and "\x00" in "".join(items)
                                for items in clean[field.name]], dtype=bool)
                what = "an item with a NUL character"
            else:
                continue
            reasons[nul & reasons.isna().to_numpy()] = (
                f"field {field.name!r} holds {what}, which Postgres text cannot hold")
    found = reasons.dropna()
    return pd.DataFrame({"row": found.index, "reason": found.to_numpy()})


def rows_for_insert(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Typed frame rows as dicts the database driver takes (None for nulls)."""
    out = frame.astype(object).where(frame.notna(), None)
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            out[column] = [t.to_pydatetime() for t in frame[column]]
        elif pd.api.types.is_float_dtype(frame[column]):
            values = frame[column].to_numpy()
            # An object Series: assigned as a list, pandas 3 infers float64 again and
            # turns every None back into NaN, which Postgres then stores as NaN, not NULL.
            out[column] = pd.Series([None if np.isnan(v) else float(v) for v in values],
                                    index=out.index, dtype=object)
    return [{str(k): v for k, v in row.items()} for row in out.to_dict("records")]

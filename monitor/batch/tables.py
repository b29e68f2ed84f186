"""An events table shaped like a stream's schema, and loading validated events into it.

For trying the batch stage on files (the demo loads the example history this way), for
tests and for benchmarks; production tables are the upstream team's.

Loading leaves out the rows that fail validation and the rows the database cannot hold,
and says why for each: on Postgres, a ``str`` value with a NUL character (its text type
holds any other character of a UTF-8 database; a lone surrogate never reaches here, the
file readers reject it). One such row would otherwise fail the whole load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitor.spec import StreamSpec

_SQL_TYPES: dict[str, Any] = {
    "float": sa.Float(precision=53),  # double precision: every float64 bit survives
    "int": sa.BigInteger(),
    "bool": sa.Boolean(),
    "str": sa.Text(),
    # JSON on both: SQLite has no arrays, and a JSON array read back is a list (Postgres'
    # driver parses it) or JSON text (SQLite through a query), which validation takes.
    "list[str]": sa.JSON(),
}
_INSERT_ROWS = 20_000


def events_table(stream: StreamSpec, name: str | None = None) -> sa.Table:
    """A table for the stream's events: typed columns, event time as timestamptz, indexed."""
    table_name = name or stream.table
    if not table_name:
        raise ValueError(f"stream {stream.name!r} declares no table=; pass a table name")
    schema = stream.schema
    columns = [sa.Column(schema.time, sa.DateTime(timezone=True), nullable=False, index=True)]
    columns += [sa.Column(f.name, _SQL_TYPES[f.type], nullable=f.nullable)
                for f in schema.fields]
    return sa.Table(table_name, sa.MetaData(), *columns)


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
    clean, rejects = stream.schema.validate(events)
    unstorable = _unstorable(clean, stream, engine.dialect.name)  # by position in clean
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


def _unstorable(clean: pd.DataFrame, stream: StreamSpec, dialect: str) -> pd.DataFrame:
    """The rows of ``clean`` the database cannot hold (``row``: their position, ``reason``):
    on Postgres, those with a NUL in a ``str`` field (SQLite's text holds it)."""
    reasons = pd.Series(None, index=clean.index, dtype=object)
    if dialect == "postgresql":
        for field in stream.schema.fields:
            if field.type != "str":
                continue
            nul = clean[field.name].str.contains("\x00", regex=False, na=False).to_numpy()
            reasons[nul & reasons.isna().to_numpy()] = (
                f"field {field.name!r} holds a NUL character, which Postgres text cannot hold")
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

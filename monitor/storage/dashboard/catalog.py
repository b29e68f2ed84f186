"""The registered metrics as the dashboard lists them: definitions and stage history."""

from __future__ import annotations

from sqlalchemy import literal, select

from monitor.storage import definitions
from monitor.storage.dashboard.read_only import VALUES, ReadOnly
from monitor.storage.records import MetricDefinition, StageChange


class CatalogQueries:
    """What is registered, and whether anything is stored yet."""

    def __init__(self, read: ReadOnly) -> None:
        self._read = read

    def has_data(self) -> bool:
        """Whether anything is stored yet: a registered metric or a value."""
        with self._read.session() as conn:
            for table in (definitions.DEFINITIONS, VALUES):
                if conn.execute(select(literal(1)).select_from(table).limit(1)).first():
                    return True
        return False

    def definitions(self) -> list[MetricDefinition]:
        with self._read.session() as conn:
            return definitions.list_definitions(conn)

    def definition(self, name: str) -> MetricDefinition | None:
        with self._read.session() as conn:
            return definitions.current_definition(conn, name)

    def stage_history(self, metric: str) -> list[StageChange]:
        with self._read.session() as conn:
            return definitions.stage_history(conn, metric)

"""The catalog as a stream processor follows it: its plan (:mod:`streaming.plan`) read from
the stage history of the results database.

Reading is cheap when nothing changed (the count and the highest id of the stage changes:
one indexed query), so a processor can afford it every few seconds; the histories and the
versions' definitions are read only when it changed.

A version is computed with the code this worker loaded: the app's definition bound to the
reference profile the version pinned. A reference refit makes a new version that the
same code computes (the common case, live); a version whose definition is not the app's
(its code or parameters changed) needs the worker restarted with that code, which is
what the plan's ``problem`` says.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import func, select

from monitor.errors import MonitorError
from monitor.lifecycle import bind_stored_reference, describe_change
from monitor.spec import MetricSpec
from monitor.stage_switch import StreamingSpan, streaming_spans
from monitor.storage import definitions
from monitor.storage.database import Database
from monitor.storage.models import StageChangeRow, table_of
from monitor.storage.store import SqlStore
from streaming.plan import Interval, PlannedVersion

CHANGES = table_of(StageChangeRow)


class CatalogPlan:
    """The plan of a stream's ``metrics`` (the app's definitions, reference unbound) from
    the catalog in ``database``; a :class:`streaming.plan.PlanSource`."""

    def __init__(self, database: Database, metrics: Sequence[MetricSpec]) -> None:
        self.database = database
        self.metrics = {metric.name: metric for metric in metrics}
        self._seen: tuple[int, int] | None = None  # the history's (count, highest id)
        self._bound: dict[tuple[str, int], PlannedVersion] = {}  # by (name, version)

    def read(self, force: bool = False) -> list[PlannedVersion] | None:
        with self.database.connect() as conn:
            row = conn.execute(select(func.count(), func.max(CHANGES.c.id))).one()
            seen = (int(row[0]), int(row[1] or 0))
            if seen == self._seen and not force:
                return None
            spans = [span for name in sorted(self.metrics)
                     for span in streaming_spans(definitions.stage_history(conn, name))]
        planned = [self._planned(name, version, intervals)
                   for (name, version), intervals in _by_version(spans).items()]
        self._seen = seen  # only once the whole plan was read
        return planned

    def _planned(self, name: str, version: int, spans: tuple[Interval, ...]
                 ) -> PlannedVersion:
        known = self._bound.get((name, version))
        if known is None:
            known = self._bound[(name, version)] = self._bind(name, version)
        return PlannedVersion(name, version, spans, known.metric, known.lateness_ns,
                              known.problem)

    def _bind(self, name: str, version: int) -> PlannedVersion:
        """The app's definition of ``name`` as version ``version`` computes it, or why this
        worker cannot compute that version."""
        app_metric = self.metrics[name]
        restart = f"restart the worker with the code of version {version}"
        with self.database.connect() as conn:
            definition = definitions.get_definition(conn, name, version)
        if definition is None:
            return PlannedVersion(name, version, (), None, app_metric.lateness_ns,
                                  f"metric {name!r} version {version} is not registered")
        try:
            bound = bind_stored_reference(app_metric, SqlStore(self.database), definition)
        except MonitorError as err:
            return PlannedVersion(name, version, (), None, app_metric.lateness_ns,
                                  f"metric {name!r} version {version} cannot be computed "
                                  f"here ({err}): {restart}")
        if definition.spec_id not in (bound.id, bound.legacy_id):
            return PlannedVersion(
                name, version, (), None, app_metric.lateness_ns,
                f"metric {name!r} version {version} is in streaming, but this worker's code "
                f"defines it otherwise ({describe_change(definition.spec, bound)}): "
                f"{restart}")
        return PlannedVersion(name, version, (), bound, bound.lateness_ns)


def _by_version(spans: Sequence[StreamingSpan]) -> dict[tuple[str, int], tuple[Interval, ...]]:
    """Each version's spans as intervals of window starts (ns), in time order."""
    found: dict[tuple[str, int], list[Interval]] = {}
    for span in spans:
        end = None if span.end is None else pd.Timestamp(span.end).value
        found.setdefault((span.metric, span.version), []).append(
            (pd.Timestamp(span.start).value, end))
    return {ident: tuple(sorted(intervals)) for ident, intervals in found.items()}

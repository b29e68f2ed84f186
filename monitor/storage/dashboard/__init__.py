"""Read-only, bounded queries for the dashboard, one subject a module.

Every query has a limit, a time range or an aggregation in SQL, so a page costs about
the same with a week of history or a year: series with more windows than a chart can
show are bucketed in the database (mean, min and max per bucket), the overview reads the
last windows of each metric through the ``(metric, stage, window_start)`` index, and dead
letters are counted with ``GROUP BY``.

- :mod:`~monitor.storage.dashboard.queries` — :class:`DashboardQueries`, every subject over
  one database whose sessions are opened read-only (:mod:`~.read_only`);
- :mod:`~.catalog` — the registered metrics and their stage history;
- :mod:`~.overview` — every metric's row on the overview, with its sparkline;
- :mod:`~.values` — a metric's stored values: series (bucketed), counts, latest window;
- :mod:`~.drift` — the stored states and reference profiles a drift page redraws;
- :mod:`~.alerts` — alert states, transitions, silences and deliveries;
- :mod:`~.dead_letters` — rejected input, stored and counted;
- :mod:`~.records` — the plain records they return (no SQLAlchemy).

This ``__init__`` imports nothing, so the records can be imported without SQLAlchemy.
"""

"""What every page shares: settings read at the entry point, the cached queries, the
empty-database state, the time-range picker and the secret scrubber.

Settings come from the environment once per process (``monitor dashboard`` passes
``MONITOR_DATABASE_URL`` down): the database URL, and the alert channels' secrets only so
that any text shown can be scrubbed of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import streamlit as st
from sqlalchemy.exc import DBAPIError

from monitor.alerts.settings import SLACK_ENV, SMTP_ENV, AlertSettings
from monitor.storage.dashboard.queries import DashboardQueries
from monitor.storage.dashboard.records import TimeRange, default_range
from monitor.storage.database import DatabaseUnavailableError
from monitor.storage.database_url import (
    database_url_from_env,
    mask_text,
    mask_url,
    url_secrets,
)
from monitor.storage.records import MetricDefinition

EMPTY_MESSAGE = ("No data yet — run `monitor demo` (or `bash scripts/demo.sh`) to fill the "
                 "database with the example app's week, or point `MONITOR_DATABASE_URL` at "
                 "a results database.")
MARKDOWN_SPECIALS = frozenset("\\`*_{}[]()#+-.!|<>~$:")
RANGES: Mapping[str, float | None] = {"last 24 hours": 1, "last 7 days": 7,
                                      "last 30 days": 30, "last 90 days": 90}
STATUS_COLORS = {"firing": "#d62728", "pending": "#ff7f0e", "ok": "#2ca02c",
                 "no data": "#9aa5b1"}
STATUS_BADGES = {"firing": ":red[● firing]", "pending": ":orange[● pending]",
                 "ok": ":green[● ok]", "no data": ":gray[● no data]"}  # Markdown


@dataclass(frozen=True)
class Settings:
    database_url: str
    secrets: tuple[str, ...] = field(repr=False, default=())

    @property
    def display_url(self) -> str:
        return mask_url(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = database_url_from_env(env)
        secrets = list(url_secrets(url))
        try:
            secrets += AlertSettings.from_env(env).secrets()
        except ValueError:  # a malformed channel setting: scrub the raw values then
            secrets += [env[name] for name in (SLACK_ENV, SMTP_ENV) if env.get(name)]
        return cls(url, tuple(s for s in secrets if s))

    def scrub(self, text: object) -> str:
        """``text`` with the known secrets and anything that looks like one masked."""
        return mask_text(str(text), self.secrets)


def settings() -> Settings:
    """This session's settings (read from the environment once per session)."""
    found = st.session_state.get("_monitor_settings")
    if not isinstance(found, Settings):
        found = st.session_state["_monitor_settings"] = Settings.from_env()
    return found


@st.cache_resource(show_spinner=False)
def _queries(url: str) -> DashboardQueries:
    return DashboardQueries.open(url)


def queries() -> DashboardQueries:
    return _queries(settings().database_url)


def require_data() -> DashboardQueries:
    """The queries, or stop the page with why not: the database is unreachable or empty."""
    current = settings()
    try:
        found = queries()
        if not found.catalog.has_data():
            st.info(EMPTY_MESSAGE, icon=":material/inbox:")
            st.caption(f"Database: {current.display_url}")
            st.stop()
    except DatabaseUnavailableError as err:
        st.error(current.scrub(err))
        st.stop()
    except ValueError as err:  # a malformed MONITOR_DATABASE_URL (already masked)
        st.error(current.scrub(err))
        st.stop()
    except DBAPIError as err:  # reachable, but not a migrated results database
        problem = " ".join(str(err.orig).split()) if err.orig is not None else str(err)
        st.error(current.scrub(f"Cannot read the results database {current.display_url}: "
                               f"{problem}. Run `monitor db upgrade` to create its tables."))
        st.stop()
    return found


def query_param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value or None


def pick_range(latest: datetime | None, key: str, default: str = "last 7 days") -> TimeRange:
    """A range picker anchored at the newest stored window (history may be old)."""
    labels = list(RANGES)
    choice = st.radio("Time range", labels, index=labels.index(default), horizontal=True,
                      key=key)
    return default_range(latest, RANGES[choice] or 7)


@dataclass(frozen=True)
class StoredRange:
    """What a metric version has stored in the range the reader picked."""

    latest: datetime  # start of its newest stored window, which anchors the ranges
    span: TimeRange
    segments: list[str]  # overall first
    fields: list[str]


def pick_stored_range(queries: DashboardQueries, name: str, version: int, key: str
                      ) -> StoredRange | None:
    """The range picker over one metric version's values, with the segments and fields
    found in the range; None, after saying so, while the version has no values yet."""
    latest = queries.values.latest_window(name, version)
    if latest is None:
        st.info(f"No values are stored for version {version} of {name} yet.")
        return None
    span = pick_range(latest, key=key)
    segments, fields = queries.values.segments_and_fields(name, version, span)
    return StoredRange(latest, span, segments, fields)


def pick_one(label: str, options: Sequence[str], *, param: str | None = None,
             key: str | None = None) -> str:
    """A select box that starts on the option named in the URL (``?param=``) if any."""
    wanted = query_param(param) if param else None
    index = options.index(wanted) if wanted in options else 0
    return str(st.selectbox(label, options, index=index, key=key))


def pick_metric_of_kind(queries: DashboardQueries, kinds: frozenset[str], label: str,
                        none_found: str, key: str) -> MetricDefinition | None:
    """A select box over the registered metrics whose aggregate is one of ``kinds``
    (starting on ``?metric=``), or None after saying ``none_found``."""
    found = [d for d in queries.catalog.definitions() if aggregate_kind(d) in kinds]
    if not found:
        st.info(none_found)
        return None
    name = pick_one(label, [d.name for d in found], param="metric", key=key)
    return next(d for d in found if d.name == name)


def aggregate_kind(definition: MetricDefinition) -> str | None:
    """The kind of a registered metric's aggregate (quantiles, psi, drift, rate...)."""
    aggregate = definition.spec.get("aggregate")
    kind = aggregate.get("kind") if isinstance(aggregate, Mapping) else None
    return kind if isinstance(kind, str) else None


def md(text: object) -> str:
    r"""Text shown literally inside Markdown: no formatting, links or HTML from data.

    >>> print(md("a_b [x](javascript:y)"))
    a\_b \[x\]\(javascript\:y\)
    """
    return "".join("\\" + c if c in MARKDOWN_SPECIALS else c for c in str(text))


def fmt(value: float) -> str:
    return "—" if value != value else f"{value:.4g}"  # NaN is not equal to itself

"""The pages, their URL paths, and the redirects that keep old links working.

Alert messages link to ``MONITOR_DASHBOARD_URL/?page=alerts&metric=M&segment=S&stage=T``
(:func:`monitor.alerts.render.dashboard_link`); ``/?metric=M`` is the short form of a
metric page. Both land on the root page and are sent on with their parameters.

>>> redirect_for({"page": "alerts", "metric": "ctr", "segment": "*"}, "")
('alerts', {'metric': 'ctr', 'segment': '*'})
>>> redirect_for({"metric": "latency"}, "")
('metric', {'metric': 'latency'})
>>> redirect_for({"metric": "latency"}, "metric") is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    script: str  # relative to dashboard/app.py
    title: str
    url_path: str
    icon: str


PAGES = (
    PageSpec("screens/overview.py", "Overview", "overview", ":material/dashboard:"),
    PageSpec("screens/metric.py", "Metric", "metric", ":material/show_chart:"),
    PageSpec("screens/drift.py", "Drift", "drift", ":material/waves:"),
    PageSpec("screens/tails.py", "Tails", "tails", ":material/stacked_line_chart:"),
    PageSpec("screens/performance.py", "Performance", "performance", ":material/insights:"),
    PageSpec("screens/assertions.py", "Assertions", "assertions", ":material/rule:"),
    PageSpec("screens/alerts.py", "Alerts", "alerts", ":material/notifications:"),
    PageSpec("screens/dead_letters.py", "Dead letters", "dead-letters", ":material/mail:"),
)
DEFAULT_PAGE = "overview"
ALIASES = {"dead_letters": "dead-letters", "deadletters": "dead-letters"}


def redirect_for(params: Mapping[str, str], current: str) -> tuple[str, dict[str, str]] | None:
    """Where a request to the root page with ``params`` belongs, if elsewhere: the
    page's URL path and the parameters to carry over."""
    if current not in ("", DEFAULT_PAGE):
        return None
    known = {p.url_path for p in PAGES}
    rest = {k: v for k, v in params.items() if k != "page"}
    page = params.get("page")
    if page is not None:
        page = ALIASES.get(page, page)
        return (page, rest) if page in known and page != DEFAULT_PAGE else None
    if "metric" in params:
        return "metric", rest
    return None

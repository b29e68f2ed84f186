"""The dashboard's entry point: ``monitor dashboard``, or ``streamlit run dashboard/app.py``.

The database is ``$MONITOR_DATABASE_URL`` (read once per session, see
:mod:`dashboard.context`); nothing here writes to it.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import dashboard  # noqa: F401  (installed, or run from the repository root)
except ImportError:  # `streamlit run dashboard/app.py` from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st

from dashboard.context import settings
from dashboard.navigation import DEFAULT_PAGE, PAGES, redirect_for

st.set_page_config(page_title="domain-monitor", page_icon="📈", layout="wide")

pages = {spec.url_path: st.Page(spec.script, title=spec.title, icon=spec.icon,
                                url_path=spec.url_path, default=spec.url_path == DEFAULT_PAGE)
         for spec in PAGES}
current = st.navigation(list(pages.values()))
target = redirect_for(st.query_params.to_dict(), current.url_path)
if target is not None:
    page, params = target
    st.switch_page(pages[page], query_params=params)
st.sidebar.caption(f"Database: {settings().display_url}")
current.run()

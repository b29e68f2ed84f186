"""I/O lives at the edges: the metric library and the pure core import no I/O clients."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ["kafka", "faust", "aiokafka", "sqlalchemy", "alembic", "psycopg", "streamlit",
             "apscheduler", "http.client", "urllib.request", "smtplib", "requests", "aiohttp",
             "sqlite3"]
# The parts of monitor/ that stages and adapters assemble; they must stay pure.
PURE_MONITOR = ["monitor.spec", "monitor.registry", "monitor.schema", "monitor.windows",
                "monitor.engine", "monitor.values", "monitor.research", "monitor.references",
                "monitor.alerts.rules", "monitor.alerts.lifecycle", "monitor.alerts.backtest",
                "monitor.alerts.records", "monitor.alerts.walk", "monitor.alerts.silences",
                "monitor.alerts.routing", "monitor.alerts.policy", "monitor.alerts.grouping",
                "monitor.alerts.render", "monitor.alerts.settings", "monitor.alerts.ports",
                "monitor.storage", "monitor.storage.ports", "monitor.storage.records"]


def test_pure_modules_import_no_io_clients() -> None:
    library = [m.name for m in pkgutil.walk_packages([str(ROOT / "metrics")], prefix="metrics.")]
    assert "metrics.aggregates" in library
    script = (
        "import importlib, json, sys\n"
        f"for name in {json.dumps(library + PURE_MONITOR)}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {json.dumps(FORBIDDEN)} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == []

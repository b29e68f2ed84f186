"""Layers: the metric library and the pure core import no I/O clients, the metric library
imports nothing else of ours, and only the entry point imports the command line.

The first test imports the pure modules and looks at what got loaded; the others read the
import statements of every source file (those inside functions too, where the lazy imports
are), so a layer is held even by code no test happens to import.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ["kafka", "faust", "aiokafka", "sqlalchemy", "alembic", "psycopg", "streamlit",
             "apscheduler", "http.client", "urllib.request", "smtplib", "requests", "aiohttp",
             "sqlite3", "adbc_driver_manager", "adbc_driver_postgresql"]
# The parts of monitor/ that stages and adapters assemble; they must stay pure.
PURE_MONITOR = ["monitor.spec", "monitor.registry", "monitor.schema", "monitor.windows",
                "monitor.engine", "monitor.values", "monitor.research", "monitor.references",
                "monitor.research_record", "monitor.app_loading",
                "monitor.alerts.rules", "monitor.alerts.lifecycle", "monitor.alerts.backtest",
                "monitor.alerts.records", "monitor.alerts.walk", "monitor.alerts.silences",
                "monitor.alerts.routing", "monitor.alerts.policy", "monitor.alerts.grouping",
                "monitor.alerts.render", "monitor.alerts.settings", "monitor.alerts.ports",
                "monitor.storage", "monitor.storage.ports", "monitor.storage.records",
                "monitor.alerts.evaluate", "monitor.alerts.dispatcher", "monitor.alerts.explain",
                "monitor.alerts.fit", "monitor.alerts.significance", "monitor.alerts.examples",
                "monitor.assertion_examples", "monitor.assertion_export", "monitor.times",
                "monitor.performance_pairs", "monitor.stream_status", "monitor.stage_switch"]
# The stream processor talks to its ports; the SQL is in streaming.sql_store and state_store.
PURE_STREAMING = ["streaming.processor", "streaming.ports", "streaming.partition",
                  "streaming.plan", "streaming.alert_hook"]


def test_pure_modules_import_no_io_clients() -> None:
    library = [m.name for m in pkgutil.walk_packages([str(ROOT / "metrics")], prefix="metrics.")]
    assert "metrics.aggregates" in library
    script = (
        "import importlib, json, sys\n"
        f"for name in {json.dumps(library + PURE_MONITOR + PURE_STREAMING)}: "
        "importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {json.dumps(FORBIDDEN)} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == []


# -- the import statements of the tree ----------------------------------------------------

SOURCES = ("monitor", "metrics", "streaming", "dashboard")
OURS = ("monitor", "metrics", "streaming", "dashboard", "migrations", "examples", "tests",
        "bench")
CLI = "monitor.cli"
SQL_CLIENTS = ("sqlalchemy", "alembic", "psycopg", "sqlite3", "adbc_driver_manager",
               "adbc_driver_postgresql")
# Code that must reach no SQL client, however indirectly: a file is that module, a
# directory every module under it. Stage logic joins this list once it talks to ports.
NO_SQL = [
    "metrics/",
    "monitor/__init__.py", "monitor/spec.py", "monitor/registry.py", "monitor/schema.py",
    "monitor/windows.py", "monitor/engine.py", "monitor/partials.py", "monitor/values.py",
    "monitor/research.py", "monitor/research_record.py", "monitor/references.py",
    "monitor/app_loading.py", "monitor/function_code.py", "monitor/lifecycle.py",
    "monitor/segments.py", "monitor/errors.py", "monitor/stage_switch.py",
    "monitor/alerts/", "monitor/times.py",
    "monitor/batch/handover.py", "monitor/batch/slice_states.py", "monitor/batch/spark_tasks.py",
    "monitor/storage/__init__.py", "monitor/storage/ports.py", "monitor/storage/records.py",
    "streaming/processor.py", "streaming/ports.py", "streaming/partition.py",
    "streaming/alert_hook.py", "streaming/label_ports.py", "streaming/held_rows.py",
    "streaming/label_processor.py", "streaming/dead_letter_tally.py",
]


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module
    imported: str  # a module, or a name in one ("from a.b import c" gives a.b and a.b.c)
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, package: str) -> Iterator[tuple[str, int]]:
    """Every module (or name in a module) ``tree`` imports, with its line: import
    statements anywhere, relative ones resolved against ``package``, and
    ``importlib.import_module`` / ``__import__`` of a literal."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # "from .. import x" in package a.b.c is "from a import x"
                parts = package.split(".")
                parents = parts[:len(parts) - node.level + 1]
                base = ".".join([*parents, *([node.module] if node.module else [])])
            yield base, node.lineno
            yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and _called_name(node.func) in ("import_module", "__import__")):
            yield node.args[0].value.partition(":")[0], node.lineno


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def source_files() -> dict[str, Path]:
    return {module_name(path): path
            for package in SOURCES for path in sorted((ROOT / package).rglob("*.py"))}


def read_imports() -> dict[str, list[Import]]:
    """Each source module's imports."""
    imports = {}
    for name, path in source_files().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        where = path.relative_to(ROOT)
        imports[name] = [Import(name, imported, f"{where}:{line}")
                         for imported, line in imported_names(tree, package)]
    return imports


IMPORTS = read_imports()


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_import_reader_sees_relative_and_lazy_imports() -> None:
    tree = ast.parse("def f():\n    from ..cli import app\n    from . import rules\n"
                     "    importlib.import_module('monitor.cli.main:cli')\n")
    assert [name for name, _ in imported_names(tree, "monitor.batch")] == [
        "monitor.cli", "monitor.cli.app", "monitor.batch", "monitor.batch.rules",
        "monitor.cli.main"]
    assert "metrics.drift" in IMPORTS and "monitor.cli.main" in IMPORTS


def test_the_metric_library_imports_nothing_else_of_ours() -> None:
    found = [str(i) for name, imports in IMPORTS.items() if within(name, "metrics")
             for i in imports if any(within(i.imported, p) for p in OURS if p != "metrics")]
    assert not found, "\n".join(found)


def entry_points() -> set[str]:
    """The modules the ``monitor`` command starts in: [project.scripts] and __main__s."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    return ({target.partition(":")[0] for target in scripts.values()}
            | {name for name in IMPORTS if name.rpartition(".")[2] == "__main__"})


def test_only_the_entry_point_imports_the_command_line() -> None:
    """The command line only wires: what another layer needs from it belongs elsewhere."""
    assert entry_points() == {"monitor.cli.main"}  # a new entry point: check it is one
    found = [str(i) for name, imports in IMPORTS.items()
             if not within(name, CLI) and name not in entry_points()
             for i in imports if within(i.imported, CLI)]
    assert not found, "\n".join(found)


def test_pure_code_reaches_no_sql_client() -> None:
    """Not even through another module of ours (a package's __init__ included), nor in a
    lazy import inside a function: each hop of the path to a SQL client is shown."""
    files = source_files()
    assert [entry for entry in NO_SQL if not any(_listed(p, entry) for p in files.values())
            ] == []  # every entry names code that is there
    modules = {name for name, path in files.items()
               if any(_listed(path, entry) for entry in NO_SQL)}
    found = [path for name in sorted(modules) if (path := _path_to_sql(name))]
    assert not found, "\n".join(found)


def _listed(path: Path, entry: str) -> bool:
    relative = path.relative_to(ROOT).as_posix()
    return relative.startswith(entry) if entry.endswith("/") else relative == entry


def _path_to_sql(start: str) -> str | None:
    """The first import path (breadth first) from ``start`` to a SQL client, as text."""
    came_by: dict[str, Import | None] = {start: None}
    queue = [start]
    while queue:
        name = queue.pop(0)
        for found in IMPORTS[name]:
            if found.imported.split(".")[0] in SQL_CLIENTS:
                hops = [found]
                while (previous := came_by[hops[-1].importer]) is not None:
                    hops.append(previous)
                return " <- ".join(str(hop) for hop in hops)
            for module in _loaded_by(found.imported):
                if module not in came_by:
                    came_by[module] = found
                    queue.append(module)
    return None


def _loaded_by(imported: str) -> list[str]:
    """Our modules an import runs: the module (the longest prefix that is one) and the
    packages above it."""
    parts = imported.split(".")
    prefixes = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return [prefix for prefix in prefixes if prefix in IMPORTS]

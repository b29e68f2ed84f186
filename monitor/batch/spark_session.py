"""Starting Spark for the batch stage, with pyspark imported only when it is asked for.

pyspark is an optional extra (``pip install 'domain-monitor[spark]'``, Java 17 or later):
the package, its command line and every other stage work without it, and asking for
``--engine spark`` without it fails with what to install.

The session's settings are the ones the batch stage's parity rests on: times in UTC
(window boundaries compared in the session's time zone would move with it), and Parquet
timestamps in nanoseconds read as their raw 64-bit integers (Spark's own timestamps hold
microseconds; the task turns them back into the file's type, see
:mod:`monitor.batch.spark_tasks`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.batch.spark_jdbc import jdbc_jar
from monitor.errors import MonitorError

EXTRA = "domain-monitor[spark]"
DEFAULT_MASTER = "local[*]"
APP_NAME = "domain-monitor batch"
SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    # Tasks return a few states each: no need for Spark's UI server on every run.
    "spark.ui.showConsoleProgress": "false",
}


class SparkUnavailableError(MonitorError):
    """pyspark (or Java) is missing; the message says what to install."""


def import_pyspark() -> Any:
    """The ``pyspark`` module, or a SparkUnavailableError that says how to install it."""
    try:
        import pyspark
        import pyspark.sql
    except ImportError as err:
        raise SparkUnavailableError(
            f"--engine spark needs pyspark, which is not installed ({err}); install the "
            f"extra with `pip install '{EXTRA}'` (bash scripts/setup.sh does, with Java) "
            "and make sure `java` (17 or later) is on PATH"
        ) from None
    return pyspark


def with_jdbc_jar(conf: Mapping[str, str]) -> dict[str, str]:
    """``conf`` with PostgreSQL's JDBC jar added to ``spark.jars`` when it is there (see
    :mod:`monitor.batch.spark_jdbc`): Spark serves it to every executor, so a cluster's
    workers need no copy of their own."""
    jar = jdbc_jar()
    settings = dict(conf)
    if jar is not None and Path(jar).exists():
        jars = [j for j in settings.get("spark.jars", "").split(",") if j]
        settings["spark.jars"] = ",".join([*jars, jar] if jar not in jars else jars)
    return settings


def spark_session(master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None) -> Any:
    """A SparkSession on ``master`` (``local[*]``, ``local[2]``, ``spark://HOST:7077``, ...)
    with the batch stage's settings; Spark's own ``getOrCreate``, so one per process.

    Executors run this interpreter unless ``PYSPARK_PYTHON`` says otherwise (on a real
    cluster, point it at a Python with this package installed on every worker).
    """
    import_pyspark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(APP_NAME)
    for key, value in {**SETTINGS, **with_jdbc_jar(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as err:  # most often: no Java
        if "JAVA_HOME" in str(err) or "Java gateway" in str(err):
            raise SparkUnavailableError(
                f"Spark could not start ({' '.join(str(err).split())[:300]}); it needs Java "
                "17 or later: install it (Debian: `apt-get install default-jre-headless`) "
                "or set JAVA_HOME"
            ) from None
        raise


__all__ = ["DEFAULT_MASTER", "EXTRA", "SparkUnavailableError", "import_pyspark",
           "spark_session", "with_jdbc_jar"]

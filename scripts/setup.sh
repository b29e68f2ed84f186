#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its dev tools and its Spark
# extra into it, and Java and PostgreSQL's JDBC driver for Spark when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,spark]'

# A Java runtime for pyspark (`monitor batch run --engine spark` and its tests): Debian's
# default-jre-headless (OpenJDK 17 on bookworm; pyspark 4 needs 17 or later).
if ! command -v java >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi  # never wait for a password
        echo "installing default-jre-headless (Java for the Spark engine)"
        { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq default-jre-headless >/dev/null; } \
            || echo "could not install Java; the Spark engine and its tests will fail" >&2
    else
        echo "java is not installed and apt-get is not available; install Java 17 or" \
             "later for the Spark engine" >&2
    fi
fi

# PostgreSQL's JDBC driver, with which Spark's executors read a stream's Postgres table
# (`--engine spark` on a table= or query= stream): Debian's libpostgresql-jdbc-java puts
# it at /usr/share/java/postgresql.jar, where the engine looks (MONITOR_POSTGRES_JDBC_JAR).
if [ ! -e "${MONITOR_POSTGRES_JDBC_JAR:-/usr/share/java/postgresql.jar}" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi  # never wait for a password
        echo "installing libpostgresql-jdbc-java (Spark's reads of Postgres tables)"
        { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq libpostgresql-jdbc-java >/dev/null; } \
            || echo "could not install the PostgreSQL JDBC driver; Spark cannot read" \
                    "tables (its files still work)" >&2
    else
        echo "apt-get is not available; for Spark to read Postgres tables, put the" \
             "PostgreSQL JDBC jar at /usr/share/java/postgresql.jar or set" \
             "MONITOR_POSTGRES_JDBC_JAR" >&2
    fi
fi

# Headless Chromium for the dashboard's end-to-end test (Debian's `chromium` package).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi  # never wait for a password
        echo "installing chromium (the dashboard's browser test)"
        { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq chromium >/dev/null; } \
            || echo "could not install chromium; the dashboard's browser test will fail" >&2
    else
        echo "chromium is not installed and apt-get is not available; install Chromium" \
             "for the dashboard's browser test" >&2
    fi
fi

#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its dev tools and its Spark
# extra into it, and Java for Spark when there is none.
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

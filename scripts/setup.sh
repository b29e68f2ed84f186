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

# Debian packages the project needs beyond Python, installed only where missing.
apt_updated=""
# debian_install PACKAGE WHY WHAT_FAILS: install PACKAGE with apt-get (as root, or with
# sudo that never waits for a password), the package lists fetched once a run; where it
# cannot, say what will not work and go on.
debian_install() {
    local package=$1 why=$2 fails=$3 sudo=""
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "apt-get is not available: install $package yourself ($why); until then $fails" >&2
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
    echo "installing $package ($why)"
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq || true  # an install from the lists there are may still work
        apt_updated=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null \
        || echo "could not install $package; $fails" >&2
}

# A Java runtime for pyspark (`monitor batch run --engine spark` and its tests): Debian's
# default-jre-headless (OpenJDK 17 on bookworm; pyspark 4 needs 17 or later).
if ! command -v java >/dev/null 2>&1; then
    debian_install default-jre-headless "Java 17+ for the Spark engine" \
        "the Spark engine and its tests will fail"
fi

# PostgreSQL's JDBC driver, with which Spark's executors read a stream's Postgres table
# (`--engine spark` on a table= or query= stream): Debian's libpostgresql-jdbc-java puts
# it at /usr/share/java/postgresql.jar, where the engine looks (MONITOR_POSTGRES_JDBC_JAR).
if [ ! -e "${MONITOR_POSTGRES_JDBC_JAR:-/usr/share/java/postgresql.jar}" ]; then
    debian_install libpostgresql-jdbc-java "Spark's reads of Postgres tables" \
        "Spark cannot read tables (its files still work; or set MONITOR_POSTGRES_JDBC_JAR)"
fi

# Headless Chromium for the dashboard's end-to-end test (Debian's `chromium` package).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    debian_install chromium "the dashboard's browser test" \
        "the dashboard's browser test will fail"
fi

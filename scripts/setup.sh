#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its dev tools into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

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

#!/usr/bin/env bash
# The main job: set up, then `monitor demo` on the embedded defaults (a SQLite file, the
# embedded broker): the example metrics from research through batch to streaming, live
# events with an incident, alerts and the dashboard. Extra arguments go to `monitor demo`
# (e.g. --duration 60 to end by itself; without it, Ctrl-C ends it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/monitor demo "$@"

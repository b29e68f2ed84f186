#!/usr/bin/env bash
# Sets everything up, then runs the linters, the type checker and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
echo "== ruff"; .venv/bin/ruff check .
# mypy's cache outside the clone: a fresh clone checks in seconds, not a minute, on a machine
# that ran this before (an entry made at another path is reused when its file's hash matches).
export MYPY_CACHE_DIR="${MYPY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/domain-monitor/mypy}"
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$status"

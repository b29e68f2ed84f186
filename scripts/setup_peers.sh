#!/usr/bin/env bash
# Sets up the peers of bench/peers.py, each in a virtual environment of its own, from PyPI,
# with pinned versions that install and run on Python 3.11 (checked 2026-12-01). Our .venv
# runs pandas 3, on which Evidently does not import, and the peers' dependency trees
# (plotly, lightgbm, xgboost, gcsfs, s3fs ...) have no business in ours. Idempotent: a venv whose pinned
# packages are all there is left alone. Usage: scripts/setup_peers.sh [evidently|nannyml ...]
# PEERS_DIR (default .peers, relative to the repository) is where the venvs go; bench/peers.py
# reads the same variable.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
PEERS_DIR=${PEERS_DIR:-.peers}

# name -> pinned pip requirements: the peer, pyarrow to read the benchmark's Parquet files,
# and what the peer's own requirements get wrong. Both allow pandas 3: Evidently 0.7.23
# then fails at import (pandas.core.dtypes.common.infer_dtype_from_object is gone); both
# are run on pandas 2.3.3, the last 2.x. NannyML 0.13.1 imports statsmodels (nannyml.plots) without
# requiring it.
declare -A REQUIREMENTS=(
    [evidently]="evidently==0.7.23 pandas==2.3.3 pyarrow==26.0.1"
    [nannyml]="nannyml==0.13.1 pandas==2.3.3 statsmodels==0.15.0 pyarrow==26.0.1"
)

peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(evidently nannyml)

for peer in "${peers[@]}"; do
    venv="$PEERS_DIR/$peer"
    want=${REQUIREMENTS[$peer]:?unknown peer $peer (known: ${!REQUIREMENTS[*]})}
    # shellcheck disable=SC2086
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" - $want <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (r.split("==") for r in sys.argv[1:])))
PY
    then
        echo "$venv: $want already installed"
        continue
    fi
    echo "$venv: installing ${REQUIREMENTS[$peer]}"
    mkdir -p "$PEERS_DIR"
    [ -f "$PEERS_DIR/.gitignore" ] || echo '*' > "$PEERS_DIR/.gitignore"  # not in the repository
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet ${REQUIREMENTS[$peer]}
    NML_DISABLE_USAGE_LOGGING=1 DO_NOT_TRACK=1 "$venv/bin/python" -c "import $peer; print('$venv:', '$peer', $peer.__version__)"
done

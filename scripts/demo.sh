#!/usr/bin/env bash
# The main job: set up, generate the example homepage events (with an injected incident),
# compute every example metric in the research stage and backtest its alert rules.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MONITOR_APP=examples.music_home:mon
mkdir -p data out
echo "== generating a week of homepage events (seed 1)"
.venv/bin/python -m examples.music_home --out data/home.jsonl \
    --reference-out data/training.jsonl --days 7 --seed 1
echo "== registered metrics"
.venv/bin/monitor metrics list
metrics=$(.venv/bin/python -c "from examples.music_home import mon; print(' '.join(mon.metrics))")
for metric in $metrics; do
    echo "== $metric"
    .venv/bin/monitor research run "$metric" --data data/home.jsonl --out "out/$metric.csv"
    if .venv/bin/python -c "from examples.music_home import mon; exit(not mon.get('$metric').alerts)"; then
        .venv/bin/monitor research backtest "$metric" --data data/home.jsonl
    fi
done
.venv/bin/python - <<'PY'
import glob
import pandas as pd
frames = [pd.read_csv(p) for p in sorted(glob.glob("out/*.csv")) if not p.endswith("values.csv")]
pd.concat(frames).to_csv("out/values.csv", index=False)
print(f"== wrote {sum(len(f) for f in frames)} values to out/values.csv")
PY

#!/usr/bin/env bash
# The main job: set up, generate the example homepage events (with injected incidents),
# take every example metric through research (values + backtest of its alerts) into the
# batch stage (a backfill from a table), and show that both stages give the same values.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MONITOR_APP=examples.music_home:mon
export MONITOR_DATABASE_URL=${MONITOR_DATABASE_URL:-sqlite:///out/demo.sqlite}
monitor=.venv/bin/monitor
mkdir -p data out
rm -f out/demo.sqlite out/*.csv

echo "== generating a week of homepage events (seed 1)"
.venv/bin/python -m examples.music_home --out data/home.jsonl \
    --reference-out data/training.jsonl --days 7 --seed 1
echo "== results database"
$monitor db upgrade
echo "== registered metrics"
$monitor metrics list

metrics=$(.venv/bin/python -c "from examples.music_home import mon; print(' '.join(mon.metrics))")
for metric in $metrics; do
    echo "== research: $metric"
    $monitor research run "$metric" --data data/home.jsonl --out "out/research-$metric.csv"
    $monitor research backtest "$metric" --data data/home.jsonl
    $monitor promote "$metric" --to batch --by demo \
        --reason "backtest over the example week catches its incident"
done

echo "== batch: load the week into the home_events table and backfill every metric"
$monitor batch load data/home.jsonl
$monitor batch run --since 2026-03-02T00:00Z --until 2026-03-09T00:00Z
$monitor batch rollup latency --window 1d --since 2026-03-02T00:00Z --until 2026-03-09T00:00Z
echo "== alerts the batch stage fired (the same the backtests found; old windows page nobody)"
$monitor alerts list --history 12
$monitor values export --stage batch --out out/values-batch.csv
$monitor values export --stage research --out out/values-research.csv
$monitor metrics list

echo "== research vs batch"
.venv/bin/python - <<'PY'
import pandas as pd
research = pd.read_csv("out/values-research.csv").drop(columns="stage")
batch = pd.read_csv("out/values-batch.csv").drop(columns="stage")
batch = batch[batch["metric"].isin(research["metric"])]  # roll-ups have no research twin
same = research.reset_index(drop=True).equals(batch.reset_index(drop=True))
print(f"{len(research):,} research values, {len(batch):,} batch values: "
      f"{'identical' if same else 'DIFFERENT'}")
raise SystemExit(0 if same else 1)
PY
echo "== done: values in out/values-*.csv, results database $MONITOR_DATABASE_URL"

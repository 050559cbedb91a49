#!/usr/bin/env bash
# The small-budget benchmark published in README (2 CPU cores): QSM (PyTorch) against SB3 SAC, 3 seeds,
# InvertedPendulum-v4 for 10k env steps and Hopper-v4 for 20k, 256-wide nets for both, the same warm-up.
# Two chains of one job each run side by side (one core per job); logs in runs/logs, curves in runs/.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs/logs
IP=(--total-timesteps 10000 --learning-starts 1000 --hidden-dim 256)
HOP=(--total-timesteps 20000 --learning-starts 5000 --hidden-dim 256)
export WORKERS=1 LAUNCH_ARGS="--threads-per-job 1"
(
    rc=0
    ENV_IDS=InvertedPendulum-v4 SEEDS="1 2 3" benchmark/qsm.sh "${IP[@]}" || rc=1
    ENV_IDS=Hopper-v4 SEEDS="1 2" benchmark/qsm.sh "${HOP[@]}" || rc=1
    ENV_IDS=Hopper-v4 SEEDS="3" benchmark/sac.sh "${HOP[@]}" || rc=1
    exit $rc
) > runs/logs/chain_a.txt 2>&1 &
chain_a=$!
(
    rc=0
    ENV_IDS=InvertedPendulum-v4 SEEDS="1 2 3" benchmark/sac.sh "${IP[@]}" || rc=1
    ENV_IDS=Hopper-v4 SEEDS="3" benchmark/qsm.sh "${HOP[@]}" || rc=1
    ENV_IDS=Hopper-v4 SEEDS="1 2" benchmark/sac.sh "${HOP[@]}" || rc=1
    exit $rc
) > runs/logs/chain_b.txt 2>&1 &
chain_b=$!
wait $chain_a; status_a=$?
wait $chain_b; status_b=$?
echo "chain a exit $status_a, chain b exit $status_b (launcher summaries in runs/logs/chain_*.txt)"
grep -h "jobs finished" runs/logs/chain_a.txt runs/logs/chain_b.txt

#!/usr/bin/env bash
# Stable-Baselines3 SAC (the baseline) over seeds x envs. Extra arguments go to benchmark/sac_sb3.py.
#   ENV_IDS="InvertedPendulum-v4" SEEDS="1 2 3" WORKERS=2 benchmark/sac.sh --total-timesteps 10000 --learning-starts 1000
# Variables: ENV_IDS, SEEDS, WORKERS (jobs at once), DRY_RUN=1 (print the commands), BACKEND (local or slurm), PYTHON,
# LAUNCH_ARGS (more launcher flags, e.g. LAUNCH_ARGS="--slurm-partition gpu --slurm-time 600 --slurm-gpus 1"),
# RESULTS (a results CSV: each run's row and curves go there, and a run whose row is there is skipped) and RECIPE (the
# recipe name its rows take, e.g. "paper (torch)"; default: the --exp-name).
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_IDS=${ENV_IDS:-"Hopper-v4 Walker2d-v4 HalfCheetah-v4 Ant-v4 Humanoid-v4"}
SEEDS=${SEEDS:-"1 2 3 4 5"}
BACKEND=${BACKEND:-local}
PYTHON=${PYTHON:-python}  # the interpreter of the jobs and the launcher, e.g. PYTHON=.venv/bin/python
# shellcheck disable=SC2086  # ENV_IDS, SEEDS and LAUNCH_ARGS are lists
exec "$PYTHON" benchmark/launch.py --env-ids $ENV_IDS --seeds $SEEDS --backend "$BACKEND" ${WORKERS:+--workers "$WORKERS"} \
    ${DRY_RUN:+--dry-run} ${RESULTS:+--results-csv "$RESULTS"} ${RECIPE:+--recipe "$RECIPE"} \
    ${LAUNCH_ARGS:-} -- "$PYTHON" benchmark/sac_sb3.py --no-progress "$@"

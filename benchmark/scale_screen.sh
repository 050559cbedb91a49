#!/usr/bin/env bash
# The target-scale screen of issue 30: one recipe (RECIPE and the JAX script's FLAGS) or SB3 SAC (RECIPE sac) on a
# block of tasks at the 50k study's settings, seed 1 (SEEDS to change), two jobs side by side with one thread each.
# RECIPE is the runs' --exp-name and their rows' algorithm (benchmark/results/README.md's names).
#   benchmark/scale_screen.sh a  RECIPE FLAGS...   (a): Reacher-v4 and Pendulum-v1 at 20k steps
#   benchmark/scale_screen.sh b  RECIPE FLAGS...   (b): the study's four tasks at 50k steps, seeds 1 2 3
# Each finished run appends its row (with commit and CPU) to benchmark/results/scale_screen/runs.csv and its curves to
# curves/ beside it; a run whose row is already there (same task, seed and command but for --exp-name) is skipped. Run
# it from a git worktree checked out at the commit under test, with RESULTS pointing at the main checkout's CSV, so
# commits on main change nothing that runs.
set -uo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { echo "usage: benchmark/scale_screen.sh a|b RECIPE [FLAGS...]" >&2; exit 2; }
block=$1 name=$2
shift 2
PYTHON=${PYTHON:-python}
RESULTS=${RESULTS:-benchmark/results/scale_screen/runs.csv}
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"  # one thread per JAX job
case $block in
    a) ENV_IDS=(Reacher-v4 Pendulum-v1) STEPS=20000 SEEDS=${SEEDS:-1} ;;
    b) ENV_IDS=(Hopper-v4 HalfCheetah-v4 Walker2d-v4 dm_control/walker-walk-v0) STEPS=50000 SEEDS=${SEEDS:-"1 2 3"} ;;
    *) echo "scale_screen.sh: block is a or b, not $block" >&2; exit 2 ;;
esac
FLAGS=(--hidden-dim 256 --batch-size 256 --total-timesteps "$STEPS" --learning-starts 5000 --eval-frequency 5000 --eval-episodes 10)
script=qsm_continuous_action_jax.py
[[ $name == sac ]] && script=benchmark/sac_sb3.py
# shellcheck disable=SC2086
exec "$PYTHON" benchmark/launch.py --env-ids "${ENV_IDS[@]}" --seeds $SEEDS --workers 2 --threads-per-job 1 \
    --log-dir "runs/logs/scale_screen_$block" --results-csv "$RESULTS" --recipe "$name" ${DRY_RUN:+--dry-run} \
    -- "$PYTHON" "$script" --no-progress --exp-name "$name" "$@" "${FLAGS[@]}"

#!/usr/bin/env bash
# One recipe (the JAX script with the given flags) on the 50k-step study's tasks, seeds and settings (study_50k.sh), two
# jobs side by side with one thread each. The study's own runs are not rerun: their rows in RESULTS join the recipe's.
#   benchmark/study_50k_recipe.sh grad-rms --normalize-q-grad --box-prior --m-q 1 --crossq
#   DRY_RUN=1 benchmark/study_50k_recipe.sh RECIPE FLAGS...      (print the 12 commands, run nothing)
# RECIPE is the name of benchmark/results/README.md's table, the runs' --exp-name and their rows' algorithm.
# Hopper-v4 and HalfCheetah-v4 come first (the screening tasks), then Walker2d-v4 and dm_control/walker-walk-v0.
# Resumable: rerun the same command to go on; a run whose row is in RESULTS (the committed
# benchmark/results/study_50k/runs.csv) or that finished here is skipped, and a cut run resumes from its last checkpoint.
# Each finished run appends its row and curves to RESULTS. At the end: the recipe's curves in
# benchmark/results/study_50k/figures/RECIPE_curves.png (plot.py, from the runs under runs/), and LOG_DIR/report.md:
# plot.py's table and diagnostics.py's of the recipe's runs, then aggregate_csv.py over RESULTS (final returns and the
# IQM of the recipe with the study's `sac` and `grad-rms-targets` runs).
# Variables: PYTHON (the interpreter), DRY_RUN, LOG_DIR (default runs/logs/study_50k_RECIPE), RESULTS (the results CSV).
set -uo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: benchmark/study_50k_recipe.sh RECIPE [FLAGS...]" >&2; exit 2; }
recipe=$1
shift
export PYTHON=${PYTHON:-python}
LOG_DIR=${LOG_DIR:-runs/logs/study_50k_$recipe}
export RESULTS=${RESULTS:-benchmark/results/study_50k/runs.csv} RECIPE=$recipe
export LAUNCH_ARGS="--threads-per-job 1 --log-dir $LOG_DIR"
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"  # one thread per JAX job
ENV_IDS=(Hopper-v4 HalfCheetah-v4 Walker2d-v4 dm_control/walker-walk-v0)
FLAGS=(--hidden-dim 256 --batch-size 256 --total-timesteps 50000 --learning-starts 5000 --eval-frequency 5000 --eval-episodes 10)
# one launcher pool over the 12 jobs (no mix of runners here, unlike study_50k.sh): it skips, resumes and reports
ENV_IDS="${ENV_IDS[*]}" SEEDS="1 2 3" WORKERS=2 "$BASH" benchmark/qsm_jax.sh --exp-name "$recipe" "$@" "${FLAGS[@]}"
rc=$?
[[ -n ${DRY_RUN:-} ]] && exit $rc
mkdir -p "$LOG_DIR"
{
    "$PYTHON" benchmark/plot.py --runs-dir runs --log-dir "$LOG_DIR" --algos "$recipe" --env-ids "${ENV_IDS[@]}" \
        --thresholds Hopper-v4=300,500 Walker2d-v4=300,500 HalfCheetah-v4=1000,2000,3000 dm_control/walker-walk-v0=300,600 \
        --output "benchmark/results/study_50k/figures/${recipe}_curves.png" \
        --profile-output "benchmark/results/study_50k/figures/${recipe}_profiles.png" --markdown || rc=1
    echo
    "$PYTHON" benchmark/diagnostics.py --runs-dir runs --env-ids "${ENV_IDS[@]}" --algos "$recipe" --markdown || rc=1
    echo
    "$PYTHON" benchmark/aggregate_csv.py "$RESULTS" --algos sac grad-rms-targets "$recipe" || rc=1
} >"$LOG_DIR/report.md"
cat "$LOG_DIR/report.md"
exit $rc

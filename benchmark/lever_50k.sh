#!/usr/bin/env bash
# One QSM variant (the JAX script with the given flags) against the 50k-step study: its four tasks, seeds 1 2 3 and
# settings (study_50k.sh), two jobs side by side with one thread each. The study's own runs are not rerun: their rows in
# benchmark/study_50k.csv join the variant's (benchmark/aggregate_csv.py).
#   benchmark/lever_50k.sh qsm_jax_crossq --normalize-q-grad --box-prior --m-q 1 --crossq
#   DRY_RUN=1 benchmark/lever_50k.sh NAME FLAGS...      (print the 12 commands, run nothing)
# Hopper-v4 and HalfCheetah-v4 come first (the screening tasks), then Walker2d-v4 and dm_control/walker-walk-v0.
# Resumable: rerun the same command to go on; finished jobs are skipped and cut runs resume from their last checkpoint.
# At the end: benchmark/lever_NAME.csv (plot.py --csv, one row per run) and benchmark/lever_NAME.md (plot.py's table
# and diagnostics.py's of the variant's runs, then aggregate_csv.py: final returns and the IQM of the variant with the
# study's SAC and improved-recipe runs).
# Variables: PYTHON (the interpreter), DRY_RUN, LOG_DIR (default runs/logs/lever_NAME).
set -uo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: benchmark/lever_50k.sh NAME [FLAGS...]" >&2; exit 2; }
name=$1
shift
export PYTHON=${PYTHON:-python}
LOG_DIR=${LOG_DIR:-runs/logs/lever_$name}
export LAUNCH_ARGS="--threads-per-job 1 --log-dir $LOG_DIR"
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"  # one thread per JAX job
ENV_IDS=(Hopper-v4 HalfCheetah-v4 Walker2d-v4 dm_control/walker-walk-v0)
FLAGS=(--hidden-dim 256 --batch-size 256 --total-timesteps 50000 --learning-starts 5000 --eval-frequency 5000 --eval-episodes 10)
# one launcher pool over the 12 jobs (no mix of runners here, unlike study_50k.sh): it skips, resumes and reports
ENV_IDS="${ENV_IDS[*]}" SEEDS="1 2 3" WORKERS=2 "$BASH" benchmark/qsm_jax.sh --exp-name "$name" "$@" "${FLAGS[@]}"
rc=$?
[[ -n ${DRY_RUN:-} ]] && exit $rc
{
    "$PYTHON" benchmark/plot.py --runs-dir runs --log-dir "$LOG_DIR" --algos "$name" --env-ids "${ENV_IDS[@]}" \
        --thresholds Hopper-v4=300,500 Walker2d-v4=300,500 HalfCheetah-v4=1000,2000,3000 dm_control/walker-walk-v0=300,600 \
        --output "benchmark/figures/lever_${name}_curves.png" --csv "benchmark/lever_$name.csv" --markdown || rc=1
    echo
    "$PYTHON" benchmark/diagnostics.py --runs-dir runs --env-ids "${ENV_IDS[@]}" --algos "$name" --markdown || rc=1
    echo
    "$PYTHON" benchmark/aggregate_csv.py benchmark/study_50k.csv "benchmark/lever_$name.csv" \
        --algos sac_sb3 qsm_jax_improved "$name" || rc=1
} >"benchmark/lever_$name.md"
cat "benchmark/lever_$name.md"
exit $rc

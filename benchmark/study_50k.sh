#!/usr/bin/env bash
# The 50k-step study: the recipes `paper` (JAX, the script's defaults), `grad-rms-targets` (JAX, --normalize-q-grad
# --box-prior --m-q 1) and `sac` (SB3 SAC) on Hopper-v4, Walker2d-v4, HalfCheetah-v4 and dm_control/walker-walk-v0, and
# `paper (torch)` on Hopper-v4 only; seeds 1 2 3, 256x256 nets, batch 256, 5k warm-up steps, 10 evaluation episodes every
# 5k. Further recipes on the same tasks and seeds: benchmark/study_50k_recipe.sh.
# 39 jobs in one pool, two side by side with one thread each.
# Hopper-v4 comes first, all four algorithms, then each other env, so a partial study already compares on one env.
# Resumable: rerun this script to go on. The launcher skips the jobs whose row is in RESULTS (the committed
# benchmark/results/study_50k/runs.csv: all 39 are, so a fresh clone runs nothing) or whose .done record is in
# runs/logs/study_50k, and resumes the QSM runs that were cut from their last checkpoint (--checkpoint-every 10000).
# Each finished run appends its row and curves to RESULTS. At the end benchmark/plot.py draws the runs under runs/ to
# benchmark/results/study_50k/figures/study_50k_*.png and writes its table, the IQM and benchmark/diagnostics.py's table
# to LOG_DIR/report.md (the study's report is benchmark/results/study_50k/README.md).
#   benchmark/study_50k.sh               DRY_RUN=1 benchmark/study_50k.sh   (print the 39 commands, run nothing)
# Variables: PYTHON (the interpreter), DRY_RUN, LOG_DIR (default runs/logs/study_50k), RESULTS (the results CSV).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHON=${PYTHON:-python} SEEDS="1 2 3" WORKERS=2
LOG_DIR=${LOG_DIR:-runs/logs/study_50k}
export RESULTS=${RESULTS:-benchmark/results/study_50k/runs.csv}
FIGURES=benchmark/results/study_50k/figures
export LAUNCH_ARGS="--threads-per-job 1 --log-dir $LOG_DIR"
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"  # one thread per JAX job
ENV_IDS=(Hopper-v4 Walker2d-v4 HalfCheetah-v4 dm_control/walker-walk-v0)
FLAGS=(--hidden-dim 256 --batch-size 256 --total-timesteps 50000 --learning-starts 5000 --eval-frequency 5000 --eval-episodes 10)
failed=$(mktemp)
one_job() {  # RECIPE RUNNER ENV SEED ARGS...: one job through the runner (it skips the job if finished), in the pool
    local recipe=$1 runner=$2 env=$3 seed=$4
    shift 4
    # the runners through this very bash: they need no `bash` on the PATH
    RECIPE=$recipe ENV_IDS=$env SEEDS=$seed WORKERS=1 "$BASH" "benchmark/$runner" "$@" "${FLAGS[@]}" ||
        echo "$runner $env $seed" >>"$failed"
}
# One pool of WORKERS jobs over the whole study (a dry run prints them one by one, in order)
workers=$WORKERS running=0
[[ -n ${DRY_RUN:-} ]] && workers=1
for env in "${ENV_IDS[@]}"; do
    # recipe, then its runner and flags (the recipe's name is the run's --exp-name, "paper (torch)" as paper_torch)
    recipes=(paper grad-rms-targets sac)
    algos=("qsm_jax.sh --exp-name paper" "qsm_jax.sh --exp-name grad-rms-targets --normalize-q-grad --box-prior --m-q 1"
        "sac.sh --exp-name sac")
    [[ $env == Hopper-v4 ]] && recipes+=("paper (torch)") && algos+=("qsm.sh --exp-name paper_torch")
    for i in "${!algos[@]}"; do
        read -ra words <<<"${algos[$i]}"
        for seed in $SEEDS; do
            if ((running == workers)); then wait -n; running=$((running - 1)); fi
            one_job "${recipes[$i]}" "${words[0]}" "$env" "$seed" "${words[@]:1}" &
            running=$((running + 1))
        done
    done
done
wait
rc=0
if [[ -s $failed ]]; then
    echo "failed jobs:" && cat "$failed"
    rc=1
fi
rm -f "$failed"
[[ -n ${DRY_RUN:-} ]] && exit $rc
mkdir -p "$LOG_DIR"
{
    "$PYTHON" benchmark/plot.py --runs-dir runs --log-dir "$LOG_DIR" \
        --algos paper grad-rms-targets sac paper_torch --env-ids "${ENV_IDS[@]}" \
        --thresholds Hopper-v4=300,500 Walker2d-v4=300,500 HalfCheetah-v4=1000,2000,3000 dm_control/walker-walk-v0=300,600 \
        --output "$FIGURES/study_50k_curves.png" --profile-output "$FIGURES/study_50k_profiles.png" \
        --title "50k env steps, 3 seeds, 256x256 nets: QSM paper, grad-rms-targets (JAX), paper_torch (PyTorch); SB3 SAC" \
        --markdown || rc=1
    echo
    "$PYTHON" benchmark/diagnostics.py --runs-dir runs --env-ids "${ENV_IDS[@]}" \
        --algos paper grad-rms-targets paper_torch --markdown || rc=1
} >"$LOG_DIR/report.md"
cat "$LOG_DIR/report.md"
exit $rc

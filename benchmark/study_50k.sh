#!/usr/bin/env bash
# The 50k-step study: QSM's paper recipe (JAX, its defaults), QSM improved (JAX, --normalize-q-grad --box-prior
# --m-q 1) and SB3 SAC on Hopper-v4, Walker2d-v4, HalfCheetah-v4 and dm_control/walker-walk-v0, and QSM's paper recipe
# in PyTorch on Hopper-v4 only; seeds 1 2 3, 256x256 nets, batch 256, 5k warm-up steps, 10 evaluation episodes every 5k.
# 39 jobs in one pool, two side by side with one thread each.
# Hopper-v4 comes first, all four algorithms, then each other env, so a partial study already compares on one env.
# Resumable: rerun this script to go on. The launcher skips the jobs whose .done record is in runs/logs/study_50k and
# resumes the QSM runs that were cut from their last checkpoint (the runners pass --checkpoint-every 10000).
# At the end benchmark/plot.py writes benchmark/figures/study_50k_*.png, benchmark/study_50k.csv (one row per run, with
# its command) and benchmark/study_50k.md: the table, the IQM and benchmark/diagnostics.py's table.
#   benchmark/study_50k.sh               DRY_RUN=1 benchmark/study_50k.sh   (print the 39 commands, run nothing)
# Variables: PYTHON (the interpreter), DRY_RUN, LOG_DIR (default runs/logs/study_50k).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHON=${PYTHON:-python} SEEDS="1 2 3" WORKERS=2
LOG_DIR=${LOG_DIR:-runs/logs/study_50k}
export LAUNCH_ARGS="--threads-per-job 1 --log-dir $LOG_DIR"
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"  # one thread per JAX job
ENV_IDS=(Hopper-v4 Walker2d-v4 HalfCheetah-v4 dm_control/walker-walk-v0)
FLAGS=(--hidden-dim 256 --batch-size 256 --total-timesteps 50000 --learning-starts 5000 --eval-frequency 5000 --eval-episodes 10)
failed=$(mktemp)
one_job() {  # RUNNER ENV SEED ARGS...: one job through the runner (it skips the job if finished), in the pool below
    local runner=$1 env=$2 seed=$3
    shift 3
    # the runners through this very bash: they need no `bash` on the PATH
    ENV_IDS=$env SEEDS=$seed WORKERS=1 "$BASH" "benchmark/$runner" "$@" "${FLAGS[@]}" || echo "$runner $env $seed" >>"$failed"
}
# One pool of WORKERS jobs over the whole study (a dry run prints them one by one, in order)
workers=$WORKERS running=0
[[ -n ${DRY_RUN:-} ]] && workers=1
for env in "${ENV_IDS[@]}"; do
    algos=("qsm_jax.sh --exp-name qsm_jax_reference" "qsm_jax.sh --exp-name qsm_jax_improved --normalize-q-grad --box-prior --m-q 1"
        "sac.sh --exp-name sac_sb3")
    [[ $env == Hopper-v4 ]] && algos+=("qsm.sh --exp-name qsm_torch_reference")
    for algo in "${algos[@]}"; do
        read -ra words <<<"$algo"
        for seed in $SEEDS; do
            if ((running == workers)); then wait -n; running=$((running - 1)); fi
            one_job "${words[0]}" "$env" "$seed" "${words[@]:1}" &
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
{
    "$PYTHON" benchmark/plot.py --runs-dir runs --log-dir "$LOG_DIR" \
        --algos qsm_jax_reference qsm_jax_improved sac_sb3 qsm_torch_reference --env-ids "${ENV_IDS[@]}" \
        --thresholds Hopper-v4=300,500 Walker2d-v4=300,500 HalfCheetah-v4=1000,2000,3000 dm_control/walker-walk-v0=300,600 \
        --output benchmark/figures/study_50k_curves.png --profile-output benchmark/figures/study_50k_profiles.png \
        --title "50k env steps, 3 seeds, 256x256 nets: QSM (paper recipe, improved; JAX), SB3 SAC, QSM (paper recipe; PyTorch)" \
        --csv benchmark/study_50k.csv --markdown || rc=1
    echo
    "$PYTHON" benchmark/diagnostics.py --runs-dir runs --env-ids "${ENV_IDS[@]}" \
        --algos qsm_jax_reference qsm_jax_improved qsm_torch_reference --markdown || rc=1
} > benchmark/study_50k.md
cat benchmark/study_50k.md
exit $rc

#!/usr/bin/env bash
# The 50k-step study: QSM's paper recipe (JAX, its defaults), QSM improved (JAX, --normalize-q-grad --box-prior
# --m-q 1) and SB3 SAC on Hopper-v4, Walker2d-v4, HalfCheetah-v4 and dm_control/walker-walk-v0, and QSM's paper recipe
# in PyTorch on Hopper-v4 only; seeds 1 2 3, 256x256 nets, batch 256, 5k warm-up steps, 10 evaluation episodes every 5k.
# 39 jobs, two side by side with one thread each (a runner call has 3 jobs, so one core idles for its last one).
# Hopper-v4 comes first, all four algorithms, then each other env, so a partial study already compares on one env.
# Resumable: the launcher skips the jobs whose .done record is in runs/logs/study_50k (rerun this script to go on).
# At the end benchmark/plot.py writes benchmark/figures/study_50k_*.png, benchmark/study_50k.md (the tables it prints)
# and benchmark/study_50k.csv (one row per run, with its command).
#   benchmark/study_50k.sh               DRY_RUN=1 benchmark/study_50k.sh   (print the 39 commands, run nothing)
# Variables: PYTHON (the interpreter), DRY_RUN, LOG_DIR (default runs/logs/study_50k).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHON=${PYTHON:-python} SEEDS="1 2 3" WORKERS=2
LOG_DIR=${LOG_DIR:-runs/logs/study_50k}
export LAUNCH_ARGS="--threads-per-job 1 --log-dir $LOG_DIR"
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"  # one thread per JAX job
FLAGS=(--hidden-dim 256 --batch-size 256 --total-timesteps 50000 --learning-starts 5000 --eval-frequency 5000 --eval-episodes 10)
# the runners through this very bash: they need no `bash` on the PATH
rc=0
for env in Hopper-v4 Walker2d-v4 HalfCheetah-v4 dm_control/walker-walk-v0; do
    export ENV_IDS=$env
    "$BASH" benchmark/qsm_jax.sh --exp-name qsm_jax_reference "${FLAGS[@]}" || rc=1
    "$BASH" benchmark/qsm_jax.sh --exp-name qsm_jax_improved --normalize-q-grad --box-prior --m-q 1 "${FLAGS[@]}" || rc=1
    "$BASH" benchmark/sac.sh --exp-name sac_sb3 "${FLAGS[@]}" || rc=1
    if [[ $env == Hopper-v4 ]]; then
        "$BASH" benchmark/qsm.sh --exp-name qsm_torch_reference "${FLAGS[@]}" || rc=1
    fi
done
[[ -n ${DRY_RUN:-} ]] && exit $rc
"$PYTHON" benchmark/plot.py --runs-dir runs --log-dir "$LOG_DIR" \
    --algos qsm_jax_reference qsm_jax_improved sac_sb3 qsm_torch_reference \
    --env-ids Hopper-v4 Walker2d-v4 HalfCheetah-v4 dm_control/walker-walk-v0 \
    --output benchmark/figures/study_50k_curves.png --profile-output benchmark/figures/study_50k_profiles.png \
    --title "50k env steps, 3 seeds, 256x256 nets: QSM (paper recipe, improved; JAX), SB3 SAC, QSM (paper recipe; PyTorch)" \
    --csv benchmark/study_50k.csv --markdown > benchmark/study_50k.md || rc=1
cat benchmark/study_50k.md
exit $rc

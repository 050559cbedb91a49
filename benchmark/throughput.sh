#!/usr/bin/env bash
# Env steps per second of QSM (PyTorch), QSM (JAX) and SB3 SAC, measured one after the other on the same machine:
# Hopper-v4, 256-wide nets, STEPS env steps of which the first 1000 are warm-up; charts/SPS counts training steps only.
# Each job runs on one thread (OMP/MKL for PyTorch, XLA_FLAGS for JAX): on a busy machine, a PyTorch job with more
# OpenMP threads than free cores slows down many times over.
#   benchmark/throughput.sh            (STEPS=2000 by default)
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-2000}
FLAGS=(--total-timesteps "$STEPS" --learning-starts 1000 --hidden-dim 256 --eval-frequency 0 --eval-episodes 1)
export ENV_IDS=Hopper-v4 SEEDS=1 WORKERS=1 LAUNCH_ARGS="--threads-per-job 1"
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
rc=0
benchmark/qsm.sh --exp-name tp-qsm-pytorch "${FLAGS[@]}" || rc=1
benchmark/qsm_jax.sh --exp-name tp-qsm-jax "${FLAGS[@]}" || rc=1
benchmark/sac.sh --exp-name tp-sac-sb3 "${FLAGS[@]}" || rc=1
"${PYTHON:-python}" benchmark/plot.py --env-ids Hopper-v4 --algos tp-qsm-pytorch tp-qsm-jax tp-sac-sb3 --output runs/throughput.png --markdown
exit $rc

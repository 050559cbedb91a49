#!/usr/bin/env bash
# Env steps per second of QSM (PyTorch), QSM (JAX) and SB3 SAC, measured one after the other on the same machine:
# Hopper-v4, 256-wide nets, STEPS env steps of which the first 1000 are warm-up; charts/SPS counts training steps only.
#   benchmark/throughput.sh            (STEPS=3000 by default; each job gets all the cores)
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-3000}
FLAGS=(--total-timesteps "$STEPS" --learning-starts 1000 --hidden-dim 256 --eval-frequency 0 --eval-episodes 1)
export ENV_IDS=Hopper-v4 SEEDS=1 WORKERS=1
rc=0
benchmark/qsm.sh --exp-name tp-qsm-pytorch "${FLAGS[@]}" || rc=1
benchmark/qsm_jax.sh --exp-name tp-qsm-jax "${FLAGS[@]}" || rc=1
benchmark/sac.sh --exp-name tp-sac-sb3 "${FLAGS[@]}" || rc=1
python benchmark/plot.py --env-ids Hopper-v4 --algos tp-qsm-pytorch tp-qsm-jax tp-sac-sb3 --output runs/throughput.png --markdown
exit $rc

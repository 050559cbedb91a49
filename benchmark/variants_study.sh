#!/usr/bin/env bash
# The runs behind docs/beyond_the_paper.md (2 CPU cores, one thread per job, 256x256 nets, seeds 1 2 3):
# every variant on InvertedPendulum-v4 for 10k env steps; `paper`, SB3 SAC and `grad-rms-targets` (qsm_norm1_box) on
# InvertedPendulum-v4 for 20k steps (read at 10k too, with plot.py --max-step 10001) and on Hopper-v4 for 20k steps;
# then `grad-rms-targets` on InvertedPendulum-v4 for 30k steps (read at 20k with --max-step 20001: runs replay exactly).
# Runs of the same env, algorithm and seed at two budgets share a name: plot.py uses the latest, so keep this order.
# WORKERS (default 2) jobs run side by side; logs in runs/logs, curves in runs/.
set -uo pipefail
cd "$(dirname "$0")/.."
export WORKERS=${WORKERS:-2} LAUNCH_ARGS=${LAUNCH_ARGS:-"--threads-per-job 1"} SEEDS="1 2 3"
IP10K=(--total-timesteps 10000 --learning-starts 1000 --hidden-dim 256)
IP20K=(--total-timesteps 20000 --learning-starts 1000 --hidden-dim 256)
HOP20K=(--total-timesteps 20000 --learning-starts 5000 --hidden-dim 256)
IP30K=(--total-timesteps 30000 --learning-starts 1000 --hidden-dim 256)
rc=0
# (the study also ran qsm_clip_final, qsm_layer_norm and qsm_norm_box_clip_final: `git checkout 9408024` to rerun them)
VARIANTS="qsm_norm qsm_box qsm_norm_box qsm_norm10_box" \
    ENV_IDS=InvertedPendulum-v4 benchmark/variants.sh "${IP10K[@]}" || rc=1
ENV_IDS=InvertedPendulum-v4 benchmark/qsm.sh "${IP20K[@]}" || rc=1
ENV_IDS=InvertedPendulum-v4 benchmark/sac.sh "${IP20K[@]}" || rc=1
VARIANTS=qsm_norm1_box ENV_IDS=InvertedPendulum-v4 benchmark/variants.sh "${IP20K[@]}" || rc=1
ENV_IDS=Hopper-v4 benchmark/qsm.sh "${HOP20K[@]}" || rc=1
ENV_IDS=Hopper-v4 benchmark/sac.sh "${HOP20K[@]}" || rc=1
VARIANTS=qsm_norm1_box ENV_IDS=Hopper-v4 benchmark/variants.sh "${HOP20K[@]}" || rc=1
VARIANTS=qsm_norm1_box ENV_IDS=InvertedPendulum-v4 benchmark/variants.sh "${IP30K[@]}" || rc=1
exit $rc

#!/usr/bin/env bash
# The beyond-the-paper variants of QSM (PyTorch) over seeds x envs, one variant after another; each run's exp_name is
# the variant's name, so benchmark/plot.py draws one line per variant. Extra arguments go to every run.
#   VARIANTS="qsm_norm qsm_norm_box" ENV_IDS=InvertedPendulum-v4 SEEDS="1 2 3" benchmark/variants.sh \
#       --total-timesteps 10000 --learning-starts 1000 --hidden-dim 256
# Variables: VARIANTS (names below; default: all), and ENV_IDS, SEEDS, WORKERS, DRY_RUN, BACKEND, LAUNCH_ARGS as in qsm.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
declare -A FLAGS=(
    [qsm_norm]="--normalize-q-grad --m-q 3"
    [qsm_box]="--box-prior"
    [qsm_norm_box]="--normalize-q-grad --m-q 3 --box-prior"
    [qsm_norm1_box]="--normalize-q-grad --m-q 1 --box-prior"
    [qsm_norm10_box]="--normalize-q-grad --m-q 10 --box-prior"
)
# qsm_clip_final, qsm_layer_norm and qsm_norm_box_clip_final lost (docs/beyond_the_paper.md); their flags left the code
# after commit 9408024, where this runner still has them.
VARIANTS=${VARIANTS:-"qsm_norm qsm_box qsm_norm1_box qsm_norm_box qsm_norm10_box"}
rc=0
for name in $VARIANTS; do
    if [[ -z "${FLAGS[$name]+x}" ]]; then
        echo "variants.sh: unknown variant $name (known: ${!FLAGS[*]})" >&2
        exit 2
    fi
    # shellcheck disable=SC2086  # the flags are a list
    "$BASH" benchmark/qsm.sh ${FLAGS[$name]} --exp-name "$name" "$@" || rc=1
done
exit $rc

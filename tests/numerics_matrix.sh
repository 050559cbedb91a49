#!/usr/bin/env bash
# The learning tests (marker `learning`) under every float path of the grid, over seeds 0-7, with a report of the worst
# value each measured quantity reached against its threshold. A threshold must clear the whole grid with margin:
# float results differ between CPUs (Intel, AMD with AVX-512), and these paths reproduce that spread on one machine.
#   tests/numerics_matrix.sh                  # the whole grid, two paths at a time (about 1 h of both cores: 700 runs)
#   SEEDS=0-2 JOBS=1 K=two_maxima tests/numerics_matrix.sh     # a part of it: K is a pytest -k expression
# Each run records into $OUT/<path>.jsonl (conftest.py's `check` records instead of asserting); exit 1 if any value
# crossed its threshold.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-numerics_matrix}
SEEDS=${SEEDS:-0-7}
JOBS=${JOBS:-2}
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl

# name | environment | which tests: PyTorch's float path moves the torch tests, XLA's the JAX ones
PATHS=(
    "default||"
    "aten-default|ATEN_CPU_CAPABILITY=default|not jax"
    "aten-avx2|ATEN_CPU_CAPABILITY=avx2|not jax"
    "mkl-compatible|MKL_CBWR=COMPATIBLE|not jax"
    "mkl-avx2|MKL_CBWR=AVX2|not jax"
    "xla-sse4_2|XLA_FLAGS=--xla_cpu_max_isa=SSE4_2|jax"
    "xla-avx2|XLA_FLAGS=--xla_cpu_max_isa=AVX2|jax"
)

run_path() {  # run_path "name|env|selection"
    local name env select
    IFS="|" read -r name env select <<<"$1"
    select="(${select:-not nothing}) and (${K:-not nothing})"
    # -n 0: no pytest-xdist workers, the grid already runs JOBS paths at a time
    env $env QSM_TEST_SEEDS="$SEEDS" QSM_RECORD="$OUT/$name.jsonl" OMP_NUM_THREADS=1 \
        python -m pytest -q -n 0 -p no:cacheprovider -m learning -k "$select" >"$OUT/$name.log" 2>&1
    echo "[numerics_matrix] $name: $(tail -n 1 "$OUT/$name.log")"
}
export -f run_path
export OUT SEEDS K=${K:-}

printf '%s\n' "${PATHS[@]}" | xargs -d '\n' -P "$JOBS" -I{} bash -c 'run_path "$@"' _ {}

python - "$OUT" <<'PY'
import collections, glob, json, os, sys

rows = collections.defaultdict(list)
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.jsonl"))):
    for line in open(path):
        r = json.loads(line)
        rows[(r["test"], r["quantity"], r["above"], r["below"])].append((r["value"], os.path.basename(path)[:-6]))
crossed = 0
print(f"{'test':<84} {'quantity':<24} {'bounds':>13} {'min':>7} {'max':>7} {'n':>4}  worst margin")
for (test, quantity, above, below), values in sorted(rows.items()):
    lo, hi = min(values), max(values)
    margins = ([(lo[0] - above, lo[1])] if above is not None else []) + ([(below - hi[0], hi[1])] if below is not None else [])
    margin, where = min(margins)
    crossed += margin <= 0
    bounds = f"{'' if above is None else above}..{'' if below is None else below}"
    print(f"{test:<84} {quantity:<24} {bounds:>13} {lo[0]:7.3f} {hi[0]:7.3f} {len(values):4d}  "
          f"{margin:+.3f} ({where}){'  CROSSED' if margin <= 0 else ''}")
print(f"{crossed} quantities crossed their threshold somewhere in the grid")
sys.exit(1 if crossed else 0)
PY

#!/bin/bash
# Sparse transformers on one accelerator (issue 28): the optimizer-step
# costs of RAMDA and the N:M projection against optax.adamw, then the GPT on
# the Shakespeare corpus and the ViT on the CIFAR-10 JPEG copy
# (python -m benchmarks.transformers_nm, settings gpt and vit), side by side at one
# budget per setting.
#
#   RDA_SHARED_DATA=DIR bash benchmarks/transformers_accelerator.sh \
#       [SECONDS] [COPY_TO]
#
# DIR holds shakespeare/shakespeare.txt.gz and cifar10-jpg.tar.gz
# (../shared/data by default). SECONDS (default 3600) bounds the whole
# script: each stage gets what is left (a sweep stopped by the limit resumes
# where it stopped when the script is run again: finished runs are kept and
# an interrupted one restarts from its checkpoint; on a fresh machine, the
# runs recorded in OUT's results.json, written after each run, are not run
# again: commit the copy of COPY_TO there between calls). COPY_TO, if given,
# receives the results (optimizer_step.md, each sweep's results.json and
# results.md, the run logs as runs.tgz).
#
# Environment: STAGES (default "step gpt vit"), GPT_SEEDS (default
# "0 1 2"), VIT_SEEDS (default "0"), GPT_METHODS / VIT_METHODS (default: all
# of the setting's), JOBS (default 4: runs at once, sharing the
# accelerator), OUT (default benchmarks/results/transformers_nm). SMOKE=1
# runs every stage for a few steps only (on a CPU too: to check the script).
set -u
LIMIT=${1:-3600}
COPY_TO=${2:-}
T0=$(date +%s)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.jax_cache}
STAGES=${STAGES:-step gpt vit}
GPT_SEEDS=${GPT_SEEDS:-0 1 2}
VIT_SEEDS=${VIT_SEEDS:-0}
GPT_METHODS=${GPT_METHODS:-}
VIT_METHODS=${VIT_METHODS:-}
JOBS=${JOBS:-4}
OUT=${OUT:-benchmarks/results/transformers_nm}
SMOKE=${SMOKE:-}
mkdir -p "$OUT"

left() { echo $((LIMIT - ($(date +%s) - T0))); }

$PY - <<'EOF' || exit 1
import jax, flax, optax, numpy
print('jax', jax.__version__, 'flax', flax.__version__, 'optax',
      optax.__version__, 'numpy', numpy.__version__, jax.devices())
EOF
command -v nvidia-smi >/dev/null && nvidia-smi -L

FAIL=0
for stage in $STAGES; do
  T=$(left)
  if [ "$T" -le 60 ]; then
    echo "no time left for stage $stage (limit $LIMIT s)" >&2
    FAIL=1
    break
  fi
  echo "== stage $stage ($T s left)"
  case "$stage" in
    step)
      # RAMDA, proximal AdamW, RMDA and the 2:4 projection against AdamW
      # on the ResNet-18-sized tree (11.2 M parameters).
      if [ -n "$SMOKE" ]; then R=(--rounds 2 --steps 1); else
        R=(--rounds 30 --steps 10); fi
      timeout "$T" $PY -m benchmarks.optimizer_step --adaptive "${R[@]}" \
        | tee "$OUT/optimizer_step.md" || FAIL=1
      ;;
    gpt | vit)
      if [ "$stage" = gpt ]; then S=$GPT_SEEDS; M=$GPT_METHODS; else
        S=$VIT_SEEDS; M=$VIT_METHODS; fi
      A=("$stage" --out "$OUT/$stage" --jobs "$JOBS" --skip_published)
      [ -n "$SMOKE" ] && A+=(--smoke) || A+=(--seeds $S)
      # shellcheck disable=SC2086
      [ -n "$M" ] && A+=(--methods $M)
      # Several processes share the accelerator's memory.
      XLA_PYTHON_CLIENT_MEM_FRACTION=$($PY -c "print(f'{0.9 / $JOBS:.3f}')") \
        timeout "$T" $PY -m benchmarks.transformers_nm "${A[@]}" || FAIL=1
      ;;
    *)
      echo "unknown stage '$stage' (step, gpt, vit)" >&2
      FAIL=1
      ;;
  esac
done

if [ -n "$COPY_TO" ]; then
  mkdir -p "$COPY_TO"
  cp "$OUT/optimizer_step.md" "$COPY_TO/" 2>/dev/null
  for s in gpt vit; do
    for d in "$OUT/$s" "$OUT/$s/smoke"; do
      [ -f "$d/results.json" ] || continue
      mkdir -p "$COPY_TO/${d#"$OUT"/}"
      cp "$d/results.json" "$d/results.md" "$COPY_TO/${d#"$OUT"/}/"
    done
  done
  find "$OUT" -name '*.log' -print0 | tar -czf "$COPY_TO/runs.tgz" \
    --null -T - 2>/dev/null
fi
echo "done after $(($(date +%s) - T0)) s (status $FAIL)"
exit $FAIL

#!/bin/bash
# ResNet-18 on CIFAR-10 (the JPEG copy) at 95% sparsity on one accelerator:
# dense SGD, global Han (dense parent, then fine-tuning at 0.01 and 0.03),
# gradual magnitude pruning and RMDA projected, all at the same epoch budget
# and side by side (python -m benchmarks.frontier --jobs 5), for the largest budget
# among cifar_resnet18_e{15,30,60,90} that the time given allows.
#
#   RDA_SHARED_DATA=DIR bash benchmarks/cifar_resnet18_accelerator.sh \
#       [SECONDS] [COPY_TO]
#
# DIR holds cifar10-jpg.tar.gz (../shared/data by default). SECONDS (default
# 3600) bounds the whole script: it first measures the training throughput of
# five ResNet-18 processes sharing the accelerator (250 steps each, the
# last 50 timed), then picks the budget whose runs fit in what is left. COPY_TO, if given,
# receives the results (results.json, frontier.md, frontier.png, the run
# logs as runs.tgz). Runs already finished are kept (the frontier resumes).
#
# Environment: SEEDS (default "0"), LEVELS (default "0.95"), METHODS
# (default "dense han_global rmda_target gmp") choose the sweep's points;
# EPOCHS (15, 30, 60 or 90) skips the probe and trains that budget; JOBS
# (default 5) runs at once. E.g. seeds 1 and 2 of the published 60 epochs:
#
#   SEEDS="1 2" EPOCHS=60 JOBS=8 bash benchmarks/cifar_resnet18_accelerator.sh 560
set -u
LIMIT=${1:-3600}
COPY_TO=${2:-}
T0=$(date +%s)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.jax_cache}
JOBS=${JOBS:-5}
SEEDS=${SEEDS:-0}
LEVELS=${LEVELS:-0.95}
METHODS=${METHODS:-dense han_global rmda_target gmp}
EPOCHS=${EPOCHS:-}
case "$EPOCHS" in
  '' | 15 | 30 | 60 | 90) ;;
  *)
    echo "EPOCHS must be one of 15, 30, 60, 90 (the settings" \
      "cifar_resnet18_e<EPOCHS>), got '$EPOCHS'" >&2
    exit 2
    ;;
esac

$PY - <<'EOF' || exit 1
import jax, flax, optax, numpy
print('jax', jax.__version__, 'flax', flax.__version__, 'optax',
      optax.__version__, 'numpy', numpy.__version__, jax.devices())
EOF
command -v nvidia-smi >/dev/null && nvidia-smi -L

# The decoded cache, once (the processes below would each build it).
$PY -c 'from train.data import cifar_jpg_source as c, folder_source as f
f.load_image_folder(c.find_cifar10_jpg())' || exit 1
echo "cache ready after $(($(date +%s) - T0)) s"

# Throughput of JOBS processes at once (the sweep's methods), unless EPOCHS
# chose the budget.
probe() {
PROBE=$(mktemp -d)
trap 'rm -rf "$PROBE"' EXIT
STEPS=${PROBE_STEPS:-250}
B=(--model resnet18 --dataset cifar10_jpg --batch_size 128 --dtype bfloat16
  --epochs 30 --asr_epochs 0 --lr 0.1 --momentum 0.9 --eval_every_epochs 100
  --no-progress --no-report --log_every_steps $((STEPS / 5))
  --stop_at_step "$STEPS")
M=("--method sgd" "--method rmda --regularizer sparsity --target_sparsity 0.95
  --lr 1.0 --init_scale 0" "--method gmp --gmp_sparsity 0.95" "--method sgd"
  "--method sgd")
export XLA_PYTHON_CLIENT_MEM_FRACTION=$($PY -c "print(f'{0.9 / $JOBS:.3f}')")
for i in $(seq 0 $((JOBS - 1))); do
  # shellcheck disable=SC2086
  $PY -m train "${B[@]}" ${M[$i]} --workdir "$PROBE/p$i" \
    >"$PROBE/p$i.log" 2>&1 &
done
FAIL=0
for job in $(jobs -p); do wait "$job" || FAIL=1; done
if [ $FAIL = 1 ]; then
  tail -n 30 "$PROBE"/p*.log
  exit 1
fi
IPS=$($PY - "$PROBE" <<'EOF'
import glob, sys
from train import metrics
print(min(metrics.read_records(d, 'train')[-1]['images_per_sec']
          for d in glob.glob(sys.argv[1] + '/p*/')))
EOF
)
unset XLA_PYTHON_CLIENT_MEM_FRACTION
LEFT=$((LIMIT - ($(date +%s) - T0) - 60))
[ $LEFT -lt 60 ] && LEFT=60
# Each process trains the whole budget (Han: parent then fine-tuning, two
# start-ups); 120 s for start-ups, compilation, evaluations and checkpoints.
E=$($PY -c "
ips, left = $IPS, $LEFT
fits = [e for e in (90, 60, 30, 15) if e * 50000 / ips + 120 <= left]
print(fits[0] if fits else 15)")
echo "probe: $IPS img/s per process with $JOBS at once; ${LEFT}s left: budget $E epochs"
}
if [ -n "$EPOCHS" ]; then
  E=$EPOCHS
  LEFT=$((LIMIT - ($(date +%s) - T0) - 60))
  [ $LEFT -lt 60 ] && LEFT=60
  echo "budget $E epochs (EPOCHS); ${LEFT}s left"
else
  probe
fi
SETTING=cifar_resnet18_e$E
OUTDIR=benchmarks/results/frontier_$SETTING
mkdir -p "$OUTDIR"
# shellcheck disable=SC2086
timeout -k 10 $((LEFT + 30)) $PY -m benchmarks.frontier "$SETTING" \
  --seeds $SEEDS --methods $METHODS --strengths $LEVELS --jobs $JOBS \
  2>&1 | tee -a "$OUTDIR/frontier.log"
echo "done after $(($(date +%s) - T0)) s"
if [ -n "$COPY_TO" ]; then
  mkdir -p "$COPY_TO"
  cp "$OUTDIR"/results.json "$OUTDIR"/frontier.md "$OUTDIR"/frontier.png \
    "$OUTDIR"/frontier.log "$COPY_TO"/ 2>/dev/null
  (cd "$OUTDIR" && find runs \( -name metrics.jsonl -o -name frontier_done \
    -o -name '*.json' \) -print0 | tar czf "$COPY_TO/runs.tgz" --null -T -)
fi

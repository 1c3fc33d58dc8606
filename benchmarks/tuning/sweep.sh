#!/usr/bin/env bash
# Tuning sweeps behind the variants of benchmarks/frontier/settings.py: each line of a
# spec file is "NAME FLAGS..." (flags of python -m train); every run's final
# test top-1 and kernel sparsity go to OUT.tsv. Resumable (finished runs are
# skipped). Usage: bash benchmarks/tuning/sweep.sh SPEC OUT_DIR
set -euo pipefail
spec="$1"; out="$2"; mkdir -p "$out/runs"
while read -r name flags; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  dir="$out/runs/$name"
  if [[ ! -f "$dir/done" ]]; then
    start=$(date +%s)
    # shellcheck disable=SC2086
    python -m train $flags --workdir "$dir" --no-progress --no-report > "$dir.log" 2>&1 < /dev/null
    echo $(( $(date +%s) - start )) > "$dir/done"
  fi
  python - "$dir" "$name" "$flags" >> "$out/results.tsv" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1] + '/metrics.jsonl') if '"eval"' in l]
r = recs[-1]
print(f"{sys.argv[2]}\t{r['test_top1']:.4f}\t{r['sparsity']:.4f}\t{sys.argv[3]}")
PY
done < "$spec"
sort -u "$out/results.tsv" -o "$out/results.tsv"
column -t -s $'\t' "$out/results.tsv"

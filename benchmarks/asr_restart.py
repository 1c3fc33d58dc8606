"""ASR: continue RDA's state at retraining, or restart it? Measured side by side.

The paper does not say whether RDA's centre and gradient sum restart when
adaptive sparse retraining starts. This runs the same job (by default the
preset mnist_lenet300_rda: LeNet-300-100 on MNIST, the paper's RDA then ASR) with
``--no-asr_restart`` and ``--asr_restart`` for several seeds and prints the
final test accuracy and sparsity of each.

    python -m benchmarks.asr_restart                      # mnist_lenet300_rda, seeds 0 1
    python -m benchmarks.asr_restart --seeds 0 1 2 -- --epochs 4 --asr_epochs 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile

from train import metrics


def run(workdir: str, seed: int, restart: bool, extra: list[str]) -> dict:
  cmd = [
      sys.executable,
      '-m',
      'train',
      '--preset',
      'mnist_lenet300_rda',
      '--workdir',
      workdir,
      '--seed',
      str(seed),
      '--asr_restart' if restart else '--no-asr_restart',
      '--no-progress',
      '--no-report',
      *extra,
  ]
  subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
  return metrics.read_records(workdir, 'eval')[-1]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
  parser.add_argument(
      'extra', nargs='*', help='flags for python -m train (after --)'
  )
  args = parser.parse_args(argv)
  rows = {False: [], True: []}
  with tempfile.TemporaryDirectory() as tmp:
    for seed in args.seeds:
      for restart in (False, True):
        rec = run(
            os.path.join(tmp, f'{seed}_{restart}'), seed, restart, args.extra
        )
        rows[restart].append(rec)
        print(
            f'seed {seed} restart={restart}: top-1 {rec["test_top1"]:.4f} '
            f'sparsity {rec["sparsity"]:.4f}',
            flush=True,
        )
  print(
      f'\nMachine: {platform.platform()}, {os.cpu_count()} CPUs; '
      f'`python -m train --preset mnist_lenet300_rda {" ".join(args.extra)}` (RDA then ASR), seeds '
      f'{args.seeds}.\n'
  )
  print(
      '| ASR start | test top-1 (mean) | sparsity of kernels (mean) | '
      'per seed (top-1 / sparsity) |'
  )
  print('|---|---:|---:|---|')
  for restart, name in (
      (False, 'continue RDA state'),
      (True, 'restart RDA (centre = sparse weights)'),
  ):
    recs = rows[restart]
    per = ', '.join(f'{r["test_top1"]:.2%} / {r["sparsity"]:.2%}' for r in recs)
    print(
        f'| {name} | {statistics.mean(r["test_top1"] for r in recs):.2%} | '
        f'{statistics.mean(r["sparsity"] for r in recs):.2%} | {per} |'
    )


if __name__ == '__main__':
  main()

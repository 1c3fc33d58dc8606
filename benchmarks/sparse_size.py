"""Size on disk of trained sparse models in `rda_optax.save_sparse`'s format.

For each run directory given (a ``--workdir`` of ``python -m train``), loads
the final parameters, writes them with :func:`rda_optax.save_sparse` and
reports the kernel sparsity, the file size and its ratio to the dense
float32 size of the same parameters (``np.savez`` of the dense arrays), plus
the time of a save and a load.

    python -m benchmarks.sparse_size RUN_DIR [RUN_DIR ...]
    python -m benchmarks.sparse_size --frontier lenet300   # one run per level

``--frontier SETTING`` picks, from ``benchmarks/results/frontier_<SETTING>``,
the seed-0 RMDA run closest to each sparsity level of the results page.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import jax
import numpy as np

import rda_optax
from train import checkpoint as ckpt_lib
from train import metrics as metrics_lib

from .frontier.settings import LEVELS


def frontier_runs(setting: str) -> list[str]:
  runs = sorted(
      glob.glob(
          os.path.join(
              ROOT,
              'benchmarks',
              'results',
              f'frontier_{setting}',
              'runs',
              'rmda_*_seed0',
          )
      )
  )
  found = []
  for run in runs:
    evals = metrics_lib.read_records(run, 'eval')
    if evals:
      found.append((evals[-1]['sparsity'], run))
  picked = []
  for level in LEVELS:
    above = [f for f in found if f[0] >= level]
    if above:
      best = min(above)
      if best[1] not in picked:
        picked.append(best[1])
  return picked


def measure(run: str) -> dict:
  params = ckpt_lib.load_variables(run)['params']
  summary = rda_optax.sparsity_summary(params)
  with tempfile.TemporaryDirectory() as tmp:
    dense_path = os.path.join(tmp, 'dense.npz')
    leaves = {
        str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(params))
    }
    np.savez(dense_path, **leaves)
    path = os.path.join(tmp, 'sparse.npz')
    t0 = time.perf_counter()
    rda_optax.save_sparse(path, params)
    t1 = time.perf_counter()
    back = rda_optax.load_sparse(path, like=params)
    t2 = time.perf_counter()
    exact = all(
        np.asarray(a).tobytes() == np.asarray(b).tobytes()
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back))
    )
    return {
        'run': os.path.relpath(run, ROOT),
        'sparsity': summary['regularized/sparsity'],
        'dense_bytes': os.path.getsize(dense_path),
        'sparse_bytes': os.path.getsize(path),
        'save_ms': 1e3 * (t1 - t0),
        'load_ms': 1e3 * (t2 - t1),
        'exact': exact,
    }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('runs', nargs='*')
  parser.add_argument('--frontier', default=None)
  args = parser.parse_args(argv)
  runs = list(args.runs)
  if args.frontier:
    runs += frontier_runs(args.frontier)
  if not runs:
    parser.error('give run directories or --frontier SETTING')
  print(f'Machine: {platform.platform()}, {os.cpu_count()} CPUs.\n')
  print(
      '| run | kernel sparsity | dense .npz | sparse file | ratio | '
      'save | load | bit-identical |'
  )
  print('|---|---:|---:|---:|---:|---:|---:|:---:|')
  for run in runs:
    m = measure(run)
    print(
        f"| `{m['run']}` | {m['sparsity']:.2%} | {m['dense_bytes']:,} B | "
        f"{m['sparse_bytes']:,} B | 1/{m['dense_bytes'] / m['sparse_bytes']:.1f}"
        f" | {m['save_ms']:.0f} ms | {m['load_ms']:.0f} ms | "
        f"{'yes' if m['exact'] else 'NO'} |"
    )
  return 0


if __name__ == '__main__':
  sys.exit(main())

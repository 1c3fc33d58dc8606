"""Size of N:M-sparse models in `rda_optax.save_sparse`'s layouts.

Builds LeNet-300-100 and ResNet-8 (random He-normal weights), prunes every
kernel to N:M by magnitude (``rda_optax.nm_masks``, default mask: the
kernels; biases and batch-norm parameters stay dense), and reports the bytes
of the whole parameter tree in the dense float32 layout, in the best layout
without the N:M code (bitmask, indices or dense per array: what
``save_sparse`` wrote before the N:M layout) and with it, plus the size of
the ``.npz`` file ``save_sparse`` writes (header and zip framing included).

    python -m benchmarks.nm_sparse_size
    python -m benchmarks.nm_sparse_size --patterns 2:4 1:4 4:8
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import jax
import jax.numpy as jnp
import numpy as np

import models
import rda_optax
from rda_optax import sparse_codes

MODELS = ('lenet300_100', 'resnet8')


def random_params(name: str, seed: int = 0):
  """The model's parameters, He-normal kernels, filled by NumPy."""
  model = models.create(name)
  shape = (1,) + tuple(models.default_input_shape(name))
  variables = jax.eval_shape(
      functools.partial(model.init, train=False),
      jax.random.key(0),
      jax.ShapeDtypeStruct(shape, jnp.float32),
  )
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if path[-1].key == 'kernel':
      std = math.sqrt(2 / math.prod(leaf.shape[:-1]))
      return rng.normal(0, std, leaf.shape).astype(leaf.dtype)
    if path[-1].key == 'scale':
      return np.ones(leaf.shape, leaf.dtype)
    return rng.normal(0, 0.01, leaf.shape).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, variables['params'])


def layout_bytes(tree, codes) -> tuple[int, dict[str, int]]:
  """Payload bytes of ``tree`` when each array takes the smallest of
  ``codes``, and how many arrays take each."""
  total, used = 0, {}
  for leaf in jax.tree.leaves(tree):
    enc = sparse_codes.encode(np.asarray(leaf), codes)
    total += sum(a.nbytes for a in enc.arrays.values())
    used[enc.code] = used.get(enc.code, 0) + 1
  return total, used


def measure(name: str, n: int, m: int) -> dict[str, object]:
  params = random_params(name)
  pruned = rda_optax.apply_masks(params, rda_optax.nm_masks(params, n, m))
  pruned = jax.tree.map(np.asarray, pruned)
  dense = sum(x.nbytes for x in jax.tree.leaves(pruned))
  without, codes_without = layout_bytes(pruned, ('bitmask', 'indices', 'dense'))
  with_nm, codes_with = layout_bytes(pruned, sparse_codes.CODES)
  path = os.path.join(tempfile.mkdtemp(), 'model.npz')
  rda_optax.save_sparse(path, pruned)
  kernels = [
      x
      for x, s in zip(
          jax.tree.leaves(pruned),
          jax.tree.leaves(rda_optax.default_mask(pruned)),
      )
      if s
  ]
  assert all(rda_optax.satisfies_nm(k, n, m) for k in kernels)
  return dict(
      model=name,
      pattern=f'{n}:{m}',
      params=sum(x.size for x in jax.tree.leaves(pruned)),
      kernel_zeros=sum(int((k == 0).sum()) for k in kernels)
      / sum(k.size for k in kernels),
      dense=dense,
      without=without,
      with_nm=with_nm,
      file=os.path.getsize(path),
      codes_without=codes_without,
      codes_with=codes_with,
  )


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--models', nargs='*', default=list(MODELS))
  parser.add_argument('--patterns', nargs='*', default=['2:4', '1:4'])
  args = parser.parse_args(argv)
  print(
      '| model | pattern | params | kernel zeros | dense float32 (B) | '
      'best without N:M (B) | with N:M (B) | N:M / without | N:M / dense | '
      'file on disk (B) | layouts without → with |'
  )
  print('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|')
  rows = []
  for name in args.models:
    for pattern in args.patterns:
      n, m = (int(v) for v in pattern.split(':'))
      r = measure(name, n, m)
      rows.append(r)
      fmt = lambda codes: ', '.join(
          f'{k} {v}' for k, v in sorted(codes.items())
      )
      print(
          f'| {r["model"]} | {r["pattern"]} | {r["params"]:,} | '
          f'{r["kernel_zeros"]:.1%} | {r["dense"]:,} | {r["without"]:,} | '
          f'{r["with_nm"]:,} | {r["with_nm"] / r["without"]:.3f} | '
          f'{r["with_nm"] / r["dense"]:.3f} | {r["file"]:,} | '
          f'{fmt(r["codes_without"])} → {fmt(r["codes_with"])} |',
          flush=True,
      )
  return rows


if __name__ == '__main__':
  main()

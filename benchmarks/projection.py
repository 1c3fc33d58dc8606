"""Cost of the global magnitude threshold: the library's search, a plain
bisection and a sort, side by side.

    python benchmarks/projection.py                    # LeNet-300-100's kernels
    python benchmarks/projection.py --model resnet18   # 11.2M weights

Times ``rda_optax.sparsity_constraint(s).prox_tree`` (one threshold over all
the kernels: a search seeded by a sample and narrowed by interpolation on the
counts, a few counting passes over the float bit patterns, exact) against
the same projection as the library made it until 2026-12-01 (the threshold
by a bisection on the bit patterns, 32 counting passes, and the ties at it
ranked by a cumulative sum) and
by ``jnp.sort``, all jitted, alternating within each round; median of
``--rounds`` rounds, and the ratio of each to the library's time taken round
by round. Prints the number of counting passes the library's search took.
"""

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import rda_optax  # noqa: E402
from rda_optax import pruning  # noqa: E402

LENET300 = {'fc1': (784, 300), 'fc2': (300, 100), 'fc3': (100, 10)}


def _shapes(model):
  if model == 'lenet300':
    return LENET300
  from optimizer_step import resnet18_shapes  # pylint: disable=import-outside-toplevel

  return {n: s for n, s in resnet18_shapes().items() if len(s) > 1}


def _flat(tree):
  return jnp.concatenate([jnp.abs(x).ravel() for x in tree.values()])


def _apply(tree, thr):
  return {n: jnp.where(jnp.abs(x) > thr, x, 0) for n, x in tree.items()}


def sort_projection(tree, sparsity):
  flat = _flat(tree)
  k = round(sparsity * flat.size)
  return _apply(tree, jnp.sort(flat)[k - 1])


def bisection_projection(tree, sparsity):
  """The library's projection until 2026-12-01: the threshold by bisection
  (32 counting passes), the ties at it ranked by a cumulative sum."""
  flat = _flat(tree)
  k = round(sparsity * flat.size)
  keys = pruning._order_keys(flat)  # pylint: disable=protected-access
  thr = pruning._bisect_key(keys, k)  # pylint: disable=protected-access
  below, ties = keys < thr, keys == thr
  rank = jnp.cumsum(ties, dtype=jnp.int32)
  prune = below | (ties & (rank <= k - jnp.sum(below, dtype=jnp.int32)))
  out, offset = {}, 0
  for n, x in tree.items():
    keep = ~prune[offset : offset + x.size].reshape(x.shape)
    out[n] = jnp.where(keep, x, 0)
    offset += x.size
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      '--model', default='lenet300', choices=['lenet300', 'resnet18']
  )
  parser.add_argument(
      '--rounds',
      type=int,
      default=None,
      help='default 50 (lenet300), 7 (resnet18)',
  )
  parser.add_argument('--sparsity', type=float, default=0.98)
  parser.add_argument(
      '--no_sort',
      action='store_true',
      help='skip jnp.sort (seconds per call on a CPU for ' 'ResNet-18)',
  )
  args = parser.parse_args(argv)
  rounds = args.rounds or (50 if args.model == 'lenet300' else 7)
  shapes = _shapes(args.model)
  keys = jax.random.split(jax.random.key(0), len(shapes))
  tree = {n: jax.random.normal(k, s) for (n, s), k in zip(shapes.items(), keys)}
  selected = {n: True for n in tree}
  constraint = rda_optax.sparsity_constraint(args.sparsity)
  fns = {
      'rda_optax (sampled search)': jax.jit(
          lambda t: constraint.prox_tree(t, selected, 1.0)
      ),
      'bisection, 32 passes + tie ranks': jax.jit(
          lambda t: bisection_projection(t, args.sparsity)
      ),
  }
  if not args.no_sort:
    fns['jnp.sort'] = jax.jit(lambda t: sort_projection(t, args.sparsity))
  flat = _flat(tree)
  k = round(args.sparsity * flat.size)
  _, _, passes = jax.jit(
      lambda f: pruning._kth_smallest_key(  # pylint: disable=protected-access
          pruning._order_keys(f), k, with_passes=True  # pylint: disable=protected-access
      )
  )(flat)
  times = {name: [] for name in fns}
  for f in fns.values():
    jax.block_until_ready(f(tree))
  for _ in range(rounds):
    for name, f in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(f(tree))
      times[name].append(time.perf_counter() - t0)
  ours = times['rda_optax (sampled search)']
  print(
      f'Machine: {platform.platform()}, {os.cpu_count()} CPUs, JAX '
      f'{jax.__version__} on {jax.devices()[0].platform}; {flat.size:,} '
      f'weights ({args.model} kernels), sparsity {args.sparsity}, median of '
      f'{rounds} alternating rounds. The library searched in {int(passes)} '
      f'counting passes.\n'
  )
  print('| threshold | ms per projection | time / rda_optax |')
  print('|---|---:|---:|')
  for name, t in times.items():
    ratio = statistics.median(a / b for a, b in zip(t, ours))
    print(f'| {name} | {1e3 * statistics.median(t):.2f} | {ratio:.2f} |')


if __name__ == '__main__':
  main()

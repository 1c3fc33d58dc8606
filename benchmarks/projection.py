"""Cost of the global magnitude threshold: bisection (the library) vs a sort.

    python benchmarks/projection.py            # LeNet-300-100's kernels

Times ``rda_optax.sparsity_constraint(0.98).prox_tree`` (one threshold over
all the kernels, found by 32 counting passes over the float bit patterns)
against the same projection with the threshold taken from ``jnp.sort``, both
jitted, median of ``--rounds`` calls.
"""

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

import rda_optax

SHAPES = {'fc1': (784, 300), 'fc2': (300, 100), 'fc3': (100, 10)}


def sort_projection(tree, sparsity):
  flat = jnp.concatenate([jnp.abs(x).ravel() for x in tree.values()])
  k = round(sparsity * flat.size)
  thr = jnp.sort(flat)[k - 1]
  return {n: jnp.where(jnp.abs(x) > thr, x, 0) for n, x in tree.items()}


def median_ms(fn, tree, rounds):
  jax.block_until_ready(fn(tree))
  times = []
  for _ in range(rounds):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(tree))
    times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=50)
  parser.add_argument('--sparsity', type=float, default=0.98)
  args = parser.parse_args(argv)
  keys = jax.random.split(jax.random.key(0), len(SHAPES))
  tree = {n: jax.random.normal(k, s) for (n, s), k in zip(SHAPES.items(), keys)}
  selected = {n: True for n in tree}
  constraint = rda_optax.sparsity_constraint(args.sparsity)
  bisect = jax.jit(lambda t: constraint.prox_tree(t, selected, 1.0))
  by_sort = jax.jit(lambda t: sort_projection(t, args.sparsity))
  n = sum(x.size for x in tree.values())
  print(
      f'Machine: {platform.platform()}, {os.cpu_count()} CPUs, JAX '
      f'{jax.__version__} on {jax.devices()[0].platform}; {n:,} weights, '
      f'sparsity {args.sparsity}, median of {args.rounds} calls.\n'
  )
  print('| threshold | ms per projection |')
  print('|---|---:|')
  print(
      f'| bisection (rda_optax) | {median_ms(bisect, tree, args.rounds):.2f} |'
  )
  print(f'| jnp.sort | {median_ms(by_sort, tree, args.rounds):.2f} |')


if __name__ == '__main__':
  main()

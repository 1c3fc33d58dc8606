"""Cost of the global magnitude threshold: the library's search, cold and
warm, and a sort, side by side.

    python -m benchmarks.projection                    # LeNet-300-100's kernels
    python -m benchmarks.projection --model resnet18   # 11.2M weights

Times the threshold of the projection of ``rda_optax.sparsity_constraint(s)``
(one threshold over all the kernels, exact: ``round(s·n)`` zeros, ties by
position) found three ways, all jitted on the kernels laid end to end in one
array (the layout the optimizers give it), alternating within each round
(the masks that apply it cost the same whatever found it, and are not
timed):

* ``kth_smallest``, cold: counting passes from a strided sample (what
  ``sparsity_constraint(s).prox_tree`` does);
* ``kth_smallest``, warm: started from the :class:`rda_optax.ThresholdState`
  of the previous step, the weights having moved as a training step moves
  them (each round's input is the last one plus a small random step);
* ``jnp.sort`` of the magnitudes, the threshold read at rank ``k``.

Prints the median time of ``--rounds`` rounds, the ratio to the cold search
taken round by round, and the counting passes each search took.
"""

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import rda_optax
from benchmarks.optimizer_step import resnet18_shapes

LENET300 = {'fc1': (784, 300), 'fc2': (300, 100), 'fc3': (100, 10)}


def _shapes(model):
  if model == 'lenet300':
    return LENET300
  return {n: s for n, s in resnet18_shapes().items() if len(s) > 1}


def _threshold(flat, k, state):
  return rda_optax.kth_smallest([flat], k, state=state, magnitude=True)


def sort_threshold(flat, k):
  return jnp.sort(jnp.abs(flat))[k - 1]


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
      '--step',
      type=float,
      default=1e-3,
      help='size of the random move of every weight between two rounds, '
      'relative to the weights (a training step)',
  )
  parser.add_argument(
      '--no_sort',
      action='store_true',
      help='skip jnp.sort (seconds per call on a CPU for ResNet-18)',
  )
  args = parser.parse_args(argv)
  rounds = args.rounds or (50 if args.model == 'lenet300' else 7)
  shapes = _shapes(args.model)
  n = sum(int(np.prod(s)) for s in shapes.values())
  k = round(args.sparsity * n)
  key = jax.random.key(0)
  flat = jax.random.normal(key, (n,))
  move = jax.jit(lambda x, key: x + args.step * jax.random.normal(key, x.shape))
  cold = jax.jit(lambda x: _threshold(x, k, rda_optax.threshold_state()))
  warm = jax.jit(lambda x, state: _threshold(x, k, state))
  sort = jax.jit(lambda x: sort_threshold(x, k))
  _, state = jax.block_until_ready(cold(flat))
  jax.block_until_ready(warm(flat, state))
  if not args.no_sort:
    jax.block_until_ready(sort(flat))
  names = ['kth_smallest, cold', 'kth_smallest, warm']
  if not args.no_sort:
    names.append('jnp.sort')
  times = {name: [] for name in names}
  passes = {'kth_smallest, cold': [], 'kth_smallest, warm': []}
  for r in range(rounds):
    flat = jax.block_until_ready(move(flat, jax.random.fold_in(key, r)))
    t0 = time.perf_counter()
    out, cold_state = jax.block_until_ready(cold(flat))
    times['kth_smallest, cold'].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    out_w, state = jax.block_until_ready(warm(flat, state))
    times['kth_smallest, warm'].append(time.perf_counter() - t0)
    passes['kth_smallest, cold'].append(int(cold_state.passes[0]))
    passes['kth_smallest, warm'].append(int(state.passes[0]))
    if not all(map(np.array_equal, out, out_w)):
      raise AssertionError('the warm and cold searches disagree')
    if not args.no_sort:
      t0 = time.perf_counter()
      jax.block_until_ready(sort(flat))
      times['jnp.sort'].append(time.perf_counter() - t0)
  ref = times['kth_smallest, cold']
  print(
      f'Machine: {platform.platform()}, {os.cpu_count()} CPUs, JAX '
      f'{jax.__version__} on {jax.devices()[0].platform}; {n:,} weights '
      f'({args.model} kernels, one array), sparsity {args.sparsity}, median '
      f'of {rounds} alternating rounds, the weights moved by '
      f'{args.step:g}·N(0, 1) between rounds.\n'
  )
  print('| threshold | ms per search | time / cold search | passes |')
  print('|---|---:|---:|---:|')
  for name, t in times.items():
    ratio = statistics.median(a / b for a, b in zip(t, ref))
    p = passes.get(name)
    cell = f'{statistics.median(p):g} (most {max(p)})' if p else '—'
    print(
        f'| {name} | {1e3 * statistics.median(t):.2f} | {ratio:.2f} | '
        f'{cell} |'
    )
  return times, passes


if __name__ == '__main__':
  main()

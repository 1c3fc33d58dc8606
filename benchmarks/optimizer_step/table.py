"""The default table: the step of every method of :mod:`.sgd_family`
against ``optax.sgd(lr, momentum=0.9)``, then the state-memory table.

Columns: the median time per step, its ratio to SGD's in the same round
(median and quartiles over rounds), the optimizer-state bytes per parameter
byte, what XLA's cost analysis of the compiled step says it moves (bytes
accessed per parameter) and its number of fusions (the floor a memory-bound
step cannot go under), and the counting passes of the threshold search of
the last step of each round (median, most).
"""

from __future__ import annotations

import argparse
import statistics

import jax.numpy as jnp

from . import timing
from . import trees
from .memory import print_state_memory
from .sgd_family import optimizers


def _passes(passes) -> str:
  passes = [p for p in passes if p is not None]
  if not passes:
    return ''
  return f'{statistics.median(passes):g}, {max(passes)}'


def main(argv=None):
  """The default table (``--state_only``: the state-memory table alone);
  returns the runs of :func:`.timing.time_steps`."""
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.optimizer_step',
      description=(
          'Optimizer step cost on a ResNet-18-sized parameter tree, against '
          'optax SGD.'
      ),
  )
  parser.add_argument('--rounds', type=int, default=30)
  parser.add_argument(
      '--steps', type=int, default=5, help='steps timed together within a round'
  )
  parser.add_argument(
      '--dtype', default='float32', choices=['float32', 'bfloat16']
  )
  parser.add_argument(
      '--only',
      nargs='*',
      default=None,
      help='substrings of optimizer names to run',
  )
  parser.add_argument(
      '--state_only',
      action='store_true',
      help='print only the optimizer-state memory table (no timing)',
  )
  parser.add_argument(
      '--clock', default='wall', choices=['wall', 'cpu'], help=timing.CLOCK_HELP
  )
  args = parser.parse_args(argv)
  if args.state_only:
    print_state_memory(args.dtype)
    return None
  params0, grads = trees.step_inputs(jnp.dtype(args.dtype))
  n_params = trees.n_params(params0)
  opts = timing.select(optimizers(lr=0.1, lam=1e-6), args.only)
  runs = timing.time_steps(
      opts, params0, grads, args.rounds, args.steps, timing.clock(args.clock)
  )
  print(
      f'{timing.machine()}'
      f'{n_params:,} parameters ({args.dtype}), {args.rounds} rounds × '
      f'{args.steps} steps, {args.clock} clock; ratio = median over rounds '
      f"of the round's time / SGD's time in the same round. Threshold "
      f'passes: counting passes of the last step of each round (median, '
      f'most).\n'
  )
  timing.print_step_table(
      runs,
      params0,
      'optax.sgd(momentum=0.9)',
      'SGD+momentum',
      'threshold passes',
      lambda run: _passes(run['passes']),
  )
  print_state_memory(args.dtype)
  return runs

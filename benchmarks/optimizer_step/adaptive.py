"""``--adaptive``: RAMDA, proximal AdamW and the N:M projection against
``optax.adamw``, and the 2:4 projection of every kernel alone."""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
import optax

import rda_optax

from . import timing
from . import trees


def adaptive_optimizers(lr: float, lam: float):
  """RAMDA, proximal AdamW and the N:M projection, with AdamW first."""
  return {
      'optax.adamw': optax.adamw(lr, weight_decay=1e-4),
      'ramda(None)': rda_optax.ramda(lr, None, momentum=0.9),
      'ramda(l1)': rda_optax.ramda(lr, rda_optax.l1(lam), momentum=0.9),
      'ramda(l1, momentum=0)': rda_optax.ramda(
          lr, rda_optax.l1(lam), momentum=0.0
      ),
      'ramda(nm_constraint(2, 4))': rda_optax.ramda(
          lr, rda_optax.nm_constraint(2, 4), momentum=0.9
      ),
      'ramda(group_lasso)': rda_optax.ramda(
          lr, rda_optax.group_lasso(lam), momentum=0.9
      ),
      "ramda(group_lasso, solver='pgd')": rda_optax.ramda(
          lr, rda_optax.group_lasso(lam), momentum=0.9, solver='pgd'
      ),
      'prox_adamw(group_lasso)': rda_optax.prox_adamw(
          lr, rda_optax.group_lasso(lam)
      ),
      'prox_adamw(l1)': rda_optax.prox_adamw(lr, rda_optax.l1(lam)),
      'rmda(l1, momentum=0.9)': rda_optax.rmda(
          lr, rda_optax.l1(lam), momentum=0.9
      ),
      'rmda(nm_constraint(2, 4))': rda_optax.rmda(
          lr, rda_optax.nm_constraint(2, 4), momentum=0.9
      ),
  }


def _inner_steps(run) -> str:
  """RAMDA's inner steps at the last step (empty for other methods)."""
  inner = getattr(run['carry'][1], 'inner_steps', None)
  return '' if inner is None else str(int(inner))


def adaptive_main(argv=None):
  """RAMDA's step (and the N:M projection's) against ``optax.adamw``."""
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.optimizer_step --adaptive',
      description=adaptive_main.__doc__,
  )
  parser.add_argument('--rounds', type=int, default=20)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--dtype', default='float32')
  parser.add_argument('--only', nargs='*', default=None)
  parser.add_argument(
      '--clock', default='wall', choices=['wall', 'cpu'], help=timing.CLOCK_HELP
  )
  args = parser.parse_args(argv)
  clock = timing.clock(args.clock)
  params0, grads = trees.step_inputs(jnp.dtype(args.dtype))
  n_params = trees.n_params(params0)
  opts = timing.select(adaptive_optimizers(lr=1e-3, lam=1e-6), args.only)
  runs = timing.time_steps(opts, params0, grads, args.rounds, args.steps, clock)

  # The N:M projection alone, over every kernel (ndim > 1) of the tree.
  project = jax.jit(
      lambda t: rda_optax.nm_constraint(2, 4).prox_tree(
          t, rda_optax.default_mask(t), 1.0
      )
  )
  jax.block_until_ready(project(params0))
  proj_times = []
  for _ in range(args.rounds):
    t0 = clock()
    for _ in range(args.steps):
      out = project(params0)
    jax.block_until_ready(out)
    proj_times.append((clock() - t0) / args.steps)

  print(
      f'{timing.machine()}'
      f'{n_params:,} parameters ({args.dtype}), {args.rounds} rounds × '
      f'{args.steps} steps, {args.clock} clock; ratio = median over rounds '
      f"of the round's time / AdamW's time in the same round.\n"
  )
  timing.print_step_table(
      runs,
      params0,
      'optax.adamw',
      'optax.adamw',
      'inner steps (last)',
      _inner_steps,
  )
  ref = runs['optax.adamw']['times']
  adamw_ms = 1e3 * statistics.median(ref)
  proj_ms = 1e3 * statistics.median(proj_times)
  print(
      f'\nThe 2:4 projection of every kernel alone: {proj_ms:.2f} ms '
      f'({proj_ms / adamw_ms:.3f} of an AdamW step).'
  )
  return runs, proj_times

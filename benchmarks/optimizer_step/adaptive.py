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

  # The N:M projection alone, over every kernel (ndim > 1) of the tree:
  # with every group held to 2:4, and in the middle of a ramp of the share
  # of groups (a traced fraction of 0.5: the cheapest half of each kernel's
  # groups constrained).
  def projection(tree, fraction):
    c = rda_optax.nm_constraint(2, 4, fraction=fraction)
    return c.prox_tree(tree, rda_optax.default_mask(tree), 1.0)

  full = jax.jit(lambda tree: projection(tree, 1.0))
  ramp = jax.jit(projection)
  half = jnp.float32(0.5)
  proj_times = _time_projection(
      lambda: full(params0), args.rounds, args.steps, clock
  )
  ramp_times = _time_projection(
      lambda: ramp(params0, half), args.rounds, args.steps, clock
  )

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
  ramp_ms = 1e3 * statistics.median(ramp_times)
  print(
      f'\nThe 2:4 projection of every kernel alone: {proj_ms:.2f} ms '
      f'({proj_ms / adamw_ms:.3f} of an AdamW step); with half of each '
      f"kernel's groups held to 2:4 (a traced fraction=0.5, the middle of "
      f"nm_fraction_schedule's ramp): {ramp_ms:.2f} ms "
      f'({ramp_ms / adamw_ms:.3f}).'
  )
  return runs, proj_times


def _time_projection(project, rounds, steps, clock):
  """Seconds per call of ``project`` (no arguments), one per round."""
  jax.block_until_ready(project())
  return [timing.call_seconds(project, steps, clock) for _ in range(rounds)]

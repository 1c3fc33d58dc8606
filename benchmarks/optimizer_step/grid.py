"""``--grid``: every proximal optimizer with every regularizer, one step's
cost on the ResNet-18-sized tree against ``optax.sgd(momentum=0.9)``.

A map of what a combination costs, to find its cliffs (a regularizer whose
prox takes an inner loop, a path that writes to new memory), not a
comparison to the tenth: each cell is the median of ``--rounds`` rounds of
``--steps`` steps after one warm-up step, SGD timed before each optimizer's
row; ratios are to that SGD time::

    python -m benchmarks.optimizer_step --grid
    python -m benchmarks.optimizer_step --grid --only rmda --regularizers l1 tl1
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
import optax

import rda_optax

from . import timing
from . import trees

LAM = 1e-6

REGULARIZERS = {
    'l1': lambda: rda_optax.l1(LAM),
    'l0': lambda: rda_optax.l0(LAM),
    'transformed_l1': lambda: rda_optax.transformed_l1(LAM),
    'transformed_l1+group': lambda: rda_optax.transformed_l1(
        LAM, group_strength=LAM
    ),
    'transformed_l1+group, composition': lambda: rda_optax.transformed_l1(
        LAM, group_strength=LAM, group_prox='composition'
    ),
    'group_lasso': lambda: rda_optax.group_lasso(LAM),
    'sparse_group_lasso': lambda: rda_optax.sparse_group_lasso(LAM, LAM),
    'sparsity_constraint(0.9)': lambda: rda_optax.sparsity_constraint(0.9),
    'sparsity_constraint(0.9, layer)': lambda: rda_optax.sparsity_constraint(
        0.9, scope='layer'
    ),
    'nm_constraint(2, 4)': lambda: rda_optax.nm_constraint(2, 4),
}

OPTIMIZERS = {
    'rda': lambda r: rda_optax.rda(gamma=1.0, regularizer=r),
    'prox_sgd': lambda r: rda_optax.prox_sgd(0.1, r, momentum=0.9),
    'rmda': lambda r: rda_optax.rmda(0.1, r, momentum=0.9),
    'ramda': lambda r: rda_optax.ramda(1e-3, r, momentum=0.9),
    'prox_adamw': lambda r: rda_optax.prox_adamw(1e-3, r),
}


def _step_seconds(opt, params0, grads, rounds, steps, clock):
  """Median seconds per step of ``opt``'s donated, jitted step."""

  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step, donate_argnums=(0, 1))
  params = jax.tree.map(jnp.copy, params0)
  params, state = step(params, opt.init(params), grads)  # Compile, warm up.
  jax.block_until_ready(params)
  times = []
  for _ in range(rounds):
    t0 = clock()
    for _ in range(steps):
      params, state = step(params, state, grads)
    jax.block_until_ready((params, state))
    times.append((clock() - t0) / steps)
  return statistics.median(times)


def grid_main(argv=None):
  """The step of every optimizer with every regularizer, as a ratio to
  SGD's (see the module)."""
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.optimizer_step --grid',
      description=grid_main.__doc__,
  )
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=1)
  parser.add_argument(
      '--only', nargs='*', default=None, help='optimizers (names)'
  )
  parser.add_argument(
      '--regularizers', nargs='*', default=None, help='regularizers (names)'
  )
  parser.add_argument(
      '--clock', default='wall', choices=['wall', 'cpu'], help=timing.CLOCK_HELP
  )
  args = parser.parse_args(argv)
  for given, known in (
      (args.only, OPTIMIZERS),
      (args.regularizers, REGULARIZERS),
  ):
    unknown = sorted(set(given or ()) - set(known))
    if unknown:
      raise SystemExit(
          f'unknown name(s) {unknown}: choose among {sorted(known)}.'
      )
  clock = timing.clock(args.clock)
  params0, grads = trees.step_inputs(jnp.float32)
  opt_names = args.only or list(OPTIMIZERS)
  reg_names = args.regularizers or list(REGULARIZERS)
  print(
      f'{timing.machine()}{trees.n_params(params0):,} parameters (float32), '
      f'{args.rounds} rounds × {args.steps} steps, {args.clock} clock; '
      'ratio of the median step to optax.sgd(momentum=0.9), timed before '
      "each optimizer's row (λ = 1e-6).\n"
  )
  print('| optimizer | SGD ms | ' + ' | '.join(reg_names) + ' |')
  print('|---|---:|' + '---:|' * len(reg_names))
  table = {}
  for name in opt_names:
    sgd = _step_seconds(
        optax.sgd(0.1, momentum=0.9),
        params0,
        grads,
        args.rounds,
        args.steps,
        clock,
    )
    row = {
        reg: _step_seconds(
            OPTIMIZERS[name](REGULARIZERS[reg]()),
            params0,
            grads,
            args.rounds,
            args.steps,
            clock,
        )
        / sgd
        for reg in reg_names
    }
    table[name] = row
    cells = ' | '.join(f'{row[r]:,.2f}' for r in reg_names)
    print(f'| {name} | {1e3 * sgd:.2f} | {cells} |', flush=True)
  return table

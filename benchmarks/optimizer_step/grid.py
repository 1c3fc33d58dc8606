"""``--grid``: every proximal optimizer with every regularizer, one step's
cost on the ResNet-18-sized tree against ``optax.sgd(momentum=0.9)``.

A map of what a combination costs, to find its cliffs (a regularizer whose
prox takes an inner loop, a path that writes to new memory), not a
comparison to the tenth: each cell is the median over ``--rounds`` rounds of
``--steps`` steps (after one warm-up step) of the step's time over SGD's in
the same round; the ``SGD ms`` column is the median of a row's SGD times::

    python -m benchmarks.optimizer_step --grid
    python -m benchmarks.optimizer_step --grid --only rmda --regularizers l1 tl1
"""

from __future__ import annotations

import argparse
import statistics

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


def _ratio(opt, params0, grads, rounds, steps, clock):
  """Median over rounds of ``opt``'s step time over SGD's in the same round
  (:func:`.timing.time_steps`: donated, jitted steps after a warm-up), and
  SGD's median seconds."""
  sgd = 'optax.sgd(momentum=0.9)'
  runs = timing.time_steps(
      {sgd: optax.sgd(0.1, momentum=0.9), 'opt': opt},
      params0,
      grads,
      rounds,
      steps,
      clock,
  )
  ref = runs[sgd]['times']
  ratios = [t / r for t, r in zip(runs['opt']['times'], ref)]
  return statistics.median(ratios), statistics.median(ref)


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
      "median over rounds of the step time / optax.sgd(momentum=0.9)'s in "
      'the same round (λ = 1e-6).\n'
  )
  print('| optimizer | SGD ms | ' + ' | '.join(reg_names) + ' |')
  print('|---|---:|' + '---:|' * len(reg_names))
  table = {}
  for name in opt_names:
    cells = {
        reg: _ratio(
            OPTIMIZERS[name](REGULARIZERS[reg]()),
            params0,
            grads,
            args.rounds,
            args.steps,
            clock,
        )
        for reg in reg_names
    }
    table[name] = {reg: ratio for reg, (ratio, _) in cells.items()}
    sgd_ms = 1e3 * statistics.median(sgd for _, sgd in cells.values())
    row = ' | '.join(f'{table[name][r]:,.2f}' for r in reg_names)
    print(f'| {name} | {sgd_ms:.2f} | {row} |', flush=True)
  return table

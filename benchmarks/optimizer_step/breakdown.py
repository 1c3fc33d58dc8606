"""``--breakdown``: where the time of an ``rmda(sparsity_constraint(0.95))``
step goes. The step with its threshold known (:class:`KnownLevelConstraint`,
no search), the threshold search alone (warm, one pass), and the whole step,
each against SGD with momentum in the same rounds."""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import rda_optax
from rda_optax.rda import opaque_zero
from rda_optax.rda import pinned_dual_point

from . import timing
from . import trees


class KnownLevelConstraint(rda_optax.SparsityConstraint):
  """``sparsity_constraint`` with its threshold given, not searched: the
  level kept in the state (the last step's), ties by a position that takes
  them all. Everything but the search (the dual point recomputed in the
  loop that writes the parameters, the masks, the interpolation), for the
  breakdown."""

  def prox_tree_with_state(self, tree, selected, t, count, state):
    del t, count
    leaves, treedef = jax.tree.flatten(tree)
    chosen = [i for i, b in enumerate(treedef.flatten_up_to(selected)) if b]
    xs = [leaves[i] for i in chosen]
    flat = rda_optax.threshold.flatten(xs)
    value = jnp.where(jnp.isnan(state.value[0]), 0.1, state.value[0])
    split = rda_optax.ThresholdSplit(
        value.astype(flat.dtype), state.rank[0] + flat.size, jnp.bool_(False)
    )
    (pruned,) = rda_optax.smallest_masks([flat], split, magnitude=True)
    out = jnp.where(pruned, jnp.zeros((), flat.dtype), flat)
    views = rda_optax.threshold.flat_view(out, [x.shape for x in xs])
    for i, y in zip(chosen, views):
      leaves[i] = y
    return treedef.unflatten(leaves), state._replace(rank=state.rank + 1)

  def prox_computed(
      self, operands, compute, args, zero, count, state, index=None
  ):
    # As the optimizers call it: the dual point recomputed, never written.
    del count, index
    xs = [compute(ops, args, zero) for ops in operands]
    value = jnp.where(jnp.isnan(state.value[0]), 0.1, state.value[0])
    n = sum(x.size for x in xs)
    split = rda_optax.ThresholdSplit(
        value.astype(xs[0].dtype), state.rank[0] + n, jnp.bool_(False)
    )
    pruned = rda_optax.smallest_masks(xs, split, magnitude=True)
    out = [jnp.where(m, jnp.zeros((), x.dtype), x) for m, x in zip(pruned, xs)]
    return out, state._replace(rank=state.rank + 1)


def breakdown_main(argv=None):
  """Where the time of an ``rmda(sparsity_constraint(0.95))`` step goes:
  the step with its threshold known (no search), the search alone (warm,
  on the kernels' dual points recomputed in each pass, as the step
  does), and the whole
  step, each against SGD with momentum in the same rounds."""
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.optimizer_step --breakdown',
      description=breakdown_main.__doc__,
  )
  parser.add_argument('--rounds', type=int, default=15)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument(
      '--clock', default='cpu', choices=['wall', 'cpu'], help=timing.CLOCK_HELP
  )
  args = parser.parse_args(argv)
  clock = timing.clock(args.clock)
  params0, grads = trees.step_inputs(jnp.float32)
  lr = 0.1
  opts = {
      'optax.sgd(momentum=0.9)': optax.sgd(lr, momentum=0.9),
      'rmda(l1, momentum=0.9)': rda_optax.rmda(
          lr, rda_optax.l1(1e-6), momentum=0.9
      ),
      'rmda(constraint), level known (no search)': rda_optax.rmda(
          lr, KnownLevelConstraint(0.95), momentum=0.9
      ),
      'rmda(sparsity_constraint(0.95))': rda_optax.rmda(
          lr, rda_optax.sparsity_constraint(0.95), momentum=0.9
      ),
  }
  runs = timing.time_steps(opts, params0, grads, 1, 1)
  # As the step searches: the dual point w0 - G/β of each kernel, recomputed
  # from w0 and G in each pass.
  operands = [
      (w, g)
      for w, g in zip(jax.tree.leaves(params0), jax.tree.leaves(grads))
      if w.ndim > 1
  ]
  k = round(0.95 * sum(w.size for w, _ in operands))
  search = jax.jit(
      lambda ops, st: rda_optax.kth_smallest(
          ops,
          k,
          state=st,
          magnitude=True,
          compute=pinned_dual_point,
          args=(jnp.float32(0.5),),
          zero=opaque_zero(st.rank[0]),
      )
  )
  _, state = search(operands, rda_optax.threshold_state())
  # A state that predicts this very input (drift 0): one pass.
  state = state._replace(
      drift=jnp.zeros(1), accel=jnp.zeros(1), error=jnp.zeros(1)
  )
  jax.block_until_ready(search(operands, state))
  timed = {name: [] for name in runs}
  timed['the search alone (warm, 1 pass)'] = []
  for _ in range(args.rounds):
    for name, run in runs.items():
      params, st = run['carry']
      t0 = clock()
      for _ in range(args.steps):
        params, st = run['step'](params, st, grads)
      jax.block_until_ready((params, st))
      timed[name].append((clock() - t0) / args.steps)
      run['carry'] = (params, st)
    timed['the search alone (warm, 1 pass)'].append(
        timing.call_seconds(lambda: search(operands, state), args.steps, clock)
    )
  ref = timed['optax.sgd(momentum=0.9)']
  print(
      f'{timing.machine()}'
      f'{args.rounds} rounds × {args.steps} steps, {args.clock} clock; '
      f"ratio = median over rounds of the time / SGD's in the same round."
      '\n'
  )
  print('| part | ms (median) | ratio to SGD+momentum | ratio, quartiles |')
  print('|---|---:|---:|---:|')
  for name, t in timed.items():
    print(f'| {name} | {timing.ratio_cells(t, ref)} |')
  return timed

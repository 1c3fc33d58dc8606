"""Optimizer step cost on a ResNet-18-sized parameter tree, against optax SGD.

Times one jitted ``update + apply_updates`` (parameters and state donated,
as in a real train step) for each optimizer, alternating the optimizers
within each round so that machine noise hits them alike, and reports the
median time per step, the ratio to ``optax.sgd(lr, momentum=0.9)``, the
optimizer-state bytes per parameter byte, and what XLA's cost analysis of the
compiled step says it moves: bytes accessed per parameter and the number of
fusions (the floor a memory-bound step cannot go under).

    python benchmarks/optimizer_step.py            # CPU here, GPU if present
    python benchmarks/optimizer_step.py --rounds 40 --steps 10 --dtype bfloat16
    python benchmarks/optimizer_step.py --adaptive   # RAMDA against AdamW
    python benchmarks/optimizer_step.py --state_only   # state memory only
    python benchmarks/optimizer_step.py --only sparsity --clock cpu
    python benchmarks/optimizer_step.py --breakdown   # where its time goes

The two ``sparsity_constraint`` rows compare the projection's threshold
search started from the last step's threshold (the library's) with the
same search started cold at every step; the last column gives the counting
passes each took.

A second table gives the optimizer-state memory of every method (and of
``optax.adam``): bytes per parameter, from ``jax.eval_shape``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rda_optax
from rda_optax.rda import opaque_zero
from rda_optax.rda import pinned_dual_point


def resnet18_shapes(num_classes: int = 10) -> dict[str, tuple[int, ...]]:
  """Parameter shapes of ResNet-18 with a CIFAR stem (11,173,962 params)."""
  shapes = {
      'conv1/kernel': (3, 3, 3, 64),
      'bn1/scale': (64,),
      'bn1/bias': (64,),
  }
  c_in = 64
  for stage, c in enumerate((64, 128, 256, 512), start=1):
    for block in range(2):
      name = f'layer{stage}_block{block}'
      first_in = c_in if block == 0 else c
      shapes[f'{name}/conv1/kernel'] = (3, 3, first_in, c)
      shapes[f'{name}/conv2/kernel'] = (3, 3, c, c)
      for bn in ('bn1', 'bn2'):
        shapes[f'{name}/{bn}/scale'] = (c,)
        shapes[f'{name}/{bn}/bias'] = (c,)
      if block == 0 and first_in != c:
        shapes[f'{name}/shortcut/kernel'] = (1, 1, first_in, c)
        shapes[f'{name}/shortcut_bn/scale'] = (c,)
        shapes[f'{name}/shortcut_bn/bias'] = (c,)
    c_in = c
  shapes['fc/kernel'] = (512, num_classes)
  shapes['fc/bias'] = (num_classes,)
  return shapes


def make_tree(shapes, dtype, seed):
  keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
  return {
      name: (0.05 * jax.random.normal(k, s)).astype(dtype)
      for k, (name, s) in zip(keys, shapes.items())
  }


def tree_bytes(tree) -> int:
  return sum(x.nbytes for x in jax.tree.leaves(tree))


class ColdSparsityConstraint(rda_optax.SparsityConstraint):
  """``sparsity_constraint`` whose threshold search starts cold at every
  step (its state is never carried over): the same projection, for
  comparison."""

  def prox_tree_with_state(self, tree, selected, t, count, state):
    return super().prox_tree_with_state(
        tree,
        selected,
        t,
        count,
        rda_optax.threshold_state(state.value.shape[0]),
    )

  def prox_computed(
      self, operands, compute, args, zero, count, state, index=None
  ):
    return super().prox_computed(
        operands,
        compute,
        args,
        zero,
        count,
        rda_optax.threshold_state(state.value.shape[0]),
        index,
    )


def optimizers(lr: float, lam: float):
  return {
      'optax.sgd(momentum=0.9)': optax.sgd(lr, momentum=0.9),
      'rda(l1)': rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(lam)),
      'prox_sgd(l1, momentum=0.9)': rda_optax.prox_sgd(
          lr, rda_optax.l1(lam), momentum=0.9
      ),
      'rda(group_lasso)': rda_optax.rda(
          gamma=1.0, regularizer=rda_optax.group_lasso(lam)
      ),
      'asr(rda(l1))': rda_optax.asr(
          rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(lam))
      ),
      'rmda(l1, momentum=0.9)': rda_optax.rmda(
          lr, rda_optax.l1(lam), momentum=0.9
      ),
      'rmda(l1, momentum=0)': rda_optax.rmda(
          lr, rda_optax.l1(lam), momentum=0.0
      ),
      'rmda(sparsity_constraint(0.95))': rda_optax.rmda(
          lr, rda_optax.sparsity_constraint(0.95), momentum=0.9
      ),
      'rmda(sparsity_constraint(0.95)), cold search': rda_optax.rmda(
          lr, ColdSparsityConstraint(0.95), momentum=0.9
      ),
  }


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
  parser = argparse.ArgumentParser(description=breakdown_main.__doc__)
  parser.add_argument('--rounds', type=int, default=15)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--clock', default='cpu', choices=['wall', 'cpu'])
  args = parser.parse_args(argv)
  clock = time.perf_counter if args.clock == 'wall' else time.process_time
  shapes = resnet18_shapes()
  params0 = make_tree(shapes, jnp.float32, 0)
  grads = make_tree(shapes, jnp.float32, 1)
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
  runs = _time_steps(opts, params0, grads, 1, 1)
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
    t0 = clock()
    for _ in range(args.steps):
      out = search(operands, state)
    jax.block_until_ready(out)
    timed['the search alone (warm, 1 pass)'].append((clock() - t0) / args.steps)
  ref = timed['optax.sgd(momentum=0.9)']
  dev = jax.devices()[0]
  print(
      f'Machine: {platform.platform()}, {os.cpu_count()} CPUs, '
      f'JAX {jax.__version__} on {dev.platform} ({dev.device_kind}); '
      f'{args.rounds} rounds × {args.steps} steps, {args.clock} clock; '
      f"ratio = median over rounds of the time / SGD's in the same round."
      '\n'
  )
  print('| part | ms (median) | ratio to SGD+momentum | ratio, quartiles |')
  print('|---|---:|---:|---:|')
  for name, t in timed.items():
    ratios = [a / b for a, b in zip(t, ref)]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(
        f'| {name} | {1e3 * statistics.median(t):.2f} | '
        f'{statistics.median(ratios):.3f} | {q1:.2f} – {q3:.2f} |'
    )
  return timed


def threshold_passes(state) -> int | None:
  """Counting passes of the last threshold search in ``state`` (the most
  over its groups), None without one."""
  is_state = lambda x: isinstance(x, rda_optax.ThresholdState)
  found = [x for x in jax.tree.leaves(state, is_leaf=is_state) if is_state(x)]
  if not found:
    return None
  return max(int(np.max(np.asarray(x.passes))) for x in found)


def _passes(passes) -> str:
  passes = [p for p in passes if p is not None]
  if not passes:
    return ''
  return f'{statistics.median(passes):g}, {max(passes)}'


def state_memory(
    dtype: str = 'float32', lr: float = 0.1, lam: float = 1e-6
) -> dict[str, dict[str, float]]:
  """Optimizer-state memory of every method of the table, and of
  ``optax.sgd(momentum=0.9)`` and ``optax.adam`` as references.

  Measured on the ResNet-18-sized tree with :func:`jax.eval_shape` (nothing
  is allocated or run): for each optimizer, the state's bytes per parameter,
  per parameter byte, and parameters + state as a multiple of the
  parameters (the memory a training step holds besides activations).
  """
  shapes = resnet18_shapes()
  params = {
      name: jax.ShapeDtypeStruct(s, jnp.dtype(dtype))
      for name, s in shapes.items()
  }
  n_params = sum(int(np.prod(s)) for s in shapes.values())
  param_bytes = n_params * jnp.dtype(dtype).itemsize
  opts = dict(optimizers(lr=lr, lam=lam))
  opts['optax.adam'] = optax.adam(1e-3)
  rows = {}
  for name, opt in opts.items():
    state = jax.eval_shape(opt.init, params)
    nbytes = sum(
        int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize
        for x in jax.tree.leaves(state)
    )
    rows[name] = dict(
        bytes_per_param=nbytes / n_params,
        per_param_byte=nbytes / param_bytes,
        with_params=(nbytes + param_bytes) / param_bytes,
    )
  return rows


def print_state_memory(dtype: str = 'float32') -> None:
  rows = state_memory(dtype)
  print(
      f'\nOptimizer state on the ResNet-18-sized tree ({dtype} parameters; '
      'jax.eval_shape of init):\n'
  )
  print(
      '| optimizer | state bytes / param | state / params | '
      '(params + state) / params |'
  )
  print('|---|---:|---:|---:|')
  for name, r in rows.items():
    print(
        f'| {name} | {r["bytes_per_param"]:.2f} | {r["per_param_byte"]:.2f} '
        f'| {r["with_params"]:.2f} |'
    )


def compiled_cost(step, params, state, grads) -> tuple[float, int]:
  """Bytes accessed (XLA's cost analysis) and fusion count of the step."""
  compiled = step.lower(params, state, grads).compile()
  cost = compiled.cost_analysis()  # A dict since JAX 0.4.30 (we need 0.6).
  text = compiled.as_text() or ''
  fusions = sum(
      1
      for line in text.splitlines()
      if ' fusion(' in line
      and not line.lstrip().startswith('ROOT')
      and '= ' in line
      and not line.startswith('  %fused')
  )
  return float((cost or {}).get('bytes accessed', float('nan'))), fusions


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
      '--clock',
      default='wall',
      choices=['wall', 'cpu'],
      help='wall: elapsed time; cpu: CPU time of this process (all its '
      'threads), less disturbed by other processes on a shared machine',
  )
  args = parser.parse_args(argv)
  clock = time.perf_counter if args.clock == 'wall' else time.process_time
  if args.state_only:
    print_state_memory(args.dtype)
    return None
  dtype = jnp.dtype(args.dtype)
  shapes = resnet18_shapes()
  params0 = make_tree(shapes, dtype, 0)
  grads = make_tree(shapes, dtype, 1)
  n_params = sum(int(np.prod(s)) for s in shapes.values())
  opts = optimizers(lr=0.1, lam=1e-6)
  if args.only:
    opts = {
        k: v
        for k, v in opts.items()
        if k.startswith('optax') or any(o in k for o in args.only)
    }

  runs = {}
  for name, opt in opts.items():

    def step(params, state, grads, opt=opt):
      updates, state = opt.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    params = jax.tree.map(jnp.copy, params0)
    state = opt.init(params)
    state_bytes = tree_bytes(state)
    moved, fusions = compiled_cost(step, params, state, grads)
    params, state = step(params, state, grads)  # Compile + warm up.
    jax.block_until_ready(params)
    runs[name] = dict(
        step=step,
        carry=(params, state),
        times=[],
        passes=[],
        state_bytes=state_bytes,
        moved=moved,
        fusions=fusions,
    )

  for _ in range(args.rounds):
    for name, run in runs.items():  # Alternate optimizers within a round.
      params, state = run['carry']
      t0 = clock()
      for _ in range(args.steps):
        params, state = run['step'](params, state, grads)
      jax.block_until_ready((params, state))
      run['times'].append((clock() - t0) / args.steps)
      run['carry'] = (params, state)
      run['passes'].append(threshold_passes(state))

  ref_times = runs['optax.sgd(momentum=0.9)']['times']
  param_bytes = tree_bytes(params0)
  dev = jax.devices()[0]
  print(
      f'Machine: {platform.platform()}, {os.cpu_count()} CPUs, '
      f'JAX {jax.__version__} on {dev.platform} ({dev.device_kind}); '
      f'{n_params:,} parameters ({args.dtype}), {args.rounds} rounds × '
      f'{args.steps} steps, {args.clock} clock; ratio = median over rounds '
      f"of the round's time / SGD's time in the same round. Threshold "
      f'passes: counting passes of the last step of each round (median, '
      f'most).\n'
  )
  print(
      '| optimizer | ms / step (median) | ratio to SGD+momentum (median) | '
      'ratio, quartiles | state bytes / param byte | '
      'bytes accessed / param (XLA) | fusions | threshold passes |'
  )
  print('|---|---:|---:|---:|---:|---:|---:|---:|')
  for name, run in runs.items():
    ratios = [t / r for t, r in zip(run['times'], ref_times)]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(
        f'| {name} | {1e3 * statistics.median(run["times"]):.2f} | '
        f'{statistics.median(ratios):.3f} | {q1:.2f} – {q3:.2f} | '
        f'{run["state_bytes"] / param_bytes:.2f} | '
        f'{run["moved"] / n_params:.1f} | {run["fusions"]} | '
        f'{_passes(run["passes"])} |'
    )
  print_state_memory(args.dtype)
  return runs


# ---------------------------------------------------------------------------
# Adaptive proximal methods against optax.adamw (a separate entry point:
# python benchmarks/optimizer_step.py --adaptive).


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
      'prox_adamw(l1)': rda_optax.prox_adamw(lr, rda_optax.l1(lam)),
      'rmda(l1, momentum=0.9)': rda_optax.rmda(
          lr, rda_optax.l1(lam), momentum=0.9
      ),
      'rmda(nm_constraint(2, 4))': rda_optax.rmda(
          lr, rda_optax.nm_constraint(2, 4), momentum=0.9
      ),
  }


def _time_steps(opts, params0, grads, rounds, steps, clock=time.perf_counter):
  """Median-of-rounds timing of each optimizer's donated, jitted step,
  the optimizers alternating within each round."""
  runs = {}
  for name, opt in opts.items():

    def step(params, state, grads, opt=opt):
      updates, state = opt.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    params = jax.tree.map(jnp.copy, params0)
    state = opt.init(params)
    moved, fusions = compiled_cost(step, params, state, grads)
    runs[name] = dict(
        step=step, state_bytes=tree_bytes(state), moved=moved, fusions=fusions
    )
    params, state = step(params, state, grads)
    jax.block_until_ready(params)
    runs[name].update(carry=(params, state), times=[])
  for _ in range(rounds):
    for run in runs.values():
      params, state = run['carry']
      t0 = clock()
      for _ in range(steps):
        params, state = run['step'](params, state, grads)
      jax.block_until_ready((params, state))
      run['times'].append((clock() - t0) / steps)
      run['carry'] = (params, state)
  return runs


def adaptive_main(argv=None):
  """RAMDA's step (and the N:M projection's) against ``optax.adamw``."""
  parser = argparse.ArgumentParser(description=adaptive_main.__doc__)
  parser.add_argument('--rounds', type=int, default=20)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--dtype', default='float32')
  parser.add_argument('--only', nargs='*', default=None)
  parser.add_argument(
      '--clock',
      default='wall',
      choices=['wall', 'cpu'],
      help='wall: elapsed time; cpu: CPU time of this process (all its '
      'threads), less disturbed by other processes on a shared machine',
  )
  args = parser.parse_args(argv)
  clock = time.perf_counter if args.clock == 'wall' else time.process_time
  shapes = resnet18_shapes()
  dtype = jnp.dtype(args.dtype)
  params0 = make_tree(shapes, dtype, 0)
  grads = make_tree(shapes, dtype, 1)
  n_params = sum(int(np.prod(s)) for s in shapes.values())
  opts = adaptive_optimizers(lr=1e-3, lam=1e-6)
  if args.only:
    opts = {
        k: v
        for k, v in opts.items()
        if k.startswith('optax') or any(o in k for o in args.only)
    }
  runs = _time_steps(opts, params0, grads, args.rounds, args.steps, clock)

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

  ref = runs['optax.adamw']['times']
  param_bytes = tree_bytes(params0)
  dev = jax.devices()[0]
  print(
      f'Machine: {platform.platform()}, {os.cpu_count()} CPUs, '
      f'JAX {jax.__version__} on {dev.platform} ({dev.device_kind}); '
      f'{n_params:,} parameters ({args.dtype}), {args.rounds} rounds × '
      f'{args.steps} steps, {args.clock} clock; ratio = median over rounds '
      f"of the round's time / AdamW's time in the same round.\n"
  )
  print(
      '| optimizer | ms / step (median) | ratio to optax.adamw (median) | '
      'ratio, quartiles | state bytes / param byte | '
      'bytes accessed / param (XLA) | fusions | inner steps (last) |'
  )
  print('|---|---:|---:|---:|---:|---:|---:|---:|')
  for name, run in runs.items():
    ratios = [t / r for t, r in zip(run['times'], ref)]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    inner = getattr(run['carry'][1], 'inner_steps', None)
    print(
        f'| {name} | {1e3 * statistics.median(run["times"]):.2f} | '
        f'{statistics.median(ratios):.3f} | {q1:.2f} – {q3:.2f} | '
        f'{run["state_bytes"] / param_bytes:.2f} | '
        f'{run["moved"] / n_params:.1f} | {run["fusions"]} | '
        f'{"" if inner is None else int(inner)} |'
    )
  adamw_ms = 1e3 * statistics.median(ref)
  proj_ms = 1e3 * statistics.median(proj_times)
  print(
      f'\nThe 2:4 projection of every kernel alone: {proj_ms:.2f} ms '
      f'({proj_ms / adamw_ms:.3f} of an AdamW step).'
  )
  return runs, proj_times


if __name__ == '__main__':
  if '--adaptive' in sys.argv[1:]:
    adaptive_main([a for a in sys.argv[1:] if a != '--adaptive'])
  elif '--breakdown' in sys.argv[1:]:
    breakdown_main([a for a in sys.argv[1:] if a != '--breakdown'])
  else:
    main()

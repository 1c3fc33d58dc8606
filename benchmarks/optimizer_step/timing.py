"""What the modes share: the timing loop (each optimizer's donated, jitted
step, the optimizers alternating within each round), XLA's cost of a
compiled step, the threshold search's passes, the clock, the ``--only``
filter, the machine line and the table of the steps."""

from __future__ import annotations

import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rda_optax

from . import trees

CLOCK_HELP = (
    'wall: elapsed time; cpu: CPU time of this process (all its '
    'threads), less disturbed by other processes on a shared machine'
)


def clock(name: str):
  """``time.perf_counter`` for ``"wall"``, ``time.process_time`` for
  ``"cpu"``."""
  return time.perf_counter if name == 'wall' else time.process_time


def select(opts: dict, only) -> dict:
  """The optimizers whose names contain one of the substrings ``only`` (all
  when it is empty), and the references (``optax...``) always."""
  if not only:
    return opts
  return {
      k: v
      for k, v in opts.items()
      if k.startswith('optax') or any(o in k for o in only)
  }


def machine() -> str:
  """The machine line's start: platform, CPUs, JAX and its device."""
  dev = jax.devices()[0]
  return (
      f'Machine: {platform.platform()}, {os.cpu_count()} CPUs, '
      f'JAX {jax.__version__} on {dev.platform} ({dev.device_kind}); '
  )


def ratio_cells(times, ref) -> str:
  """``ms (median) | ratio (median) | quartiles of the ratio`` of ``times``
  against ``ref``'s, round by round."""
  ratios = [t / r for t, r in zip(times, ref)]
  q1, _, q3 = statistics.quantiles(ratios, n=4)
  return (
      f'{1e3 * statistics.median(times):.2f} | '
      f'{statistics.median(ratios):.3f} | {q1:.2f} – {q3:.2f}'
  )


def print_step_table(
    runs, params, ref: str, ref_label: str, last_column: str, last_cell
) -> None:
  """The table of :func:`time_steps`' ``runs`` on ``params``: a row per
  optimizer, its time against ``runs[ref]``'s round by round, its state and
  XLA's cost of its step (per parameter byte, per parameter), and
  ``last_cell(run)`` under ``last_column``."""
  ref_times = runs[ref]['times']
  n_params = trees.n_params(params)
  param_bytes = trees.tree_bytes(params)
  print(
      f'| optimizer | ms / step (median) | ratio to {ref_label} (median) | '
      'ratio, quartiles | state bytes / param byte | '
      f'bytes accessed / param (XLA) | fusions | {last_column} |'
  )
  print('|---|---:|---:|---:|---:|---:|---:|---:|')
  for name, run in runs.items():
    print(
        f'| {name} | {ratio_cells(run["times"], ref_times)} | '
        f'{run["state_bytes"] / param_bytes:.2f} | '
        f'{run["moved"] / n_params:.1f} | {run["fusions"]} | '
        f'{last_cell(run)} |'
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


def threshold_passes(state) -> int | None:
  """Counting passes of the last threshold search in ``state`` (the most
  over its groups), None without one."""
  is_state = lambda x: isinstance(x, rda_optax.ThresholdState)
  found = [x for x in jax.tree.leaves(state, is_leaf=is_state) if is_state(x)]
  if not found:
    return None
  return max(int(np.max(np.asarray(x.passes))) for x in found)


def call_seconds(fn, steps, clock=time.perf_counter) -> float:
  """Seconds per call of ``fn`` (no arguments), over ``steps`` calls timed
  together (one round), its last output waited for."""
  t0 = clock()
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return (clock() - t0) / steps


def time_steps(opts, params0, grads, rounds, steps, clock=time.perf_counter):
  """Median-of-rounds timing of each optimizer's donated, jitted step,
  the optimizers alternating within each round (so that machine noise hits
  them alike).

  Returns, by optimizer name: ``step`` (the jitted step), ``carry`` (the
  last parameters and state), ``times`` (seconds per step, one per round),
  ``passes`` (:func:`threshold_passes` after each round, outside the timed
  steps), ``state_bytes``, and ``moved`` and ``fusions`` from
  :func:`compiled_cost`.
  """
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
        step=step,
        state_bytes=trees.tree_bytes(state),
        moved=moved,
        fusions=fusions,
    )
    params, state = step(params, state, grads)  # Compile + warm up.
    jax.block_until_ready(params)
    runs[name].update(carry=(params, state), times=[], passes=[])
  for _ in range(rounds):
    for run in runs.values():  # Alternate optimizers within a round.
      params, state = run['carry']
      t0 = clock()
      for _ in range(steps):
        params, state = run['step'](params, state, grads)
      jax.block_until_ready((params, state))
      run['times'].append((clock() - t0) / steps)
      run['carry'] = (params, state)
      run['passes'].append(threshold_passes(state))
  return runs

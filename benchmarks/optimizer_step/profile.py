"""``--profile``: the timeline of one optimizer step, from JAX's profiler.

Runs the donated, jitted step of one optimizer (on the ResNet-18-sized
tree) under :func:`jax.profiler.trace`, then prints the operations XLA ran
in one step, in order: when each started (ms from the step's first
operation), how long it ran, on which thread, and its name (the fusions'
names as in the optimized HLO). On a CPU this shows the passes of a step
(for ``rmda(sparsity_constraint(0.95))``: the loops that write ``G``, the
counting loop of the threshold search, its last step, the loops that write
the parameters) and what each costs::

    python -m benchmarks.optimizer_step --profile                 # constraint
    python -m benchmarks.optimizer_step --profile --method sgd --min_ms 0.05

Times under the profiler are a little longer than without it; the step
times of the tables come from the other modes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import optax

import rda_optax

from . import timing
from . import trees
from .breakdown import KnownLevelConstraint

METHODS = {
    'constraint': lambda: rda_optax.rmda(
        0.1, rda_optax.sparsity_constraint(0.95), momentum=0.9
    ),
    'known': lambda: rda_optax.rmda(
        0.1, KnownLevelConstraint(0.95), momentum=0.9
    ),
    'l1': lambda: rda_optax.rmda(0.1, rda_optax.l1(1e-6), momentum=0.9),
    'group_lasso': lambda: rda_optax.rmda(
        0.1, rda_optax.group_lasso(1e-6), momentum=0.9
    ),
    'transformed_l1': lambda: rda_optax.rmda(
        0.1, rda_optax.transformed_l1(1e-6), momentum=0.9
    ),
    'sgd': lambda: optax.sgd(0.1, momentum=0.9),
}


def step_events(events: list[dict], step: int) -> list[dict]:
  """The complete events (``ph == "X"``) of the ``step``-th step: those
  between the launches of the ``step``-th and the next step (PjRt's
  ``ExecuteHelperOnSingleDevice``, once per call; the loop waits for each
  step), less the host's own and the executor's."""
  xs = sorted((e for e in events if e.get('ph') == 'X'), key=lambda e: e['ts'])
  starts = [e['ts'] for e in xs if e['name'].endswith('OnSingleDevice')]
  if len(starts) <= step + 1:
    raise RuntimeError(
        f'the trace holds {len(starts)} launches of the step, not '
        f'{step + 2}: run more steps (--steps).'
    )
  t0, t1 = starts[step], starts[step + 1]
  host = (
      'ThunkExecutor',
      'Pjit',
      'PjRt',
      'CommonPjRt',
      'Parse',
      'Handle',
      '$',
      'Threadpool',
      'end:',
  )
  return [
      e for e in xs if t0 <= e['ts'] < t1 and not e['name'].startswith(host)
  ]


def profile_main(argv=None):
  """The timeline of one step of one optimizer (see the module)."""
  parser = argparse.ArgumentParser(description=profile_main.__doc__)
  parser.add_argument('--method', default='constraint', choices=list(METHODS))
  parser.add_argument('--steps', type=int, default=12)
  parser.add_argument(
      '--min_ms', type=float, default=0.1, help='omit shorter operations'
  )
  args = parser.parse_args(argv)
  params = trees.make_tree(trees.resnet18_shapes(), jnp.float32, 0)
  grads = trees.make_tree(trees.resnet18_shapes(), jnp.float32, 1)
  opt = METHODS[args.method]()
  state = opt.init(params)

  def step(p, s, g):
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s

  run = jax.jit(step, donate_argnums=(0, 1))
  for _ in range(3):
    params, state = run(params, state, grads)
  jax.block_until_ready(params)
  with tempfile.TemporaryDirectory() as out:
    with jax.profiler.trace(out):
      for _ in range(args.steps):
        params, state = run(params, state, grads)
        jax.block_until_ready(params)
    (trace,) = pathlib.Path(out).rglob('*.trace.json.gz')
    events = json.load(gzip.open(trace))['traceEvents']
  shown = step_events(events, args.steps // 2)
  t0 = shown[0]['ts'] if shown else 0
  end = max((e['ts'] + e['dur'] for e in shown), default=t0)
  print(
      timing.machine()
      + f'{args.method}: one step (the {args.steps // 2 + 1}-th of '
      f'{args.steps} under the profiler), operations of {args.min_ms} ms '
      f'or more; its operations span {(end - t0) / 1000:.2f} ms.\n'
  )
  print('| start (ms) | duration (ms) | thread | operation |')
  print('|---:|---:|---:|---|')
  threads = {}
  for e in shown:
    if e['dur'] / 1000 >= args.min_ms:
      tid = threads.setdefault(e['tid'], len(threads))
      print(
          f"| {(e['ts'] - t0) / 1000:.3f} | {e['dur'] / 1000:.3f} | {tid} | "
          f"{e['name']} |"
      )

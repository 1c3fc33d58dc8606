"""Counting passes of the projection's threshold search along a real training
run: the warm start's prediction, smoothed (the library's) or raw.

    python -m benchmarks.threshold_passes                 # ResNet-18, CIFAR-10
    python -m benchmarks.threshold_passes --steps 50 --model resnet8
    python -m benchmarks.threshold_passes --fixed_gradient --steps 300

Trains ``--model`` on ``--dataset`` (the train job's input pipeline, its
augmentation included) with ``rda_optax.rmda(lr, sparsity_constraint(s))``,
``s`` ramped linearly from 50% toward 95% over 40 times the steps run (the
slow ramp of a ``--target_end_epoch`` schedule), once per predictor, from the
same initialization on the same batches. The search's answer does not depend
on the predictor (the runs' losses agree), only its passes: a prediction
that misses by more than the first pass's window costs a second pass.

Prints, per predictor, the share of steps (after the first five) that took
one, two and more passes, and how far each prediction missed, in entries
over ``GATHER`` (the most a bracket may hold for the search to end after
one pass): median, 90th and 95th percentile and most.

``raw`` is the prediction the library used until 2026-12-08: the last drift
and its last change, unsmoothed (``2 d_t − d_(t−1)``), which multiplies a
training step's noise.
"""

from __future__ import annotations

import argparse
import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.optimizer_step import trees
import models
import rda_optax
from rda_optax import threshold
from rda_optax import threshold_warm
from train import config as config_lib
from train.data import loader as data_loader

PREDICTORS = {
    'smoothed': (
        threshold_warm._DRIFT_SMOOTHING,
        threshold_warm._ACCEL_SMOOTHING,
    ),
    'raw': (1.0, 1.0),
}


@contextlib.contextmanager
def _smoothing(drift: float, accel: float):
  """The predictor's smoothing while a step is traced."""
  old = threshold_warm._DRIFT_SMOOTHING, threshold_warm._ACCEL_SMOOTHING
  threshold_warm._DRIFT_SMOOTHING, threshold_warm._ACCEL_SMOOTHING = (
      drift,
      accel,
  )
  try:
    yield
  finally:
    threshold_warm._DRIFT_SMOOTHING, threshold_warm._ACCEL_SMOOTHING = old


def _passes_and_miss(opt_state) -> tuple[int, float]:
  """The last search's counting passes, and how far its prediction was off
  (entries / GATHER), from the one search state in ``opt_state``."""
  found = [
      x
      for x in jax.tree.leaves(
          opt_state, is_leaf=lambda z: isinstance(z, threshold.ThresholdState)
      )
      if isinstance(x, threshold.ThresholdState)
  ]
  if len(found) != 1:
    raise RuntimeError(f'expected one search state, found {len(found)}')
  state = found[0]
  miss = float(state.error[0] * state.density[0]) / threshold.GATHER
  return int(state.passes[0]), miss


def run(args, predictor: str) -> dict:
  """One training run; the passes and misses of each step's search."""
  cfg = config_lib.get_config(
      None,
      model=args.model,
      dataset=args.dataset,
      batch_size=args.batch_size,
      workdir='runs/threshold_passes',
  )
  data = data_loader.create_data(cfg, prefetch_size=0)
  model = models.create(args.model)
  x0 = jnp.zeros((1,) + tuple(data.image_shape), jnp.float32)
  variables = model.init(jax.random.key(0), x0, train=False)
  params = variables['params']
  stats = variables.get('batch_stats', {})
  target = optax.linear_schedule(0.5, 0.95, 40 * args.steps)
  opt = rda_optax.rmda(
      args.lr, rda_optax.sparsity_constraint(target), momentum=0.9
  )
  opt_state = opt.init(params)

  def step(params, stats, opt_state, x, y):
    def loss_fn(p):
      logits, new = model.apply(
          {'params': p, 'batch_stats': stats},
          x,
          train=True,
          mutable=['batch_stats'],
      )
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
      return loss.mean(), new.get('batch_stats', {})

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss

  with _smoothing(*PREDICTORS[predictor]):
    # Traced here, with this predictor (kth_smallest is jitted on its own:
    # its trace of another predictor's run is dropped).
    jax.clear_caches()
    step = jax.jit(step)
    batches = data.train_batches(0)
    key = jax.random.key(1)
    searches, losses = [], []
    for s in range(args.steps):
      batch = next(batches)
      x = data.preprocess(batch['image'], jax.random.fold_in(key, s), True)
      params, stats, opt_state, loss = step(
          params, stats, opt_state, x[0], batch['label'][0]
      )
      searches.append(_passes_and_miss(opt_state))
      losses.append(float(loss))
  passes, misses = np.asarray(searches).T
  return dict(
      passes=passes.astype(int), misses=misses, losses=np.asarray(losses)
  )


def run_fixed_gradient(steps: int, predictor: str) -> dict:
  """The step benchmark's case (``python -m benchmarks.optimizer_step``):
  its ResNet-18-sized tree and one fixed gradient at every step, so the
  threshold follows a smooth curve with no noise."""
  params, grads = trees.step_inputs(jnp.float32)
  opt = rda_optax.rmda(0.1, rda_optax.sparsity_constraint(0.95), momentum=0.9)
  opt_state = opt.init(params)

  def step(params, opt_state):
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  with _smoothing(*PREDICTORS[predictor]):
    jax.clear_caches()
    step = jax.jit(step)
    searches = []
    for _ in range(steps):
      params, opt_state = step(params, opt_state)
      searches.append(_passes_and_miss(opt_state))
  passes, misses = np.asarray(searches).T
  return dict(passes=passes.astype(int), misses=misses)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.threshold_passes', description=__doc__
  )
  parser.add_argument('--model', default='resnet18')
  parser.add_argument('--dataset', default='cifar10_jpg')
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--lr', type=float, default=0.1)
  parser.add_argument(
      '--predictors', nargs='+', default=list(PREDICTORS), choices=PREDICTORS
  )
  parser.add_argument(
      '--fixed_gradient',
      action='store_true',
      help="the step benchmark's tree and fixed gradient instead of training",
  )
  args = parser.parse_args(argv)
  if args.fixed_gradient:
    runs = {p: run_fixed_gradient(args.steps, p) for p in args.predictors}
    print(
        f"The step benchmark's tree and fixed gradient, {args.steps} steps "
        'of rmda(0.1, sparsity_constraint(0.95)): steps after the fifth '
        'that took two or more passes, and the last of them.\n'
    )
    for name, r in runs.items():
      late = np.nonzero(r['passes'][5:] >= 2)[0] + 6
      print(
          f'{name}: {np.mean(r["passes"][5:] >= 2):.1%} of steps, the last '
          f'at step {late[-1] if late.size else "-"}'
      )
    return runs
  runs = {p: run(args, p) for p in args.predictors}
  print(
      f'{args.model} on {args.dataset}, {args.steps} steps of batch '
      f'{args.batch_size}, rmda(lr={args.lr}, sparsity_constraint(50% -> '
      f'95% over {40 * args.steps} steps)); JAX {jax.__version__} on '
      f'{jax.devices()[0].platform}. Passes and misses of the steps after '
      f'the fifth; a miss is in entries / GATHER ({threshold.GATHER}).\n'
  )
  print(
      '| predictor | 1 pass | 2 passes | more | miss: median | p90 | p95 |'
      ' most | final loss |'
  )
  print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for name, r in runs.items():
    p, m = r['passes'][5:], r['misses'][5:]
    q = np.percentile(m, [50, 90, 95, 100]) if m.size else [np.nan] * 4
    print(
        f'| {name} | {np.mean(p == 1):.1%} | {np.mean(p == 2):.1%} | '
        f'{np.mean(p > 2):.1%} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | '
        f'{q[3]:.2f} | {r["losses"][-1]:.4f} |'
    )
  return runs


if __name__ == '__main__':
  main()

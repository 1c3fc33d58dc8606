"""The train step: model, loss and metrics, and the pmapped steps.

Laid out like flax/examples/imagenet/train.py's first half: the model with
the method's kernel init, the loss and metric sums, and the train, eval and
batch-norm steps (one ``jax.pmap`` each over the axis ``'batch'``, which
carries gradients, metrics and batch-norm statistics across all devices of
all hosts). The loop that drives them is :mod:`train.train`.

Keys: the train step folds the step number into the run's key, then each
example's index in the global batch (augmentation: the same whatever the
device count) and each device's index (dropout).

What a batch holds and what the model predicts from it is the data's task
(:mod:`train.tasks`): a label per image, or the next character at every
position of a window of text; the loss is the mean cross entropy over the
predictions either way, and the metric sums count predictions.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import flax
import jax
from jax import lax
import jax.numpy as jnp
import optax

from ._models import models
from . import config as config_lib
from .data import loader as data_lib
from . import optimizer
from . import tasks
from .train_state import AXIS, TrainState

DTYPES = {
    'float32': jnp.float32,
    'bfloat16': jnp.bfloat16,
    'float16': jnp.float16,
}

# ---------------------------------------------------------------------------
# Model.
# ---------------------------------------------------------------------------


def create_model(cfg: config_lib.Config, num_classes: int):
  """``models.create`` with the RDA kernel init and the pmap axis name (and
  ``--context`` for a model with a context, the GPT)."""
  kwargs = dict(num_classes=num_classes, dtype=DTYPES[cfg.dtype])
  cls = models.get_entry(cfg.model).cls
  fields = {f.name for f in dataclasses.fields(cls)}
  if 'axis_name' in fields:
    # Batch-norm statistics over the global batch (all devices).
    kwargs['axis_name'] = AXIS
  if 'context' in fields:
    kwargs['context'] = cfg.context
  init = optimizer.kernel_init(cfg)
  if init is not None:
    kwargs['kernel_init'] = init
  return models.create(cfg.model, **kwargs)


# ---------------------------------------------------------------------------
# Loss and metrics.
# ---------------------------------------------------------------------------


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
  """Per-example softmax cross-entropy (float32)."""
  logits = logits.astype(jnp.float32)
  if label_smoothing:
    onehot = optax.smooth_labels(
        jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing
    )
    return optax.softmax_cross_entropy(logits, onehot)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def metric_sums(logits, labels, weights, loss=None, axis_name: str = AXIS):
  """``{'loss', 'top1', 'top5', 'count'}`` summed over all devices'
  predictions (one per example, or one per position of a sequence: the
  leading axes of ``labels`` and ``weights`` are flattened)."""
  logits = logits.astype(jnp.float32)
  logits = logits.reshape(-1, logits.shape[-1])
  labels, weights = labels.reshape(-1), weights.reshape(-1)
  if loss is not None:
    loss = loss.reshape(-1)
  if loss is None:
    loss = cross_entropy(logits, labels)
  k = min(5, logits.shape[-1])
  _, top = lax.top_k(logits, k)
  hit = top == labels[:, None]
  sums = {
      'loss': jnp.sum(loss * weights),
      'top1': jnp.sum(hit[:, 0] * weights),
      'top5': jnp.sum(jnp.any(hit, axis=-1) * weights),
      'count': jnp.sum(weights),
  }
  return lax.psum(sums, axis_name)


def _variables(params, batch_stats):
  if batch_stats:
    return {'params': params, 'batch_stats': batch_stats}
  return {'params': params}


# ---------------------------------------------------------------------------
# Steps (pmapped).
# ---------------------------------------------------------------------------


def train_step(
    state: TrainState,
    batch,
    *,
    base_key,
    preprocess: Callable,
    label_smoothing: float = 0.0,
    axis_name: str = AXIS,
    task: tasks.Task = tasks.CLASSIFICATION,
):
  """One optimizer step on a global batch (call through ``jax.pmap``).

  Keys: ``fold_in(base_key, step)``, then per example its index in the
  global batch (augmentation; the same whatever the device count) and per
  device its index (dropout).
  """
  step_key = jax.random.fold_in(base_key, state.step)
  aug_key, dropout_key = jax.random.split(step_key)
  device = lax.axis_index(axis_name)
  images, labels, _ = task.train_inputs(batch, aug_key, preprocess, axis_name)
  dropout_key = jax.random.fold_in(dropout_key, device)

  def loss_fn(params):
    out = state.apply_fn(
        _variables(params, state.batch_stats),
        images,
        train=True,
        mutable=['batch_stats'],
        rngs={'dropout': dropout_key},
    )
    logits, new_vars = out
    per_example = cross_entropy(logits, labels, label_smoothing)
    return jnp.mean(per_example), (logits, per_example, new_vars)

  grads, (logits, per_example, new_vars) = jax.grad(loss_fn, has_aux=True)(
      state.params
  )
  grads = lax.pmean(grads, axis_name)
  new_state = state.apply_gradients(
      grads=grads,
      batch_stats=flax.core.unfreeze(new_vars).get(
          'batch_stats', state.batch_stats
      ),
  )
  sums = metric_sums(
      logits,
      labels,
      jnp.ones_like(per_example),
      loss=per_example,
      axis_name=axis_name,
  )
  return new_state, sums


def eval_step(
    state: TrainState,
    batch,
    *,
    preprocess: Callable,
    axis_name: str = AXIS,
    task: tasks.Task = tasks.CLASSIFICATION,
):
  """Metric sums of one eval batch; padded examples have ``mask`` 0."""
  images, labels, weights = task.eval_inputs(batch, preprocess)
  logits = state.apply_fn(
      _variables(state.params, state.batch_stats),
      images,
      train=False,
      mutable=False,
  )
  return metric_sums(logits, labels, weights, axis_name=axis_name)


# Train-mode forward passes that give a sparse model batch-norm statistics of
# its own (Flax's running averages decay by 0.9 a pass: 0.9^50 < 1%).
BN_RECALIBRATION_BATCHES = 50


def bn_stats_step(
    state: TrainState,
    batch,
    *,
    preprocess: Callable,
    task: tasks.Task = tasks.CLASSIFICATION,
):
  """``state`` with the batch-norm running statistics updated by one
  train-mode forward pass of its params on ``batch`` (no other change)."""
  images = task.plain_inputs(batch, preprocess)  # Un-augmented.
  _, new_vars = state.apply_fn(
      _variables(state.params, state.batch_stats),
      images,
      train=True,
      mutable=['batch_stats'],
      rngs={'dropout': jax.random.key(0)},
  )
  return state.replace(batch_stats=flax.core.unfreeze(new_vars)['batch_stats'])


def recalibrate_batch_stats(
    p_bn_step,
    state: TrainState,
    data: data_lib.Data,
    batches: int = BN_RECALIBRATION_BATCHES,
) -> TrainState:
  """Batch-norm statistics for ``state.params`` from the first ``batches``
  training batches (un-augmented, as evaluated), like SWA's ``bn_update``.

  A method whose model is a point other than the trained iterate (RMDA's
  prox point, variable splitting's ``V``) has weights the running statistics
  were never measured with; evaluating it with the iterate's statistics
  would misjudge it.
  """
  iterator = data.train_batches(0)
  try:
    for _ in range(batches):
      state = p_bn_step(state, next(iterator))
  finally:
    data_lib.close(iterator)
  return state


def nonzeros(params):
  """Per-leaf nonzero counts (pmapped over the replicated params)."""
  return jax.tree.map(lambda p: jnp.count_nonzero(p).astype(jnp.int32), params)


def trees_differ(a, b) -> jax.Array:
  """Whether two trees of the same structure differ anywhere (a bool)."""
  leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b))
  return jnp.any(jnp.stack([jnp.any(x != y) for x, y in leaves]))


def all_finite(tree) -> jax.Array:
  """Whether every value of ``tree`` is finite (a bool)."""
  return jnp.all(
      jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)])
  )


def make_p_train_step(data: data_lib.Data, cfg: config_lib.Config, base_key):
  return jax.pmap(
      functools.partial(
          train_step,
          base_key=base_key,
          preprocess=data.preprocess,
          label_smoothing=cfg.label_smoothing,
          task=data.task,
      ),
      axis_name=AXIS,
      donate_argnums=(0,),
  )


def make_p_bn_step(data: data_lib.Data):
  return jax.pmap(
      functools.partial(
          bn_stats_step, preprocess=data.preprocess, task=data.task
      ),
      axis_name=AXIS,
  )


def make_p_eval_step(data: data_lib.Data):
  return jax.pmap(
      functools.partial(eval_step, preprocess=data.preprocess, task=data.task),
      axis_name=AXIS,
  )

"""The train state: creation, ``--init_from``, checkpoint trees, replication.

Flax's :class:`flax.training.train_state.TrainState` plus the models'
batch-norm statistics; a fresh state (with the method's pruning of an
``--init_from`` parent), the tree a checkpoint holds, and the copies of it
on every local device that the pmapped steps take.
"""

from __future__ import annotations

from typing import Any

import flax
from flax import jax_utils
from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import config as config_lib
from . import optimizer
from . import methods

AXIS = 'batch'  # The pmap axis of every step.


class TrainState(train_state.TrainState):
  """Flax's train state plus the models' batch-norm statistics."""

  batch_stats: Any = None


# XLA options of the initialization program on a CPU: it runs once, and
# XLA:CPU's optimizing passes take 10+ s on a network's initializers (ResNet-8:
# 13 s to compile, 1 s without them; the run then takes 10 ms instead of 3).
_INIT_CPU_OPTIONS = {'xla_backend_optimization_level': 0}


def initialized(key, image_shape, model, input_dtype='float32'):
  """``(params, batch_stats)`` of ``model`` for inputs of ``image_shape``
  (NHWC images; ``(context,)`` int32 tokens with ``input_dtype='int32'``)."""

  def init(rng, x):
    return model.init({'params': rng, 'dropout': rng}, x, train=False)

  x = jnp.zeros((1,) + tuple(image_shape), input_dtype)
  lowered = jax.jit(init).lower(key, x)
  options = _INIT_CPU_OPTIONS if jax.default_backend() == 'cpu' else None
  variables = lowered.compile(compiler_options=options)(key, x)
  variables = flax.core.unfreeze(variables)
  return variables['params'], variables.get('batch_stats', {})


def create_train_state(
    key,
    cfg: config_lib.Config,
    model,
    image_shape,
    tx: optax.GradientTransformation,
    init_variables: dict | None = None,
    input_dtype: str = 'float32',
) -> TrainState:
  """A fresh train state (on the host's default device, not replicated).

  ``init_variables`` (from ``--init_from``) replaces the initial params and
  batch statistics; methods ``han`` / ``han_adamw`` then prune them by
  magnitude. ``input_dtype``: of the model's inputs (the task's).
  """
  params, batch_stats = initialized(key, image_shape, model, input_dtype)
  if init_variables is not None:
    params = _load_matching(
        'params', params, init_variables['params'], cfg.init_from, cfg
    )
    if batch_stats:
      batch_stats = _load_matching(
          'batch_stats',
          batch_stats,
          init_variables['batch_stats'],
          cfg.init_from,
          cfg,
      )
  if methods.get(cfg.method).from_run:
    params = optimizer.prune(cfg, params)
  return TrainState.create(
      apply_fn=model.apply, params=params, tx=tx, batch_stats=batch_stats
  )


# The options that shape a model's parameters.
_SHAPING = ('model', 'dataset', 'corpus', 'context')


def _differences(source: str, cfg: config_lib.Config) -> str:
  """The shaping options of the run ``source`` that differ from ``cfg``'s,
  as flags (empty if none, or if its configuration cannot be read)."""
  try:
    theirs = config_lib.load_config(source)
  except (ValueError, OSError):
    return ''
  return ', '.join(
      f'--{k} {getattr(theirs, k)} (here {getattr(cfg, k)})'
      for k in _SHAPING
      if getattr(theirs, k, None) != getattr(cfg, k, None)
  )


def _load_matching(what, template, loaded, source, cfg=None):
  """``loaded`` in ``template``'s structure, with a clear error if it differs
  (naming the source run's options that differ from ``cfg``'s)."""
  flat_t = flax.traverse_util.flatten_dict(
      flax.core.unfreeze(template), sep='/'
  )
  flat_l = flax.traverse_util.flatten_dict(dict(loaded), sep='/')
  missing = sorted(set(flat_t) - set(flat_l))
  extra = sorted(set(flat_l) - set(flat_t))
  shapes = [
      k
      for k in flat_t
      if k in flat_l and np.shape(flat_t[k]) != np.shape(flat_l[k])
  ]
  if missing or extra or shapes:
    differ = _differences(source, cfg) if cfg is not None else ''
    fix = (
        f'it was trained with {differ}: use the same'
        if differ
        else 'train the source run with the same --model, --dataset and '
        'model options (such as --context)'
    )
    raise config_lib.ConfigError(
        f'--init_from {source}: its {what} do not fit this model '
        f'(missing {missing[:5]}, unexpected {extra[:5]}, shape mismatch '
        f'{shapes[:5]}); {fix}.'
    )
  return flax.traverse_util.unflatten_dict(
      {k: jnp.asarray(flat_l[k], dtype=flat_t[k].dtype) for k in flat_t},
      sep='/',
  )


def state_tree(state: TrainState) -> dict[str, Any]:
  """The checkpointed part of a train state (no functions)."""
  return {
      'step': state.step,
      'params': state.params,
      'opt_state': state.opt_state,
      'batch_stats': state.batch_stats,
  }


def replace_from_tree(state: TrainState, tree: dict[str, Any]) -> TrainState:
  as_jnp = lambda t: jax.tree.map(jnp.asarray, t)
  return state.replace(
      step=as_jnp(tree['step']),
      params=as_jnp(tree['params']),
      opt_state=as_jnp(tree['opt_state']),
      batch_stats=as_jnp(tree['batch_stats']),
  )


def replicate(tree):
  """Copies a pytree onto every local device (leading axis = devices).

  The sharding's mesh axis is named like the pmap axis, so the pmapped step
  sees the same input sharding as its own outputs (else it compiles twice).
  """
  return jax_utils.replicate(tree, axis_name=AXIS)


def unreplicate(tree):
  """The first local device's copy of a replicated pytree."""
  return jax_utils.unreplicate(tree)

"""The model a run reports, read back from its run directory.

The model a run evaluates, reports and exports is its method's exactly sparse
point: RMDA's prox point with momentum, variable splitting's ``V``, kept in
the optimizer state apart from the parameters (see
:func:`rda_optax.sparse_params`). A finished run saves it as its final
parameters; mid-run (stopped with ``--stop_at_step``, killed, interrupted)
a checkpoint's parameters are the dense iterate. :func:`load_model` takes the
sparse point out of the checkpoint's optimizer state in both cases (rebuilt
in the run's own structure from its ``config.json``), and with batch norm
measures its statistics anew on the training data, as the run's evaluations
do. ``python -m train.export``, ``python -m train.report`` and
``--init_from`` read the model through it.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import optax

import rda_optax
from . import checkpoint as ckpt_lib
from . import config as config_lib
from .data import loader as data_lib
from . import optimizer
from . import train_state as state_lib
from . import train_step as step_lib
from .data import datasets
from .data import synthetic_source


def _num_train(cfg: config_lib.Config) -> int:
  """Train examples of the run's dataset as far as known without loading it
  (the optimizer's structure does not depend on it, only its step counts)."""
  name = cfg.dataset.split(':')[0]
  if name in datasets.DATASETS:
    return datasets.DATASETS[name].num_train
  if synthetic_source.is_synthetic(cfg.dataset):
    return 1 << 16
  if datasets.is_text(cfg.dataset):  # Its windows (text_pipeline).
    spec = datasets.TEXT_DATASETS[cfg.dataset]
    return (spec.num_chars - spec.num_eval - 1) // max(cfg.context, 1)
  return max(cfg.batch_size, 1) * 1000


def _opt_state_template(cfg: config_lib.Config, params: Any) -> Any | None:
  """Zeros in the structure of the run's optimizer state, or None when its
  method keeps no sparse point apart from the parameters."""
  phases = optimizer.make_phases(cfg, _num_train(cfg))
  tx, _ = optimizer.create_optimizer(cfg, phases)
  shapes = jax.eval_shape(tx.init, params)
  if not rda_optax.sparse_point.has_sparse_point(shapes):
    return None
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def _differ(a: Any, b: Any) -> bool:
  return any(
      np.asarray(x).tobytes() != np.asarray(y).tobytes()
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
  )


def recalibrated_stats(
    cfg: config_lib.Config, params: Any, stats: Any, data=None, model=None
):
  """Batch-norm statistics of ``params`` measured on the run's training
  data, exactly as the run's evaluations measure them."""
  try:
    data = data if data is not None else data_lib.create_data(cfg)
  except (ValueError, OSError) as e:  # ConfigError, DatasetNotFoundError
    raise config_lib.ConfigError(
        'the newest checkpoint is of an unfinished run: its sparse model '
        'needs batch-norm statistics of its own, measured on the training '
        f'data, which cannot be loaded here ({e}). Read it where the data '
        'is, or finish the run.'
    ) from e
  if model is None:
    model = step_lib.create_model(cfg, data.num_classes)
  state = state_lib.TrainState.create(
      apply_fn=model.apply,
      params=params,
      tx=optax.identity(),
      batch_stats=stats,
  )
  state = step_lib.recalibrate_batch_stats(
      step_lib.make_p_bn_step(data), state_lib.replicate(state), data
  )
  return ckpt_lib.host_copy(state_lib.unreplicate(state).batch_stats)


def load_model(run: str, *, data=None, model=None) -> dict[str, Any]:
  """The model a run reports, from its newest good checkpoint.

  Args:
    run: a run directory (``--workdir`` of ``python -m train``).
    data: the run's :class:`train.data.Data`, if loaded already (only for
      batch-norm statistics of a sparse point mid-run).
    model: the run's Flax module when it is not ``models.create`` of its
      config (only for those statistics too).

  Returns:
    ``{'params', 'batch_stats', 'step', 'sparse_point'}``: host arrays, the
    step of the checkpoint, and whether the model was taken out of the
    optimizer state (a sparse point mid-run).

  Raises:
    ConfigError: an unreadable ``config.json``, no readable checkpoint, or
      batch-norm statistics that need data that cannot be loaded.
    FileNotFoundError: no checkpoint.
  """
  cfg = config_lib.load_config(run)
  ckpts = ckpt_lib.open_read_only(run)
  try:
    try:
      raw = ckpts.restore_latest()
    except ckpt_lib.UnreadableCheckpoints as e:
      raise config_lib.ConfigError(str(e)) from e
    if raw is None:
      raise FileNotFoundError(
          f'No complete checkpoint under {run!r} (looked in '
          f'{ckpts.directory}).'
      )
    step = int(np.asarray(raw['step']))
    params, stats = raw['params'], raw.get('batch_stats') or {}
    template = _opt_state_template(cfg, params)
    if template is not None:
      tree = ckpts.restore(
          step,
          {
              'step': raw['step'],
              'params': params,
              'opt_state': template,
              'batch_stats': raw.get('batch_stats', {}),
          },
      )
  finally:
    ckpts.close(quiet=True)
  out = {'params': params, 'batch_stats': stats, 'step': step}
  if template is None:
    return {**out, 'sparse_point': False}
  # (Jitted: one program, not the dozens op by op would compile.)
  sparse = ckpt_lib.host_copy(
      jax.jit(rda_optax.sparse_params)(tree['opt_state'], tree['params'])
  )
  if not _differ(sparse, params):  # A finished run saved it as its params.
    return {**out, 'sparse_point': False}
  if jax.tree.leaves(stats):
    stats = recalibrated_stats(
        cfg.replace(workdir=run), sparse, stats, data, model
    )
  return {**out, 'params': sparse, 'batch_stats': stats, 'sparse_point': True}


def load_init_variables(path: str) -> dict[str, Any]:
  """The variables of ``--init_from``: the model of the run in ``path`` (its
  sparse point, also mid-run); a one-line ConfigError if unusable."""
  try:
    if not os.path.exists(os.path.join(path, 'config.json')):
      return ckpt_lib.load_variables(path)  # Only checkpoints: as saved.
    return load_model(path)
  except config_lib.ConfigError as e:
    raise config_lib.ConfigError(f'--init_from {path}: {e}') from e
  except Exception as e:  # pylint: disable=broad-except
    # Orbax raises many types for a damaged checkpoint; one line says which.
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise config_lib.ConfigError(
        f'--init_from {path}: cannot read a checkpoint there ({first}); pass '
        'the run directory of a finished run.'
    ) from e

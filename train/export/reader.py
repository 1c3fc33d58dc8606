"""Reading an export of :mod:`train.export` back: the model and its variables.

``load_export(DIR)`` returns ``(model, variables, meta)``, refusing with a
clear :class:`ExportError` a folder that is not an export, another format
version or variables that do not match the model; ``python -m train
--eval_export DIR`` (:func:`evaluate_export`) evaluates an export on its
dataset's test split.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._models import models
import rda_optax
from .. import checkpoint as ckpt_lib
from .. import config as config_lib
from .. import evaluation
from ..data import loader as data_lib
from .. import train_state as state_lib
from .. import train_step as step_lib

FORMAT = 'rda-optax-export'
VERSION = 1


class ExportError(ValueError):
  """A run that cannot be exported, or an export that cannot be read."""


def num_classes_of(
    model_name: str,
    params: Any,
    input_shape: tuple[int, ...],
    input_dtype: str = 'float32',
    **fields: Any,
) -> int:
  """The classifier width (a language model: the vocabulary) of
  ``params``: the last axis of the leaf where it differs from a 1-class
  model's (built with ``fields``, e.g. a GPT's ``context``). Shared by the
  writers (:mod:`train.export.writer`, :mod:`train.export.uncompacted`)."""
  one = models.create(model_name, num_classes=1, **fields)
  shapes = jax.eval_shape(
      lambda: one.init(
          jax.random.key(0),
          jnp.zeros((1,) + tuple(input_shape), input_dtype),
          train=False,
      )
  )['params']
  flat_have = {
      jax.tree_util.keystr(p): x
      for p, x in jax.tree_util.tree_leaves_with_path(params)
  }
  for path, want in jax.tree_util.tree_leaves_with_path(shapes):
    have = flat_have.get(jax.tree_util.keystr(path))
    if have is not None and want.shape[-1:] == (1,) and have.shape[-1:] != (1,):
      return int(have.shape[-1])
  return 1


def fixed_batch(
    input_shape: tuple[int, ...],
    n: int = 8,
    input_dtype: str = 'float32',
    num_classes: int = 1,
) -> np.ndarray:
  """A fixed batch to compare an export's outputs with the run's model:
  uniform pixels in [0, 1), or token ids below ``num_classes`` for a model
  of int32 tokens."""
  rng = np.random.default_rng(0)
  if input_dtype == 'int32':
    return rng.integers(0, num_classes, (n,) + tuple(input_shape)).astype(
        np.int32
    )
  return rng.uniform(0.0, 1.0, (n,) + tuple(input_shape)).astype(np.float32)


def _tuples(value: Any) -> Any:
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def tuples_in(fields: dict[str, Any]) -> dict[str, Any]:
  return {k: _tuples(v) for k, v in fields.items()}


def export_folder(path: str) -> str:
  """``path``, or its ``export/`` when ``path`` is a run directory (it has
  a ``config.json``, no ``model.json``) holding one."""
  inner = os.path.join(path, 'export')
  if not os.path.exists(os.path.join(path, 'model.json')) and os.path.exists(
      os.path.join(path, 'config.json')
  ):
    if not os.path.exists(os.path.join(inner, 'model.json')):
      raise ExportError(
          f'{path} is a run directory without an export; make one with '
          f'python -m train.export {path}.'
      )
    return inner
  return path


def load_export(path: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
  """``(model, variables, meta)`` of an export folder.

  ``path`` is the export folder, or the run directory it was made in (its
  ``export/``, where ``python -m train.export RUN_DIR`` writes by default).

  Raises:
    ExportError: not an export folder, another version, or variables that do
      not match the model (a clear message; never a silently wrong model).
  """
  path = export_folder(path)
  meta_path = os.path.join(path, 'model.json')
  try:
    with open(meta_path) as f:
      meta = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ExportError(
        f'{path} is not a readable export ({e}); make one '
        'with python -m train.export RUN_DIR.'
    ) from e
  if meta.get('format') != FORMAT or meta.get('version') != VERSION:
    raise ExportError(
        f'{meta_path}: format {meta.get("format")!r} version '
        f'{meta.get("version")!r}; this code reads {FORMAT} version '
        f'{VERSION}.'
    )
  try:
    model = models.create(
        meta['model'],
        num_classes=meta['num_classes'],
        **tuples_in(meta['fields']),
    )
  except (ValueError, TypeError, KeyError) as e:
    raise ExportError(f'{meta_path} describes no buildable model: {e}') from e
  template = jax.eval_shape(
      lambda: model.init(
          jax.random.key(0),
          jnp.zeros(
              (1,) + tuple(meta['input_shape']),
              meta.get('input_dtype', 'float32'),
          ),
          train=False,
      )
  )
  template = {
      k: v for k, v in template.items() if k in ('params', 'batch_stats')
  }
  try:
    variables = rda_optax.load_sparse(
        os.path.join(path, 'variables.npz'), like=template
    )
  except rda_optax.SparseFormatError as e:
    raise ExportError(str(e)) from e
  return model, variables, meta


def evaluate_export(path: str, cfg, explicit=frozenset()) -> dict[str, float]:
  """Test metrics of an export on its dataset (``python -m train
  --eval_export DIR``); prints one line and returns them.

  ``cfg`` gives the data options (``--data_dir``, ``--manual_dir``,
  ``--eval_batch_size``); its dataset is the export's unless ``--dataset`` was
  given explicitly.

  Raises:
    ConfigError: unreadable export, or data of another shape.
  """
  try:
    model, variables, meta = load_export(path)
  except ExportError as e:
    raise config_lib.ConfigError(str(e)) from e
  if 'dataset' not in explicit:
    cfg = cfg.replace(dataset=meta['dataset'])
  if meta.get('input_dtype') == 'int32' and 'context' not in explicit:
    cfg = cfg.replace(context=int(meta['input_shape'][0]))  # Its windows.
  data = data_lib.create_data(cfg)
  if tuple(data.image_shape) != tuple(meta['input_shape']) or (
      data.num_classes != meta['num_classes']
  ):
    raise config_lib.ConfigError(
        f'The export in {path} takes {tuple(meta["input_shape"])} inputs and '
        f'{meta["num_classes"]} classes; {cfg.dataset} has '
        f'{tuple(data.image_shape)} and {data.num_classes}.'
    )
  state = state_lib.TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=optax.identity(),
      batch_stats=variables.get('batch_stats', {}),
  )
  metrics = evaluation.evaluate(
      step_lib.make_p_eval_step(data),
      state_lib.replicate(state),
      data,
      cfg.eval_batch,
  )
  source = meta.get('source') or {}
  print(
      f'{path} ({meta["model"]} of step {source.get("step")}, '
      f'{meta["parameters"]["nonzero"]:,} nonzero parameters) on '
      f'{cfg.dataset}: {data.task.eval_summary(metrics)}',
      flush=True,
  )
  newer = _newer_checkpoint(source)
  if newer is not None:
    print(
        f'note: this export is of step {source.get("step")}; its run '
        f'{source["run"]} has a newer checkpoint, step {newer} (python -m '
        f'train.export {source["run"]} exports it).',
        flush=True,
    )
  return metrics


def _newer_checkpoint(source: dict[str, Any]) -> int | None:
  """The step of the newest checkpoint of the export's run when it is newer
  than the export's (a stale export), else None (also when the run is not
  here to look at)."""
  run, step = source.get('run'), source.get('step')
  if not run or step is None or not os.path.isdir(run):
    return None
  try:
    latest = ckpt_lib.open_read_only(run).latest_step()
  except (OSError, ValueError):
    return None
  return latest if latest is not None and latest > step else None

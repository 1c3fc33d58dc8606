"""Which leaves a run treats: ``--select``, and the scales of ``--scale_lam``.

The leaf selection of ``--select`` (:func:`run_mask`: :func:`leaf_mask`, and
a transformer's weight kernels for ``kernels``) is the one the
optimizer regularizes, ASR freezes, pruning prunes and the reports count;
``--scale_lam`` adds the batch-norm scales beside it (:func:`with_scales`)
with a penalty of their own (:func:`scale_penalty`). :func:`check_model`
refuses, before any work, a model that has nothing for them to select.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Any, Callable

import jax

import rda_optax
from ._models import models
from . import tasks
from .config import ConfigError
from .data import datasets


@functools.lru_cache(maxsize=None)
def leaf_mask(select: str) -> Callable[[Any], Any] | None:
  """The leaf selection of ``--select`` (None = rda_optax.default_mask).

  Built once per ``--select`` value (cached): the optimizer, pruning, the
  sparsity records, the report and the export share one selection.

  ``kernels``: every leaf with ``ndim > 1``; ``conv``: ``ndim == 4``;
  ``dense``: ``ndim == 2``; anything else is a regular expression searched in
  the leaf's path, e.g. ``'Conv_[1-9]|Dense_0'`` (the path joins keys with
  '/', like ``'Conv_0/kernel'``: :func:`rda_optax.path_str`).
  """
  if select in ('kernels', '', None):
    return None
  if select == 'conv':
    return lambda params: jax.tree.map(lambda p: p.ndim == 4, params)
  if select == 'dense':
    return lambda params: jax.tree.map(lambda p: p.ndim == 2, params)
  try:
    pattern = re.compile(select)
  except re.error as e:
    raise ConfigError(
        f'--select {select!r} is not kernels, conv, dense or a '
        f'valid regular expression: {e}'
    ) from e

  def by_path(params):
    def match(path, _):
      return bool(pattern.search(rda_optax.path_str(path)))

    return jax.tree_util.tree_map_with_path(match, params)

  return by_path


def is_transformer(model: str) -> bool:
  """Whether the registry model ``model`` is a transformer (``gpt_char``,
  ``vit_cifar``, ...: a :class:`models.GPT` or :class:`models.ViT`)."""
  entry = models.REGISTRY.get(model)
  return entry is not None and issubclass(entry.cls, (models.GPT, models.ViT))


def run_mask(cfg) -> Callable[[Any], Any] | None:
  """The leaves a run regularizes, freezes, prunes and reports.

  :func:`leaf_mask` of ``--select``, except that ``kernels`` (the default)
  selects a transformer's weight kernels only (:func:`models.kernel_mask`:
  the token embedding, the position table, the class token and the norms
  stay dense), where the library's default mask (``ndim > 1``) would take
  the embeddings too. On the convolutional models the two coincide.
  """
  if cfg.select in ('kernels', '', None) and is_transformer(cfg.model):
    return models.kernel_mask
  return leaf_mask(cfg.select)


def is_norm_scale(path) -> bool:
  """A leaf named ``scale``: the γ of a Flax normalization layer."""
  last = path[-1] if path else None
  return getattr(last, 'key', getattr(last, 'name', None)) == 'scale'


@functools.lru_cache(maxsize=None)
def coupled_batch_norms(model: str) -> tuple[tuple[str, ...], ...]:
  """``models.coupled_scales(..., shifts=True)`` of the registry model
  ``model``: per channel space, the scales and shifts of the batch norms
  after the layers writing it."""
  return models.coupled_scales(models.create(model), shifts=True)


def scale_leaf(cfg) -> Callable[[Any], bool]:
  """``path -> bool``: the leaves ``--scale_lam`` penalises (every
  normalization scale for ``l1``; the writers' batch-norm scales and shifts
  for ``channel``)."""
  if cfg.scale_penalty != 'channel':
    return is_norm_scale
  paths = {p for s in coupled_batch_norms(cfg.model) for p in s}
  return lambda path: rda_optax.path_str(path) in paths


def scale_labels(cfg) -> Callable[[Any], Any]:
  """``params -> labels``: ``'scales'`` for the leaves of
  :func:`scale_leaf`, ``'weights'`` elsewhere; a model without any gets an
  error naming the fix."""
  is_scale = scale_leaf(cfg)

  def labels(params):
    out = jax.tree_util.tree_map_with_path(
        lambda path, _: 'scales' if is_scale(path) else 'weights', params
    )
    if 'scales' not in jax.tree.leaves(out):
      raise ValueError(
          '--scale_lam penalises batch-norm scales, but this model has none '
          '(no batch norm after a conv or dense layer): drop --scale_lam, or '
          'use a model with batch norm (resnet*, vgg*).'
      )
    return out

  return labels


def scale_penalty(cfg) -> tuple[Any, Callable[[Any], Any]] | None:
  """With ``--scale_lam``: ``(penalty, labels)``, the scales' regularizer of
  ``--scale_penalty`` and :func:`scale_labels` (what
  :attr:`train.methods.BuildContext.scales` holds); None without."""
  if not cfg.scale_lam:
    return None
  if cfg.scale_penalty == 'channel':
    penalty = rda_optax.coupled_group_lasso(
        cfg.scale_lam, coupled_batch_norms(cfg.model)
    )
  else:
    penalty = rda_optax.l1(cfg.scale_lam)
  return penalty, scale_labels(cfg)


def with_scales(mask, cfg):
  """The leaf selection ``mask`` (None: the library default) plus the
  leaves of :func:`scale_leaf`, for ``--scale_lam``."""
  is_scale = scale_leaf(cfg)

  def select(params):
    base = rda_optax.selection.resolve_mask(mask, params)
    return jax.tree_util.tree_map_with_path(
        lambda path, s: bool(s) or is_scale(path), base
    )

  return select


def check_model(cfg) -> None:
  """What needs the model before any work: its name, inputs of the dataset's
  task (:func:`check_task`), a ``--select`` that selects some of its
  parameters, and batch-norm scales for ``--scale_lam``.

  Parameter names come from ``jax.eval_shape`` of the model's init (nothing
  is computed); they do not depend on the input's size, so the model's
  default input shape serves whatever the dataset.

  Raises:
    ConfigError: naming the option and the fix.
  """
  try:
    model = models.create(cfg.model)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  entry = models.get_entry(cfg.model)
  check_task(cfg, entry.input_dtype)
  x = jax.ShapeDtypeStruct(
      (1,) + tuple(models.default_input_shape(cfg.model)), entry.input_dtype
  )
  params = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x
  )['params']
  mask = run_mask(cfg)
  selected = rda_optax.selection.resolve_mask(mask, params)
  if not any(jax.tree.leaves(selected)):
    names = [
        rda_optax.path_str(p)
        for p, _ in jax.tree_util.tree_leaves_with_path(params)
    ]
    raise ConfigError(
        f'--select {cfg.select!r} matches no parameter of {cfg.model}, so '
        'nothing would be regularized or pruned: use kernels, conv, dense or '
        f'a pattern searched in its parameter names ({", ".join(names[:6])}'
        f'{", ..." if len(names) > 6 else ""}).'
    )
  if is_transformer(cfg.model):
    _note_tables(cfg, selected, params)
  if cfg.scale_lam:
    try:
      scale_labels(cfg)(params)
    except ValueError as e:
      raise ConfigError(str(e)) from e


def _note_tables(cfg, selected: Any, params: Any) -> None:
  """A note (stderr, first process) when ``--select`` takes a transformer's
  embedding or position tables, which ``kernels`` leaves dense: they are
  then regularized, pruned and counted like kernels (N:M groups along the
  table's rows, e.g. the vocabulary), which is rarely what is meant."""
  kernels = models.kernel_mask(params)
  tables = [
      rda_optax.path_str(path)
      for (path, take), kernel in zip(
          jax.tree_util.tree_leaves_with_path(selected),
          jax.tree.leaves(kernels),
      )
      if take and not kernel
  ]
  if tables and jax.process_index() == 0:
    print(
        f"note: --select {cfg.select} takes {cfg.model}'s "
        f'{", ".join(tables)} too, which --select kernels (the default) '
        'leaves dense: they are regularized, pruned and counted like the '
        'weight kernels.',
        file=sys.stderr,
    )


def check_task(cfg, input_dtype: str) -> None:
  """The model (inputs of ``input_dtype``) takes the inputs of the
  dataset's task: int32 tokens for a text corpus, float images otherwise.

  Raises:
    ConfigError: naming the models that fit.
  """
  task = tasks.for_config(cfg)
  if input_dtype == task.input_dtype:
    return
  fitting = [
      name
      for name, entry in models.REGISTRY.items()
      if entry.input_dtype == task.input_dtype
  ]
  if task.kind == 'language_model':
    raise ConfigError(
        f'--dataset {cfg.dataset} is a character-level language-model task '
        f'(int32 tokens); --model {cfg.model} takes images: use a token '
        f'model ({", ".join(fitting)}).'
    )
  raise ConfigError(
      f'--model {cfg.model} is a language model (int32 tokens); --dataset '
      f'{cfg.dataset} is images: use it with a text corpus '
      f'({", ".join(sorted(datasets.TEXT_DATASETS))}), or an image model.'
  )

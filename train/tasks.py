"""What a run learns: classification of images, or next-character prediction.

A task is chosen by the dataset (:func:`for_dataset`): the text corpora
(``shakespeare_char``) are :class:`LanguageModel` tasks, every other dataset
a :class:`Classification`. The loop, the steps, the evaluation and the report
are the same for both; the task says what differs:

* how a batch becomes the model's inputs, the targets and their weights
  (:meth:`~Classification.train_inputs`, :meth:`~Classification.eval_inputs`:
  for a language model the window's first ``context`` characters and the
  ``context`` characters that follow each, the padding of the last
  validation window weighted 0);
* the dtype of the inputs (float images or int32 tokens) and what the
  throughput counts (images or characters per second);
* the metrics derived from the sums (bits per character, ``loss / ln 2``)
  and how evaluations are summarised and plotted (accuracy for a classifier;
  validation loss for a language model, whose next-character accuracy is
  logged but is not what it is judged by).

The loss is the same function for both: the mean softmax cross entropy over
the batch's predictions (one per image, or one per character).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
from jax import lax
import jax.numpy as jnp

from .data import datasets

LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class Classification:
  """One label per image (``{'image', 'label'}`` batches)."""

  kind = 'classification'
  unit = 'images'  # Throughput: images per second.
  input_dtype = 'float32'
  items_per_example = 1
  # The report: the plot of the evaluations and its curves.
  plot_file = 'accuracy.png'
  plot_ylabel = 'accuracy'
  curves = (
      ('test_top1', 'test top-1'),
      ('train_top1', 'train top-1'),
      ('test_top5', 'test top-5'),
  )

  def train_inputs(self, batch, key, preprocess: Callable, axis_name: str):
    """``(inputs, targets, weights)`` of a train batch on one device.

    Each example is augmented with ``fold_in(key, i)``, ``i`` its index in
    the global batch (the same whatever the device count).
    """

    labels = batch['label']
    n = labels.shape[0]
    device = lax.axis_index(axis_name)
    example_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(
        device * n + jnp.arange(n)
    )
    images = jax.vmap(lambda x, k: preprocess(x[None], k, True)[0])(
        batch['image'], example_keys
    )
    return images, labels, jnp.ones(labels.shape, jnp.float32)

  def eval_inputs(self, batch, preprocess: Callable):
    """``(inputs, targets, weights)`` of an eval batch (padding: weight 0)."""

    images = preprocess(batch['image'], jax.random.key(0), False)
    return images, batch['label'], batch['mask'].astype(jnp.float32)

  def plain_inputs(self, batch, preprocess: Callable):
    """The model's inputs of a train batch, not augmented."""

    return preprocess(batch['image'], jax.random.key(0), False)

  def derived(self, metrics: dict[str, float]) -> dict[str, float]:
    """Metrics computed from the averaged ones (none for a classifier)."""
    return dict(metrics)

  def eval_summary(self, r: dict[str, Any]) -> str:
    """The metrics part of an evaluation's console line."""
    nan = float('nan')
    return (
        f"test top-1 {r.get('test_top1', nan):.4f} "
        f"top-5 {r.get('test_top5', nan):.4f} "
        f"loss {r.get('test_loss', nan):.4f}"
    )

  def report_lines(self, summary: dict[str, Any]) -> list[str]:
    """The report's lines on the final evaluation."""
    pct = lambda x: '-' if x is None else f'{100 * x:.2f}%'
    return [
        f'- test top-1: {pct(summary.get("test_top1"))}, top-5: '
        f'{pct(summary.get("test_top5"))} (best top-1 '
        f'{pct(summary.get("best_test_top1"))}{best_at(summary)})'
    ]


@dataclasses.dataclass(frozen=True)
class LanguageModel:
  """Next-character prediction over windows of ``context + 1`` tokens
  (``{'tokens'}`` batches, plus ``'mask'`` per target in evaluation).

  The inputs are a window's first ``context`` tokens, the targets the
  ``context`` tokens after each; the loss is the mean cross entropy over all
  targets (nats per character), reported also in bits per character.
  """

  context: int = 128

  kind = 'language_model'
  unit = 'chars'  # Throughput: characters (predictions) per second.
  input_dtype = 'int32'
  plot_file = 'loss.png'
  plot_ylabel = 'cross entropy (nats per character)'
  curves = (
      ('test_loss', 'validation loss'),
      ('train_loss', 'train loss'),
  )

  @property
  def items_per_example(self) -> int:
    return self.context

  def train_inputs(self, batch, key, preprocess, axis_name):
    """``(inputs, targets, weights)``: ``tokens[:, :-1]``, ``tokens[:, 1:]``
    and ones (no augmentation; ``key`` and ``preprocess`` are unused)."""
    del key, preprocess, axis_name

    tokens = batch['tokens']
    return (
        tokens[:, :-1],
        tokens[:, 1:],
        jnp.ones(tokens[:, 1:].shape, jnp.float32),
    )

  def eval_inputs(self, batch, preprocess):
    """As :meth:`train_inputs`, weighted by the window's ``mask`` (0 for
    the padding after the end of the validation slice)."""
    del preprocess

    tokens = batch['tokens']
    return tokens[:, :-1], tokens[:, 1:], batch['mask'].astype(jnp.float32)

  def plain_inputs(self, batch, preprocess):
    del preprocess
    return batch['tokens'][:, :-1]

  def derived(self, metrics: dict[str, float]) -> dict[str, float]:
    """Adds ``bpc``, bits per character (``loss / ln 2``)."""
    out = dict(metrics)
    if out.get('loss') is not None:
      out['bpc'] = out['loss'] / LN2
    return out

  def eval_summary(self, r: dict[str, Any]) -> str:
    nan = float('nan')
    return (
        f"validation loss {r.get('test_loss', nan):.4f} "
        f"({r.get('test_bpc', nan):.4f} bits per character), "
        f"next-character accuracy {r.get('test_top1', nan):.4f}"
    )

  def report_lines(self, summary: dict[str, Any]) -> list[str]:
    fmt = lambda x: '-' if x is None else f'{x:.4f}'
    return [
        f'- validation loss: {fmt(summary.get("test_loss"))} nats per '
        f'character = {fmt(summary.get("test_bpc"))} bits per character '
        f'(best {fmt(summary.get("best_test_loss"))}{best_at(summary)}); '
        f'next-character accuracy {fmt(summary.get("test_top1"))}'
    ]


def best_at(summary: dict[str, Any]) -> str:
  """`` at step S, sparsity X%`` for the best evaluation when it is not the
  last one (an earlier model, denser while the sparsity ramped up)."""
  step = summary.get('best_step')
  if step is None or step == summary.get('steps'):
    return ''
  sparsity = summary.get('best_sparsity')
  return f' at step {step}' + (
      '' if sparsity is None else f', sparsity {100 * sparsity:.2f}%'
  )


CLASSIFICATION = Classification()

Task = Classification | LanguageModel


def for_dataset(name: str, context: int = 128) -> Task:
  """The task of the dataset ``name`` (no I/O): a text corpus is a
  :class:`LanguageModel` over windows of ``context``; any other dataset a
  :class:`Classification`."""
  if datasets.is_text(name):
    return LanguageModel(int(context))
  return CLASSIFICATION


def for_config(cfg) -> Task:
  """The task of a run's config (its ``dataset`` and ``context``)."""
  return for_dataset(cfg.dataset, getattr(cfg, 'context', 128))

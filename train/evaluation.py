"""Evaluation: test metrics over the whole eval split, sparsity records.

The eval loop runs the pmapped eval step of :mod:`train.train_step` over
every example once (padded batches carry ``mask`` 0); the sparsity record of
a model is :mod:`rda_optax.sparsity`'s, for the leaves the run regularizes.
"""

from __future__ import annotations

import collections
from typing import Any

import jax
import numpy as np

import rda_optax
from . import config as config_lib
from .data import loader as data_lib
from . import metrics as metrics_lib
from . import selection
from . import tasks

MAX_STEPS_IN_FLIGHT = 4  # Dispatched but unfinished steps (train and eval).


def evaluate(
    p_eval_step,
    state,
    data: data_lib.Data,
    eval_batch: int,
    progress: bool = False,
) -> dict[str, float]:
  """Loss / top-1 / top-5 over the whole eval split (every example once;
  for a language model every character of the validation slice, and its
  bits per character)."""
  avg = metrics_lib.Averager()
  total = -(-data.num_eval_examples // eval_batch)
  with metrics_lib.progress_bar(
      total,
      enabled=progress and total > 20,
      desc='eval',
      unit='batch',
      leave=False,
  ) as bar:
    batches = data.eval_batches()
    try:
      in_flight: collections.deque = collections.deque()
      for batch in batches:
        sums = p_eval_step(state, batch)
        in_flight.append(sums)
        if len(in_flight) > MAX_STEPS_IN_FLIGHT:  # As in training.
          jax.block_until_ready(in_flight.popleft())
        avg.add(sums)
        bar.update(1)
    finally:
      data_lib.close(batches)
  metrics = data.task.derived(avg.result())  # Bits per character, ...
  return {f'test_{k}': v for k, v in metrics.items()}


def sparsity_record(params, cfg: config_lib.Config) -> dict[str, Any]:
  """Sparsity of the selected leaves, of all params, and per selected layer."""
  records = rda_optax.sparsity.layer_sparsity(params, selection.run_mask(cfg))
  summary = rda_optax.sparsity.sparsity_summary(params, records=records)
  out = {
      'sparsity': summary['regularized/sparsity'],
      'total_sparsity': summary['total/sparsity'],
      'channel_sparsity': summary['regularized/channel_sparsity'],
      'layers': {r.path: r.sparsity for r in records if r.regularized},
  }
  if cfg.scale_lam:
    # --scale_lam: the share of batch-norm scales it holds at exactly zero
    # (each silences a channel of the layer before it).
    is_scale = selection.scale_leaf(cfg)
    scales = [
        np.asarray(x)
        for path, x in jax.tree_util.tree_flatten_with_path(params)[0]
        if is_scale(path) and selection.is_norm_scale(path)
    ]
    out['zero_scales'] = float(
        sum(int((x == 0).sum()) for x in scales)
        / max(sum(x.size for x in scales), 1)
    )
  return out


def eval_line(r: dict[str, Any], task=tasks.CLASSIFICATION) -> str:
  """One console line of an evaluation record (the task's metrics)."""
  return (
      f"epoch {r['epoch']:.2f} step {r['step']} ({r['phase']}): "
      f'{task.eval_summary(r)} | '
      f"sparsity {r['sparsity']:.4f} (all params {r['total_sparsity']:.4f})"
      + (
          f" | zero batch-norm scales {r['zero_scales']:.4f}"
          if 'zero_scales' in r
          else ''
      )
  )

"""Metrics of a run: JSON lines, TensorBoard and the tqdm progress bar.

Records go to ``<workdir>/metrics.jsonl``, one JSON object per line, and to
TensorBoard event files in ``<workdir>/tensorboard`` (tensorboardX). Only
process 0 writes. Every record has ``type`` (``train`` or ``eval``), ``step``
(optimizer steps done), ``epoch`` and ``phase`` (``main`` or ``asr``):

* ``train``: ``loss``, ``top1``, ``top5`` (averaged over the steps since the
  previous record), ``images_per_sec`` (global, all devices), ``sparsity``
  (of the selected leaves), ``lr`` / ``gamma`` / ``lam`` (the values in use).
* ``eval``: ``test_loss``, ``test_top1``, ``test_top5`` (every example of
  the eval split exactly once), ``train_loss`` / ``train_top1`` /
  ``train_top5`` (averaged over the epoch), ``sparsity`` (selected leaves),
  ``total_sparsity`` (every parameter) and ``layers``: per-layer
  ``{path: sparsity}`` of the selected leaves.

When a run resumes from step ``s``, records after ``s`` (written by the
interrupted run after its last checkpoint) are dropped, and TensorBoard
purges its events after ``s``.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Iterable

import jax
import numpy as np
from tensorboardX import SummaryWriter
from tqdm.auto import tqdm

from . import console

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'


def _jsonable(v: Any) -> Any:
  if isinstance(v, dict):
    return {str(k): _jsonable(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_jsonable(x) for x in v]
  if isinstance(v, (np.integer,)):
    return int(v)
  if isinstance(v, (np.floating, float)):
    v = float(v)
    return v if math.isfinite(v) else None
  if isinstance(v, np.ndarray):
    return _jsonable(v.tolist())
  if hasattr(v, 'shape') and getattr(v, 'shape') == ():
    return _jsonable(np.asarray(v).item())
  return v


def read_records(workdir: str, type: str | None = None) -> list[dict[str, Any]]:
  """The records of ``<workdir>/metrics.jsonl`` (of one ``type`` if given)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  out = []
  with open(path, 'rb') as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        rec = json.loads(line.decode('utf-8'))
      except (UnicodeDecodeError, json.JSONDecodeError):
        continue  # A line cut by a kill, or damaged: skipped.
      if not isinstance(rec, dict):
        continue
      if type is None or rec.get('type') == type:
        out.append(rec)
  return out


def flatten(record: dict[str, Any], prefix: str = '') -> dict[str, float]:
  """Numeric scalars of a (nested) record as 'a/b' keys."""
  out = {}
  for k, v in record.items():
    key = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(flatten(v, key + '/'))
    elif isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
      out[key] = float(v)
  return out


class MetricWriter:
  """Writes records to JSON lines and TensorBoard (process 0 only).

  Args:
    workdir: the run directory.
    enabled: False on processes other than 0 (nothing is written).
    resume_step: the step the run (re)starts from: records with a larger
      step are dropped from the JSON lines file, TensorBoard events purged.
    tensorboard: also write TensorBoard events.
  """

  def __init__(
      self,
      workdir: str,
      *,
      enabled: bool = True,
      resume_step: int = 0,
      tensorboard: bool = True,
  ):
    self.enabled = enabled
    self.path = os.path.join(workdir, METRICS_FILE)
    self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._truncate_after(resume_step)
    if tensorboard:
      # Drops events of an interrupted run after its last checkpoint.
      self._tb = SummaryWriter(
          os.path.join(workdir, TENSORBOARD_DIR), purge_step=resume_step + 1
      )

  def _truncate_after(self, step: int) -> None:
    if not os.path.exists(self.path):
      return
    keep = [
        r
        for r in read_records(os.path.dirname(self.path))
        if int(r.get('step', 0)) <= step
    ]
    tmp = self.path + '.tmp'
    with open(tmp, 'w') as f:
      for r in keep:
        f.write(json.dumps(r, sort_keys=True) + '\n')
    os.replace(tmp, self.path)

  def write(self, record: dict[str, Any]) -> None:
    """Appends one record (``type`` and ``step`` keys required)."""
    if not self.enabled:
      return
    record = _jsonable(record)
    with open(self.path, 'a') as f:
      f.write(json.dumps(record, sort_keys=True) + '\n')
    if self._tb is not None:
      step = int(record['step'])
      kind = record.get('type', 'train')
      for k, v in flatten(record).items():
        if k == 'step':
          continue
        if k.startswith('layers/'):
          tag = 'layer_sparsity/' + k[len('layers/') :]
        else:
          tag = f'{kind}/{k}'
        self._tb.add_scalar(tag, v, step)

  def write_hparams(self, config: dict[str, Any]) -> None:
    """The config as TensorBoard text (once per run)."""
    if self.enabled and self._tb is not None:
      text = '\n'.join(f'    {k}: {v}' for k, v in sorted(config.items()))
      self._tb.add_text('config', text, 0)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


class Averager:
  """Sums of per-step metric sums (device arrays), averaged on demand.

  Train / eval steps return ``{'loss', 'top1', 'top5', 'count'}`` summed over
  the examples of the step (all devices); :meth:`result` divides by the
  total count. Device values are fetched only in :meth:`result`, so adding
  does not wait for the device.
  """

  def __init__(self):
    self._items: list[Any] = []

  def add(self, sums: Any) -> None:
    self._items.append(sums)

  def __len__(self) -> int:
    return len(self._items)

  def result(self) -> dict[str, float]:
    if not self._items:
      return {}
    items = jax.device_get(self._items)
    total: dict[str, float] = {}
    for it in items:
      for k, v in it.items():
        total[k] = total.get(k, 0.0) + float(np.asarray(v).reshape(-1)[0])
    count = total.pop('count', 0.0) or float('nan')
    self._items = []
    return {k: v / count for k, v in total.items()}


def progress_bar(
    total: int,
    initial: int = 0,
    enabled: bool = True,
    desc: str = 'train',
    unit: str = 'step',
    leave: bool = True,
):
  """A tqdm bar on a terminal only.

  Disabled off process 0, with ``--no-progress``, and when stderr is not a
  terminal (a log file gets the plain evaluation lines, not carriage-return
  frames).
  """
  enabled = enabled and console.is_terminal()
  return tqdm(
      total=total,
      initial=initial,
      disable=not enabled,
      desc=desc,
      unit=unit,
      dynamic_ncols=True,
      mininterval=1.0,
      leave=leave,
  )


def postfix(record: dict[str, Any]) -> dict[str, str]:
  """The live fields of the progress bar from a train record."""
  out = {}
  for key, name, fmt in (
      ('loss', 'loss', '{:.3f}'),
      ('top1', 'acc', '{:.3f}'),
      ('sparsity', 'sparsity', '{:.3f}'),
      ('images_per_sec', 'img/s', '{:.0f}'),
  ):
    v = record.get(key)
    if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
      out[name] = fmt.format(v)
  return out


def last(records: Iterable[dict[str, Any]], key: str) -> Any:
  """The last value of ``key`` among records that have it."""
  value = None
  for r in records:
    if key in r and r[key] is not None:
      value = r[key]
  return value


class Throughput:
  """Images per second between log lines, without compile, eval or saves."""

  def __init__(self, global_batch: int):
    self.global_batch = global_batch
    self.since, self.steps = None, 0

  def step(self, sums) -> None:
    if self.since is None:  # The first step compiles: time from its end.
      jax.block_until_ready(sums)
      self.since, self.steps = time.perf_counter(), 0
    else:
      self.steps += 1

  def record(self) -> dict[str, float]:
    now = time.perf_counter()
    out = (
        {'images_per_sec': self.steps * self.global_batch / (now - self.since)}
        if self.steps
        else {}
    )
    self.since, self.steps = now, 0
    return out

  def restart(self) -> None:
    self.since = time.perf_counter()

  def exclude(self, seconds: float) -> None:
    if self.since is not None:
      self.since += seconds

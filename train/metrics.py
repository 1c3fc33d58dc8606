"""Metrics of a run: JSON lines, TensorBoard and the tqdm progress bar.

Records go to ``<workdir>/metrics.jsonl``, one JSON object per line, and to
TensorBoard event files in ``<workdir>/tensorboard`` (tensorboardX). Only
process 0 writes. Every record has ``type`` (``train`` or ``eval``), ``step``
(optimizer steps done), ``epoch`` and ``phase`` (``main`` or ``asr``):

* ``train``: ``loss``, ``top1``, ``top5`` (averaged over the steps since the
  previous record), ``images_per_sec`` (global, all devices; a language
  model: ``chars_per_sec``, and ``bpc``, bits per character), ``sparsity``
  (of the selected leaves), ``lr`` / ``gamma`` / ``lam`` (the values in use).
* ``eval``: ``test_loss``, ``test_top1``, ``test_top5`` (every example of
  the eval split exactly once; a language model: its validation slice, every
  character predicted once, top-1/5 per character, and ``test_bpc``),
  ``train_loss`` / ``train_top1`` /
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
import sys
import threading
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


# TensorBoard's writer (tensorboardX) writes from a thread of its own and
# flushes again at exit: on a full disk those raise where nobody catches them
# (a thread's traceback, 'Exception ignored in atexit callback'). They are
# kept here instead, and the writer's next write raises the error in the
# main thread, where the run stops with one line.
_TB_FAILURES: dict[Any, OSError] = {}
_hooks_installed = False


def _is_tensorboard(obj) -> bool:
  text = f'{getattr(obj, "__module__", "")} {obj!r}'
  return 'tensorboardX' in text or 'tfevents' in text


def _install_tensorboard_hooks() -> None:
  global _hooks_installed
  if _hooks_installed:
    return
  _hooks_installed = True
  thread_hook, unraisable_hook = threading.excepthook, sys.unraisablehook

  def on_thread_error(args):
    if isinstance(args.exc_value, OSError) and _is_tensorboard(args.thread):
      _TB_FAILURES[args.thread] = args.exc_value
      return
    thread_hook(args)

  def on_unraisable(unraisable):
    if isinstance(unraisable.exc_value, OSError) and _is_tensorboard(
        unraisable.object
    ):
      return
    unraisable_hook(unraisable)

  threading.excepthook = on_thread_error
  sys.unraisablehook = on_unraisable


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
      _install_tensorboard_hooks()
      before = set(threading.enumerate())
      # Drops events of an interrupted run after its last checkpoint.
      self._tb = SummaryWriter(
          os.path.join(workdir, TENSORBOARD_DIR), purge_step=resume_step + 1
      )
      self._tb_threads = set(threading.enumerate()) - before

  def _check_tensorboard(self) -> None:
    """Raises the error of TensorBoard's writer thread, if it failed."""
    for thread in getattr(self, '_tb_threads', ()):
      if thread in _TB_FAILURES:
        raise _TB_FAILURES.pop(thread)

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
    self._check_tensorboard()
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

  def close(self, *, quiet: bool = False) -> None:
    """Flushes and closes TensorBoard's file.

    Args:
      quiet: do not raise an error of writing (the run is already stopping
        for another reason, e.g. a full disk).
    """
    tb, self._tb = self._tb, None
    if tb is None:
      return
    try:
      self._check_tensorboard()
      tb.close()
    except OSError:
      _abandon(tb)
      if not quiet:
        raise


def _abandon(tb) -> None:
  """Stops a tensorboardX writer whose file cannot be written, without
  another write (its thread, its file, its flush at exit)."""
  for writer in (getattr(tb, 'all_writers', None) or {}).values():
    events = getattr(writer, 'event_writer', None)
    worker = getattr(events, '_worker', None)
    if events is None or getattr(events, '_closed', True):
      continue
    events._closed = True  # pylint: disable=protected-access
    try:
      if worker is not None:
        worker.stop()
      events._ev_writer.close()  # pylint: disable=protected-access
    except (OSError, AttributeError, ValueError):
      pass  # The file is closed even when its last flush fails.


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
      ('chars_per_sec', 'char/s', '{:.0f}'),
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
  """Images (or ``unit``) per second between log lines, without compile,
  eval or saves; recorded as ``<unit>_per_sec``.

  Args:
    global_batch: the items of one step (images; for a language model the
      characters predicted: windows × context).
    unit: what is counted (``images``, ``chars``).
  """

  def __init__(self, global_batch: int, unit: str = 'images'):
    self.global_batch = global_batch
    self.key = f'{unit}_per_sec'
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
        {self.key: self.steps * self.global_batch / (now - self.since)}
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

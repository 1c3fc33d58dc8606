"""Batches of a text corpus for the language-model task, sharded for pmap.

* Train: the global batch of step ``s`` is ``B`` windows of ``context + 1``
  consecutive tokens of the training part, starting at positions drawn
  uniformly by ``np.random.default_rng([seed, s, 2])``: a function of
  ``(seed, step)`` only, so a resumed run sees the same batches, and the
  global batch does not depend on the number of hosts or devices. Host
  ``p`` of ``P`` takes rows ``[p·B/P, (p+1)·B/P)``; each host's rows are laid
  out ``(local_devices, per_device_batch, context + 1)``. An "epoch" is
  ``(len(train) − 1) // context`` windows, as many predictions as the
  training part has characters.
* Eval: the validation slice in fixed windows, ``w`` starting at ``w ·
  context`` (``context + 1`` tokens, so each window predicts the
  ``context`` characters after its first, and every character of the slice
  but the first is predicted exactly once); the last window is shorter,
  padded with token 0 whose predictions have ``mask`` 0, as are the padding
  windows that fill the last batch. Host ``p`` owns a contiguous shard of
  windows, all hosts run the same number of batches
  (:func:`train.data.input_pipeline.num_eval_steps`).

:func:`train.data.loader.make_text_data` wraps both as the
:class:`~train.data.loader.Data` the loop consumes, with the
:class:`train.tasks.LanguageModel` task.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from . import input_pipeline

Batch = dict[str, np.ndarray]


def num_train_windows(num_tokens: int, context: int) -> int:
  """Windows of ``context`` predictions in a training part (an "epoch")."""
  return (num_tokens - 1) // context


def num_eval_windows(num_tokens: int, context: int) -> int:
  """Fixed windows covering a validation slice: ``ceil((n − 1) / context)``."""
  return -(-(num_tokens - 1) // context)


def check_windows(
    num_tokens: int, context: int, what: str = 'A text', fix: str = ''
) -> None:
  """A text of ``num_tokens`` holds a window of ``context`` + 1 tokens
  (ValueError naming ``what`` the text is and the fix if not: lower
  ``--context``, or ``fix``)."""
  if context < 1:
    raise ValueError(f'--context must be >= 1, got {context}.')
  if num_tokens < context + 1:
    raise ValueError(
        f'{what} of {num_tokens} characters has no window of --context '
        f'{context} (+ 1) characters: {fix}{" or " if fix else ""}lower '
        '--context.'
    )


def train_window_starts(
    num_tokens: int, context: int, global_batch: int, seed: int, step: int
) -> np.ndarray:
  """The first positions of the global batch's windows at ``step``."""
  rng = np.random.default_rng([int(seed), int(step), 2])
  return rng.integers(0, num_tokens - context, size=global_batch)


def train_batches(
    tokens: np.ndarray,
    context: int,
    global_batch_size: int,
    *,
    seed: int,
    start_step: int = 0,
    num_steps: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    local_device_count: int | None = None,
) -> Iterator[Batch]:
  """This host's share of the train batches from ``start_step`` on.

  Yields:
    ``{'tokens': int32 (local_devices, B/(P·L), context + 1)}``.
  """
  check_windows(len(tokens), context)
  pi, pc, ldc = input_pipeline.topology(
      process_index, process_count, local_device_count
  )
  input_pipeline.per_device_batch_size(global_batch_size, pc, ldc)
  host_batch = global_batch_size // pc
  rows = slice(pi * host_batch, (pi + 1) * host_batch)
  offsets = np.arange(context + 1)
  step = int(start_step)
  if step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}')
  end = None if num_steps is None else step + int(num_steps)
  while end is None or step < end:
    starts = train_window_starts(
        len(tokens), context, global_batch_size, seed, step
    )[rows]
    windows = tokens[starts[:, None] + offsets].astype(np.int32)
    yield {'tokens': windows.reshape(ldc, host_batch // ldc, context + 1)}
    step += 1


def eval_batches(
    tokens: np.ndarray,
    context: int,
    global_batch_size: int,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    local_device_count: int | None = None,
) -> Iterator[Batch]:
  """This host's validation batches (every character predicted once).

  Yields:
    ``{'tokens': int32 (L, b, context + 1), 'mask': float32 (L, b,
    context)}``, ``mask`` 1 for real predictions.
  """
  check_windows(len(tokens), context)
  pi, pc, ldc = input_pipeline.topology(
      process_index, process_count, local_device_count
  )
  input_pipeline.per_device_batch_size(global_batch_size, pc, ldc)
  n = len(tokens)
  windows = num_eval_windows(n, context)
  host_batch = global_batch_size // pc
  lo, hi = input_pipeline.eval_shard(windows, pi, pc)
  for step in range(
      input_pipeline.num_eval_steps(windows, global_batch_size, pc)
  ):
    out = np.zeros((host_batch, context + 1), np.int32)
    mask = np.zeros((host_batch, context), np.float32)
    for row in range(host_batch):
      w = lo + step * host_batch + row
      if w >= hi:
        break
      piece = tokens[w * context : w * context + context + 1]
      out[row, : len(piece)] = piece
      mask[row, : len(piece) - 1] = 1.0
    yield {
        'tokens': out.reshape(ldc, host_batch // ldc, context + 1),
        'mask': mask.reshape(ldc, host_batch // ldc, context),
    }

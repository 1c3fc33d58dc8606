"""Checkpoints of a run with Orbax, each verified by checksums when read.

A checkpoint is one host copy of the train state, ``{'step', 'params',
'batch_stats', 'opt_state'}`` as NumPy arrays, saved by an
:class:`orbax.checkpoint.CheckpointManager` under
``<workdir>/checkpoints/<step>/default``, with a CRC-32 of every array (its
shape and dtype too) beside it in ``<step>/integrity``.

* Verified: every read (resume, ``--init_from``, export, report) compares
  each array with its checksum. Orbax does not check the arrays' bytes (its
  OCDBT index is checksummed, the data is not), so a flipped bit would
  otherwise be read back as a different number. A checkpoint that does not
  match, or cannot be read at all (truncated, empty), is skipped with one
  warning line naming it, and the newest good one is used; nothing on disk
  is changed (the bad step is rewritten when the resumed run reaches it).
  Checkpoints written before the checksums existed are read unverified,
  with a note.
* Atomic: Orbax writes a step into a temporary directory and renames it when
  complete (``commit_success.txt`` on file systems without atomic rename); a
  write interrupted by a kill leaves only a temporary directory, which
  :meth:`Checkpoints.latest_step` ignores and the next run deletes, so the
  previous checkpoint stays usable. At least 2 checkpoints are kept.
* Failed writes stop the run: a write that fails (disk full, a folder not
  writable) raises :class:`CheckpointWriteError` from the next
  :meth:`Checkpoints.check` (the train loop calls it every step),
  :meth:`~Checkpoints.save` or :meth:`~Checkpoints.wait`: one line with the
  cause and the last good checkpoint, which is kept.
* Asynchronous (default, one process): the write runs in a background thread
  on a private host copy, while training goes on. With several processes
  each save is synchronous (Orbax's barriers between the processes are
  collectives that must not run beside the train step's).
* Multi-host: every process calls :meth:`Checkpoints.save` / ``restore``;
  NumPy arrays are written by process 0 only, so the run directory must be
  on a file system all hosts share.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import console

# The parts of this module's job, each in a module of its own; their names
# are this module's too (train.checkpoint.Checkpoints, ...).
# pylint: disable=unused-import
from .checkpoint_failures import CheckpointWriteError
from .checkpoint_failures import WriteFailed
from .checkpoint_failures import after_write_failure
from .checkpoint_failures import write_cause
from .checkpoint_integrity import CHECKSUMS_FORMAT
from .checkpoint_integrity import CHECKSUMS_VERSION
from .checkpoint_integrity import DamagedCheckpoint
from .checkpoint_integrity import checksums
from .checkpoint_integrity import host_copy
from .checkpoint_integrity import verify
from .checkpoint_manager import INTEGRITY
from .checkpoint_manager import STATE
from .checkpoint_manager import Checkpoints
from .checkpoint_manager import UnreadableCheckpoints

# pylint: enable=unused-import


def find_checkpoint_dir(path: str) -> str:
  """The checkpoint directory of ``path``: a run dir or checkpoints/ itself."""
  sub = os.path.join(path, 'checkpoints')
  return sub if os.path.isdir(sub) else path


def open_read_only(path: str) -> Checkpoints:
  """The checkpoints of a run directory (or ``checkpoints/``), to read."""
  # Orbax notes each read-only option it adjusts (three absl warnings per
  # load): reading is what this is for.
  console.drop_absl_warnings(
      'CheckpointManagerOptions.read_only=True', 'Given directory is read only'
  )
  return Checkpoints(
      find_checkpoint_dir(path), read_only=True, async_save=False
  )


def load_variables(path: str) -> dict[str, Any]:
  """``{'params', 'batch_stats', 'step'}`` of the newest good checkpoint.

  ``path`` is a run directory (``--workdir`` of an earlier run) or its
  ``checkpoints`` directory. These are the arrays as saved: for a run
  whose model is a sparse point kept apart from the parameters (RMDA with
  momentum), mid-run, that is the dense iterate; the model the run reports
  is :func:`train.train_state.load_model`'s.

  Raises:
    FileNotFoundError: no complete checkpoint there.
    UnreadableCheckpoints: none of them can be read.
  """
  ckpts = open_read_only(path)
  try:
    raw = ckpts.restore_latest()
  finally:
    ckpts.close(quiet=True)
  if raw is None:
    raise FileNotFoundError(
        f'No complete checkpoint under {path!r} (looked in '
        f'{ckpts.directory}).'
    )
  return {
      'params': raw['params'],
      'batch_stats': raw.get('batch_stats') or {},
      'step': int(np.asarray(raw.get('step', 0))),
  }

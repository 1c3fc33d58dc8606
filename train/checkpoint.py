"""Checkpoints of a run with Orbax.

A checkpoint is one host copy of the train state, ``{'step', 'params',
'batch_stats', 'opt_state'}`` as NumPy arrays, saved by an
:class:`orbax.checkpoint.CheckpointManager` under ``<workdir>/checkpoints/<step>``.

* Atomic: Orbax writes a step into a temporary directory and renames it when
  complete (``commit_success.txt`` on file systems without atomic rename); a
  write interrupted by a kill leaves only a temporary directory, which
  :meth:`Checkpoints.latest_step` ignores and the next run deletes, so the
  previous checkpoint stays usable. At least 2 checkpoints are kept.
* Multi-host: every process calls :meth:`Checkpoints.save` / ``restore`` (Orbax
  synchronises them); NumPy arrays are written by process 0 only, so the
  run directory must be on a file system all hosts share.
* Asynchronous (default): the write runs in a background thread on a private
  host copy; :meth:`Checkpoints.wait` (called by ``close``) blocks until done.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from . import console


class UnreadableCheckpoints(ValueError):
  """Checkpoints exist but none can be restored."""


def host_copy(tree: Any) -> Any:
  """A NumPy copy of a pytree of (single-device) arrays.

  ``np.array`` copies: on CPU ``np.asarray`` of a jax array may alias the
  device buffer, which a donated train step then overwrites.
  """
  return jax.tree.map(lambda x: np.array(x), tree)


class Checkpoints:
  """The checkpoints of one run directory.

  Example::

    ckpts = Checkpoints(os.path.join(workdir, 'checkpoints'))
    state = ckpts.restore_latest(template) or template
    ...
    ckpts.save(step, state_tree)
    ckpts.close()
  """

  def __init__(
      self,
      directory: str,
      *,
      keep: int = 3,
      async_save: bool = True,
      read_only: bool = False,
  ):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max(int(keep), 2),
        create=not read_only,
        read_only=read_only,
        # Removes temporary directories left by an interrupted write.
        cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=async_save,
    )
    self._options = options
    self._mngr = ocp.CheckpointManager(self.directory, options=options)
    self._unreadable: set[int] = set()

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def save(self, step: int, tree: Any, *, force: bool = True) -> bool:
    """Saves a pytree (copied to host NumPy first) as checkpoint ``step``."""
    if step in self._unreadable:
      # Rewritten when the resumed run reaches it again.
      self._mngr.delete(int(step))
      self._unreadable.discard(step)
    elif step in self._mngr.all_steps():
      return False
    return self._mngr.save(
        int(step), args=ocp.args.StandardSave(host_copy(tree)), force=force
    )

  def restore(self, step: int, template: Any) -> Any:
    """Restores checkpoint ``step`` into the structure of ``template``.

    The leaves come back as NumPy arrays of the template's shapes and dtypes.
    """
    target = host_copy(template)
    return self._mngr.restore(int(step), args=ocp.args.StandardRestore(target))

  def restore_latest(self, template: Any) -> Any | None:
    """The newest readable checkpoint in ``template``'s structure, or None.

    A checkpoint that cannot be read (a truncated or damaged file, an empty
    step folder) is reported on stderr in one line and skipped, as a database
    recovers to its last good commit; nothing on disk is changed.

    Raises:
      UnreadableCheckpoints: checkpoints exist but none can be read.
    """
    steps = sorted(self._mngr.all_steps(), reverse=True)
    bad = []
    for step in steps:
      try:
        restored = self.restore(step, template)
      except Exception as e:  # pylint: disable=broad-except
        # Orbax / tensorstore raise many types (ValueError, OSError,
        # KeyError, their own); the first line says which.
        first = (
            str(e).strip().splitlines()[0][:200]
            if str(e).strip()
            else (type(e).__name__)
        )
        bad.append(step)
        self._unreadable.add(step)
        # The manager may keep state from the failed read (an empty folder
        # makes it expect several items): start a fresh one.
        self._mngr.close()
        self._mngr = ocp.CheckpointManager(
            self.directory, options=self._options
        )
        print(
            f'warning: checkpoint step {step} in {self.directory} is '
            f'unreadable ({type(e).__name__}: {first}); trying an older '
            'one.',
            file=sys.stderr,
        )
        continue
      if bad:
        print(
            f'warning: resuming from step {step}, the newest readable '
            f'checkpoint (unreadable: {bad}).',
            file=sys.stderr,
        )
      return restored
    if steps:
      raise UnreadableCheckpoints(
          f'No checkpoint in {self.directory} can be read (steps {steps}): '
          f'remove that folder to start the run again, or choose a new '
          '--workdir.'
      )
    return None

  def restore_raw(self, step: int | None = None) -> Any:
    """A checkpoint without a template (nested dicts of arrays)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    return self._mngr.restore(int(step), args=ocp.args.StandardRestore())

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def find_checkpoint_dir(path: str) -> str:
  """The checkpoint directory of ``path``: a run dir or checkpoints/ itself."""
  sub = os.path.join(path, 'checkpoints')
  return sub if os.path.isdir(sub) else path


def load_variables(path: str) -> dict[str, Any]:
  """``{'params', 'batch_stats'}`` of the newest checkpoint under ``path``.

  ``path`` is a run directory (``--workdir`` of an earlier run) or its
  ``checkpoints`` directory. Used by ``--init_from`` (e.g. Han et al.'s
  prune + fine-tune from a dense or RDA run).

  Raises:
    FileNotFoundError: no complete checkpoint there.
  """
  directory = find_checkpoint_dir(path)
  # Orbax notes each read-only option it adjusts (three absl warnings per
  # load): reading is what this function is for.
  console.drop_absl_warnings(
      'CheckpointManagerOptions.read_only=True', 'Given directory is read only'
  )
  ckpts = Checkpoints(directory, read_only=True, async_save=False)
  try:
    step = ckpts.latest_step()
    if step is None:
      raise FileNotFoundError(
          f'No complete checkpoint under {path!r} (looked in {directory}).'
      )
    raw = ckpts.restore_raw(step)
  finally:
    ckpts.close()
  return {
      'params': raw['params'],
      'batch_stats': raw.get('batch_stats') or {},
      'step': int(np.asarray(raw.get('step', 0))),
  }

"""The checkpoints of one run directory: an Orbax manager, verified reads.

:class:`Checkpoints` saves the train state (a host copy) with an
:class:`orbax.checkpoint.CheckpointManager`, in the background by default,
with its checksums beside it (:mod:`train.checkpoint_integrity`), and reads
back the newest good checkpoint, skipping damaged or unreadable ones. A
failed write stops the run (:mod:`train.checkpoint_failures`). The design is
described in :mod:`train.checkpoint`.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from .checkpoint_failures import CheckpointWriteError
from .checkpoint_failures import after_write_failure
from .checkpoint_failures import first_line
from .checkpoint_failures import quiet_orbax_failures
from .checkpoint_failures import write_cause
from .checkpoint_integrity import DamagedCheckpoint
from .checkpoint_integrity import as_recorded
from .checkpoint_integrity import check_record
from .checkpoint_integrity import checksums
from .checkpoint_integrity import host_copy
from .checkpoint_integrity import verify

STATE = 'default'  # The Orbax item of the train state (the one item before).
INTEGRITY = 'integrity'  # The Orbax item of the checksums.


class UnreadableCheckpoints(ValueError):
  """Checkpoints exist but none can be restored."""


class Checkpoints:
  """The checkpoints of one run directory.

  Example::

    ckpts = Checkpoints(os.path.join(workdir, 'checkpoints'))
    state = ckpts.restore_latest(template) or template
    ...
    ckpts.save(step, state_tree)
    ckpts.check()  # every step: raises if a write in the background failed
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
    quiet_orbax_failures()
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max(int(keep), 2),
        create=not read_only,
        read_only=read_only,
        # Removes temporary directories left by an interrupted write.
        cleanup_tmp_directories=not read_only,
        # Asynchronous writes run Orbax's synchronous save in a thread of
        # this module, whose errors come back here (see save).
        enable_async_checkpointing=False,
    )
    self._options = options
    self._mngr = self._manager()
    self._async = async_save and jax.process_count() == 1
    self._unreadable: set[int] = set()
    self._writing: tuple[int, threading.Thread, list] | None = None
    self._closed = False
    self._noted: set[int] = set()  # Steps read unverified (said once).

  def _manager(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory, options=self._options, item_names=(STATE, INTEGRITY)
    )

  # -- Steps. ----------------------------------------------------------------

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def _steps_on_disk(self) -> list[int]:
    """The finished steps, as the folder lists them now (Orbax renames a
    step's temporary folder to the bare number when it is complete)."""
    try:
      names = os.listdir(self.directory)
    except OSError:
      return []
    return sorted(int(n) for n in names if n.isdigit())

  def last_good_step(self, failed: int | None = None) -> int | None:
    """The newest complete checkpoint not known to be damaged (other than
    ``failed``, a step whose write failed)."""
    good = [
        s
        for s in self._steps_on_disk()
        if s not in self._unreadable and s != failed
    ]
    return good[-1] if good else None

  # -- Writing. --------------------------------------------------------------

  def _write(self, step: int, host: Any) -> None:
    """Writes one checkpoint; any failure becomes CheckpointWriteError."""
    try:
      args = ocp.args.Composite(
          **{
              STATE: ocp.args.StandardSave(host),
              INTEGRITY: ocp.args.JsonSave(checksums(host)),
          }
      )
      self._mngr.save(step, args=args, force=True)
      if step not in self._steps_on_disk():
        raise OSError(errno.EIO, 'Orbax did not finish writing it')
    except Exception as e:  # pylint: disable=broad-except
      # Orbax and TensorStore raise ValueError, OSError and their own
      # types; the cause is what a user can act on.
      good = self.last_good_step(failed=step)
      raise CheckpointWriteError(
          f'the checkpoint of step {step} could not be written to '
          f'{self.directory} ({write_cause(e)}); '
          + after_write_failure(good, 'there')
      ) from e

  def save(self, step: int, tree: Any, *, force: bool = True) -> bool:
    """Saves a pytree (copied to host NumPy first) as checkpoint ``step``.

    Asynchronous unless disabled: returns once the host copy is made.

    Raises:
      CheckpointWriteError: this write failed (synchronous), or the
        previous one did.
    """
    del force  # Every call saves (the loop decides when).
    self.wait()
    if step in self._unreadable:
      # Rewritten when the resumed run reaches it again.
      self._mngr.delete(int(step))
      self._unreadable.discard(step)
    elif step in self._mngr.all_steps():
      return False
    host = host_copy(tree)
    if not self._async:
      self._write(int(step), host)
      return True
    errors: list[BaseException] = []

    def target():
      try:
        self._write(int(step), host)
      except BaseException as e:  # pylint: disable=broad-except
        errors.append(e)

    thread = threading.Thread(
        target=target, name=f'checkpoint-{step}', daemon=True
    )
    self._writing = (int(step), thread, errors)
    thread.start()
    return True

  def check(self) -> None:
    """Raises the error of a background write that has failed (cheap)."""
    if self._writing is not None and not self._writing[1].is_alive():
      self.wait()

  def wait(self) -> None:
    """Blocks until the write in flight is done.

    Raises:
      CheckpointWriteError: it failed.
    """
    if self._writing is None:
      return
    _, thread, errors = self._writing
    thread.join()
    self._writing = None
    if errors:
      raise errors[0]

  # -- Reading. --------------------------------------------------------------

  def _has_checksums(self, step: int) -> bool:
    """Whether step was written with checksums (all but the oldest runs').

    A step whose integrity item is missing although its metadata names one
    is damaged, not old.
    """
    folder = os.path.join(self.directory, str(step))
    if os.path.isdir(os.path.join(folder, INTEGRITY)):
      return True
    try:
      with open(os.path.join(folder, '_CHECKPOINT_METADATA'), 'rb') as f:
        named = INTEGRITY.encode() in f.read()
    except OSError:
      named = False
    if named:
      raise DamagedCheckpoint(f'its {INTEGRITY} folder is missing')
    return False

  def _restore(self, step: int, target: Any) -> Any:
    """Checkpoint ``step``, verified (``target``: a host tree or None).

    The arrays are read as they were saved (the dtypes its checksums name),
    verified, then cast to the target's dtypes as Orbax would.
    """
    self.wait()
    record = None
    if self._has_checksums(step):
      record = self._mngr.restore(
          int(step),
          args=ocp.args.Composite(**{INTEGRITY: ocp.args.JsonRestore()}),
      )[INTEGRITY]
      check_record(record)
    saved = (
        target
        if target is None or record is None
        else as_recorded(target, record)
    )
    tree = self._mngr.restore(
        int(step),
        args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(saved)}),
    )[STATE]
    if record is not None:
      verify(tree, record)
    elif step not in self._noted:
      self._noted.add(step)
      print(
          f'note: checkpoint step {step} in {self.directory} has no '
          'checksums (written by an older rda-optax): read unverified.',
          file=sys.stderr,
      )
    if target is not None:
      tree = jax.tree.map(
          lambda x, t: np.asarray(x).astype(t.dtype, copy=False), tree, target
      )
    return tree

  def restore(self, step: int, template: Any) -> Any:
    """Restores checkpoint ``step`` into the structure of ``template``.

    The leaves come back as NumPy arrays of the template's shapes and dtypes.

    Raises:
      DamagedCheckpoint: an array does not match its checksum.
    """
    return self._restore(step, host_copy(template))

  def restore_raw(self, step: int | None = None) -> Any:
    """A checkpoint without a template (nested dicts of arrays), verified."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    return self._restore(step, None)

  def restore_latest(self, template: Any = None) -> Any | None:
    """The newest good checkpoint (``template``'s structure), or None.

    A checkpoint that cannot be read (a truncated or damaged file, an empty
    step folder) or does not match its checksums is skipped, and one warning
    line on stderr names it and the step used instead, as a database
    recovers to its last good commit; nothing on disk is changed.

    Args:
      template: the tree to restore into; None: nested dicts of arrays.

    Raises:
      UnreadableCheckpoints: checkpoints exist but none can be read.
    """
    self.wait()
    steps = sorted(self._mngr.all_steps(), reverse=True)
    bad: list[tuple[int, str]] = []
    for step in steps:
      try:
        restored = self._restore(
            step, None if template is None else host_copy(template)
        )
      except Exception as e:  # pylint: disable=broad-except
        # Orbax / tensorstore raise many types (ValueError, OSError,
        # KeyError, their own); the first line says which.
        if isinstance(e, DamagedCheckpoint):
          what = f'damaged: {e}'
        else:
          what = f'unreadable: {type(e).__name__}: {first_line(e)}'
        bad.append((step, what))
        self._unreadable.add(step)
        # The manager may keep state from the failed read (an empty folder
        # makes it expect several items): start a fresh one.
        self._mngr.close()
        self._mngr = self._manager()
        continue
      if bad:
        print(
            f'warning: {self._describe(bad)}; resuming from step {step}, '
            'the newest good checkpoint.',
            file=sys.stderr,
        )
      return restored
    if steps:
      raise UnreadableCheckpoints(
          f'No checkpoint in {self.directory} can be read '
          f'({self._describe(bad)}): remove that folder to start the run '
          'again, or choose a new --workdir.'
      )
    return None

  def _describe(self, bad: list[tuple[int, str]]) -> str:
    if len(bad) == 1:
      step, what = bad[0]
      return f'checkpoint step {step} in {self.directory} is {what}'
    return (
        f'checkpoints {", ".join(str(s) for s, _ in bad)} in '
        f'{self.directory} cannot be used ('
        + '; '.join(f'step {s} is {w}' for s, w in bad)
        + ')'
    )

  def close(self, *, quiet: bool = False) -> None:
    """Waits for the write in flight and releases the manager.

    Args:
      quiet: do not raise the error of a failed write (the run is already
        stopping for another reason).
    """
    try:
      self.wait()
    except CheckpointWriteError:
      if not quiet:
        raise
    finally:
      if not self._closed:
        self._closed = True
        self._mngr.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close(quiet=exc[0] is not None)

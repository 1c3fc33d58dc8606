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

import errno
import logging
import os
import re
import sys
import threading
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from . import console

STATE = 'default'  # The Orbax item of the train state (the one item before).
INTEGRITY = 'integrity'  # The Orbax item of the checksums.
CHECKSUMS_FORMAT = 'rda-optax-checkpoint-checksums'
CHECKSUMS_VERSION = 1


class UnreadableCheckpoints(ValueError):
  """Checkpoints exist but none can be restored."""


class DamagedCheckpoint(ValueError):
  """A checkpoint whose arrays do not match their checksums."""


class WriteFailed(RuntimeError):
  """The run cannot write into its run directory (a full disk, a folder
  that is not writable); it stops.

  ``python -m train`` prints the message in one line and exits with
  :attr:`exit_status`.
  """

  exit_status = 4


class CheckpointWriteError(WriteFailed):
  """A checkpoint could not be written; the run stops (exit status 4)."""


# ---------------------------------------------------------------------------
# Quiet failures: what Orbax and TensorStore print when a read or a write
# fails is reported here in one line instead.
# ---------------------------------------------------------------------------

# absl records Orbax logs (with tracebacks) for failures this module reports.
_ORBAX_FAILURE_LOGS = (
    '_SignalingThread.run() raised an exception',
    'Save Finalize thread',
    'Checkpointer failed',
    'Failed to json parse Metadata file',
    'Failed to read Metadata file',
)
_default_unraisablehook = None


def _drop_closed_loop_callbacks(unraisable) -> None:
  """Drops TensorStore's 'Event loop is closed' callbacks, passes the rest.

  When one read of a checkpoint fails, Orbax's event loop ends while
  TensorStore's other reads are in flight; each then fails to post its
  result to the closed loop and Python prints an unraisable traceback for
  it (dozens of them, after the real error was raised).
  """
  value = unraisable.exc_value
  if isinstance(value, RuntimeError) and str(value) == 'Event loop is closed':
    return
  _default_unraisablehook(unraisable)


class _DropLostTensorStoreErrors(logging.Filter):
  """Drops asyncio's 'Future exception was never retrieved' records of
  TensorStore's failed reads and writes: the sibling operations of one that
  failed, reported here in one line, each logged with a traceback when
  garbage-collected."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not (
        'exception was never retrieved' in message
        and re.search(r'[A-Z_]{5,}: Error (reading|writing|opening)', message)
    )


_LOST_ERRORS = _DropLostTensorStoreErrors()


def _quiet_orbax_failures() -> None:
  global _default_unraisablehook
  console.drop_absl_warnings(*_ORBAX_FAILURE_LOGS)
  if _LOST_ERRORS not in logging.getLogger('asyncio').filters:
    logging.getLogger('asyncio').addFilter(_LOST_ERRORS)
  if _default_unraisablehook is None:  # Once per process.
    _default_unraisablehook = sys.unraisablehook
    sys.unraisablehook = _drop_closed_loop_callbacks


def after_write_failure(good: int | None, where: str) -> str:
  """What survives a failed write, and what to do."""
  if good is None:
    return (
        'no earlier checkpoint was written. Free space or make the folder '
        'writable, then run the same command again.'
    )
  return (
      f'the last good checkpoint, step {good}, is kept {where}. Free space '
      'or make the folder writable, then run the same command again: it '
      'resumes from there.'
  )


def _first_line(e: BaseException, limit: int = 200) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:limit] if text else type(e).__name__


def write_cause(e: BaseException) -> str:
  """The cause of a failed write in a few words (``No space left on device``).

  TensorStore reports OS errors as ``... [os_error_code='28']``.
  """
  if isinstance(e, OSError) and e.strerror:
    return e.strerror
  match = re.search(r"os_error_code='(\d+)'", str(e))
  if match:
    return os.strerror(int(match.group(1)))
  return f'{type(e).__name__}: {_first_line(e)}'


# ---------------------------------------------------------------------------
# Checksums.
# ---------------------------------------------------------------------------


def host_copy(tree: Any) -> Any:
  """A NumPy copy of a pytree of (single-device) arrays.

  ``np.array`` copies: on CPU ``np.asarray`` of a jax array may alias the
  device buffer, which a donated train step then overwrites.
  """
  return jax.tree.map(lambda x: np.array(x), tree)


def _leaf_name(path) -> str:
  """A key path as ``a/0/b``, the same for a template's tree (NamedTuple
  fields, tuples) and for Orbax's tree restored without one (dicts, lists)."""
  parts = []
  for k in path:
    for attr in ('key', 'name', 'idx'):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:  # pragma: no cover - other key kinds of custom nodes
      parts.append(str(k))
  return '/'.join(parts)


def _crc(x: np.ndarray) -> int:
  return zlib.crc32(np.ascontiguousarray(x).reshape(-1).view(np.uint8))


def checksums(tree: Any) -> dict[str, Any]:
  """The checksum record of a host tree: per leaf, shape, dtype and CRC-32."""
  leaves = {}
  for path, x in jax.tree_util.tree_leaves_with_path(tree):
    x = np.asarray(x)
    leaves[_leaf_name(path)] = [list(x.shape), x.dtype.name, _crc(x)]
  return {
      'format': CHECKSUMS_FORMAT,
      'version': CHECKSUMS_VERSION,
      'leaves': leaves,
  }


def _check_record(record: Any) -> None:
  if not (
      isinstance(record, dict)
      and record.get('format') == CHECKSUMS_FORMAT
      and record.get('version') == CHECKSUMS_VERSION
      and isinstance(record.get('leaves'), dict)
  ):
    raise DamagedCheckpoint('its checksum record is damaged')


def _as_recorded(target: Any, record: dict[str, Any]) -> Any:
  """``target`` with the dtypes the checksum record names (as saved)."""

  def recorded(path, x):
    entry = record['leaves'].get(_leaf_name(path))
    if entry is None:
      return x  # verify names the difference.
    try:
      dtype = jnp.dtype(entry[1])
    except Exception as e:  # pylint: disable=broad-except
      raise DamagedCheckpoint('its checksum record is damaged') from e
    return x if x.dtype == dtype else x.astype(dtype)

  return jax.tree_util.tree_map_with_path(recorded, target)


def verify(tree: Any, record: Any) -> None:
  """Raises DamagedCheckpoint unless ``tree`` matches its checksum record."""
  _check_record(record)
  want = record['leaves']
  have = {
      _leaf_name(p): np.asarray(x)
      for p, x in jax.tree_util.tree_leaves_with_path(tree)
  }
  if set(want) != set(have):
    odd = sorted(set(want) ^ set(have))
    raise DamagedCheckpoint(
        f'its arrays are not the ones it recorded ({", ".join(odd[:3])})'
    )
  for name, x in have.items():
    if want[name] != [list(x.shape), x.dtype.name, _crc(x)]:
      raise DamagedCheckpoint(f'{name} does not match its checksum')


# ---------------------------------------------------------------------------
# The checkpoints of a run directory.
# ---------------------------------------------------------------------------


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
    _quiet_orbax_failures()
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
      _check_record(record)
    saved = (
        target
        if target is None or record is None
        else _as_recorded(target, record)
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
          what = f'unreadable: {type(e).__name__}: {_first_line(e)}'
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

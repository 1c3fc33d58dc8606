"""Checkpoint writes that fail: one line with the cause, the run stops.

A write that fails (a full disk, a folder that is not writable) becomes
:class:`CheckpointWriteError` (a :class:`WriteFailed`, exit status 4) whose
message names the cause (:func:`write_cause`) and what survives
(:func:`after_write_failure`). What Orbax and TensorStore print when a read
or a write fails (absl records with tracebacks, asyncio's lost futures,
unraisable callbacks of a closed event loop) is dropped here
(:func:`quiet_orbax_failures`): the failure is reported in one line instead.
Used by :class:`train.checkpoint.Checkpoints`.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from . import console


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


def quiet_orbax_failures() -> None:
  """Drops Orbax's and TensorStore's own reports of failures (once per
  process for the unraisable hook)."""
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


def first_line(e: BaseException, limit: int = 200) -> str:
  """The first line of an error's message (at most ``limit`` characters)."""
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
  return f'{type(e).__name__}: {first_line(e)}'


# ---------------------------------------------------------------------------
# Checksums.
# ---------------------------------------------------------------------------

"""What the train job prints: terminals, log files, and other libraries' noise.

The job's own output is the evaluation lines and the final report. Progress
bars are drawn on a terminal only (a log file gets plain lines, not
carriage-return frames), and start-up chatter of the libraries underneath
that a user cannot act on is dropped: TensorFlow's C++ start-up lines (written
below Python, to file descriptor 2) and a few absl warnings of TFDS and Orbax
about states this job handles itself.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from typing import Sequence

# TensorFlow's C++ start-up lines: nothing a user of this job can act on.
TF_STARTUP_NOISE = (
    'All log messages before absl::InitializeLog',
    'oneDNN custom operations are on',
    'cpu_feature_guard',
    'To enable the following instructions',
    'rebuild TensorFlow with the appropriate compiler flags',
)


def is_terminal(stream=None) -> bool:
  """Whether ``stream`` (default stderr, where tqdm draws) is a terminal."""
  stream = sys.stderr if stream is None else stream
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError):
    return False


class _DropMessages(logging.Filter):
  """Drops records whose message contains one of ``fragments``."""

  def __init__(self):
    super().__init__()
    self.fragments: set[str] = set()

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(f in message for f in self.fragments)


_ABSL_FILTER = _DropMessages()


def drop_absl_warnings(*fragments: str) -> None:
  """Hides absl log records (TFDS, Orbax) containing any of ``fragments``."""
  _ABSL_FILTER.fragments.update(fragments)
  absl_log = logging.getLogger('absl')
  if _ABSL_FILTER not in absl_log.filters:
    absl_log.addFilter(_ABSL_FILTER)


@contextlib.contextmanager
def filtered_stderr_fd(noise: Sequence[str] = TF_STARTUP_NOISE):
  """Drops lines containing any of ``noise`` written to stderr's descriptor.

  Native libraries write there directly (Python's ``sys.stderr`` never sees
  them); everything else written meanwhile is passed on unchanged, after the
  block.
  """
  try:
    fd = sys.__stderr__.fileno()
  except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
    yield
    return
  sys.stderr.flush()
  saved = os.dup(fd)
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), fd)
    try:
      yield
    finally:
      try:
        sys.stderr.flush()
      finally:
        os.dup2(saved, fd)
        os.close(saved)
      tmp.seek(0)
      text = tmp.read().decode(errors='replace')
      kept = [
          line
          for line in text.splitlines(keepends=True)
          if not any(n in line for n in noise)
      ]
      if kept:
        sys.stderr.write(''.join(kept))
        sys.stderr.flush()

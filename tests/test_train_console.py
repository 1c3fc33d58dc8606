"""What the train job prints: bars on terminals only, library noise dropped."""

import io
import logging
import os
import sys

from train import console
from train import metrics as metrics_lib


class _Tty(io.StringIO):

  def isatty(self):
    return True


def test_is_terminal():
  assert console.is_terminal(_Tty())
  assert not console.is_terminal(io.StringIO())
  assert not console.is_terminal(object())  # No isatty at all.


def test_progress_bar_is_off_when_stderr_is_not_a_terminal(monkeypatch):
  monkeypatch.setattr(sys, 'stderr', io.StringIO())
  bar = metrics_lib.progress_bar(10)
  assert bar.disable
  bar.update(5)
  bar.close()
  assert sys.stderr.getvalue() == ''  # No carriage-return frames in logs.
  monkeypatch.setattr(sys, 'stderr', _Tty())
  bar = metrics_lib.progress_bar(10)
  assert not bar.disable
  bar.close()
  assert metrics_lib.progress_bar(10, enabled=False).disable  # --no-progress


def test_filtered_stderr_fd_drops_tensorflow_start_up_lines_only(capfd):
  with console.filtered_stderr_fd():
    os.write(
        2,
        b'WARNING: All log messages before absl::InitializeLog() is '
        b'called are written to STDERR\n',
    )
    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\n')
    os.write(2, b'a real problem\n')
  err = capfd.readouterr().err
  assert err == 'a real problem\n'


def test_drop_absl_warnings_hides_only_the_named_messages(caplog):
  console.drop_absl_warnings('has no dataset_info.json')
  absl_log = logging.getLogger('absl')
  # caplog's handler sits on the root logger: records the absl logger's
  # filter drops never reach it.
  with caplog.at_level(logging.WARNING):
    absl_log.warning('Variant folder /x/mnist/3.0.1 has no dataset_info.json')
    absl_log.warning('something else')
  assert [r.getMessage() for r in caplog.records] == ['something else']

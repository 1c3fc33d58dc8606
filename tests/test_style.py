"""Every Python file is formatted by the project's formatter (pyink).

Pyink is optax's formatter (Black with Google's 2-space indent); its
settings are in pyproject.toml. Run ``pyink .`` to fix what this reports.
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_file_is_formatted():
  pytest.importorskip('pyink', reason='pyink is in the test extra')
  proc = subprocess.run(
      [sys.executable, '-m', 'pyink', '--check', '.'],
      cwd=REPO,
      capture_output=True,
      text=True,
  )
  assert proc.returncode == 0, (
      'Files not formatted (run `pyink .`):\n' + proc.stderr[-3000:]
  )

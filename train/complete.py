"""The record of a finished run, read without JAX.

A run that reaches its last step writes ``<workdir>/complete.json`` (its
config, the steps it took). Running the same command again then answers in
about a second, before the numerical stack loads or any data is read: the
run is complete, and its report is printed again. Any other command on that
run directory (a changed option, another version of the record, a missing
final checkpoint) takes the normal path, which checks everything.
"""

from __future__ import annotations

import json
import os
from typing import Any

from . import config as config_lib

FILE = 'complete.json'
VERSION = 1


def _jsonable(cfg: config_lib.Config) -> dict[str, Any]:
  return json.loads(cfg.to_json())


def write(cfg: config_lib.Config, steps: int) -> None:
  """Records that the run of ``cfg`` finished after ``steps`` steps
  (atomically: a killed write leaves no record)."""
  path = os.path.join(cfg.workdir, FILE)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(
        {'version': VERSION, 'steps': int(steps), 'config': _jsonable(cfg)},
        f,
        indent=2,
        sort_keys=True,
    )
    f.write('\n')
  os.replace(tmp, path)


def finished(cfg: config_lib.Config) -> int | None:
  """The steps of the finished run of exactly ``cfg`` in ``cfg.workdir``;
  None when there is none (no record, a record of another config, its final
  checkpoint gone, an unreadable record)."""
  if not cfg.workdir:
    return None
  try:
    with open(os.path.join(cfg.workdir, FILE)) as f:
      record = json.load(f)
    if record.get('version') != VERSION:
      return None
    steps = int(record['steps'])
    same = record['config'] == _jsonable(cfg)
  except (OSError, ValueError, KeyError, TypeError):
    return None
  final = os.path.join(cfg.workdir, 'checkpoints', str(steps))
  if not same or not os.path.isdir(final):
    return None
  return steps


def report_text(workdir: str) -> str:
  """The saved report's text lines (its images left out); '' if absent."""
  try:
    with open(os.path.join(workdir, 'report', 'report.md')) as f:
      lines = f.read().splitlines()
  except OSError:
    return ''
  return '\n'.join(l for l in lines if not l.startswith('![')).strip()


def clear(workdir: str) -> None:
  """Removes the record: the run directory is about to train again (with
  other settings), and the record would describe a state it leaves."""
  try:
    os.remove(os.path.join(workdir, FILE))
  except FileNotFoundError:
    pass

"""Faults of kinds 2 and 3: a second run on a busy run directory, a run on
the directory of a killed one, and damaged checkpoints (bit flips,
truncated files) read back as the job does, and one resumed end to end."""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from train import checkpoint as ckpt_lib
from train import metrics as metrics_lib

from .bench import LAM
from .bench import REPO
from .bench import RUN
from .bench import Bench
from .bench import leaves
from .bench import err_lines

LONG = 100_000  # Epochs of the run that holds a run directory (until killed).


def run_directory_cases(b: Bench) -> str:
  workdir = b.path('busy')
  first = subprocess.Popen(
      [
          sys.executable,
          '-m',
          'train',
          *RUN,
          '--lam',
          str(LAM),
          '--epochs',
          str(LONG),
          '--workdir',
          workdir,
      ],
      cwd=REPO,
      env=b.env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
  )
  lock = os.path.join(workdir, 'run.lock')
  ckpts = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + 300
  while time.time() < deadline and not (
      os.path.isdir(ckpts)
      and len([n for n in os.listdir(ckpts) if n.isdigit()]) >= 2
  ):
    time.sleep(0.2)
  alive = first.poll() is None
  second = b.train(workdir, '--stop_at_step', '1', epochs=LONG)
  lines = err_lines(second)
  b.record(
      '2 run directory',
      'a second run on a run directory in use',
      alive
      and first.poll() is None
      and second.returncode == 2
      and len(lines) == 1
      and f'PID {first.pid} on host {socket.gethostname()}' in lines[0],
      f'rc {second.returncode}, {len(lines)} line: "{lines[0][:100]}..."'
      if lines
      else f'rc {second.returncode}',
  )
  os.kill(first.pid, signal.SIGKILL)
  first.wait()
  stale = os.path.exists(lock)
  steps = sorted(int(n) for n in os.listdir(ckpts) if n.isdigit())
  third = b.train(workdir, '--stop_at_step', str(steps[-1] + 8), epochs=LONG)
  logged = metrics_lib.read_records(workdir, 'train')
  b.record(
      '2 run directory',
      'a run on the directory of a killed run (its lock file left)',
      stale
      and third.returncode == 0
      and 'has ended (killed?): taken over' in third.stderr
      and logged[-1]['step'] == steps[-1] + 8,
      f'lock file left: {stale}; rc {third.returncode}; resumed from step '
      f'{steps[-1]} to {logged[-1]["step"]}',
  )
  return workdir


def _flip(path: str, at: int) -> None:
  with open(path, 'r+b') as f:
    f.seek(at)
    byte = f.read(1)[0]
    f.seek(at)
    f.write(bytes([byte ^ (1 << (at % 8))]))


def checkpoint_cases(b: Bench, workdir: str) -> None:
  ckdir = os.path.join(workdir, 'checkpoints')
  steps = sorted(int(n) for n in os.listdir(ckdir) if n.isdigit())
  newest, previous = steps[-1], steps[-2]
  c = ckpt_lib.open_read_only(ckdir)
  good = {s: c.restore_raw(s) for s in (newest, previous)}
  c.close()
  files = sorted(
      os.path.relpath(os.path.join(d, f), ckdir)
      for d, _, fs in os.walk(os.path.join(ckdir, str(newest)))
      for f in fs
      if 'commit_success' not in f
  )
  rng = random.Random(0)
  data_file = max(files, key=lambda r: os.path.getsize(os.path.join(ckdir, r)))
  places = [
      (
          data_file,
          rng.randrange(os.path.getsize(os.path.join(ckdir, data_file))),
      )
      for _ in range(4)
  ]
  others = [f for f in files if f != data_file]
  for rel in rng.sample(others, min(6, len(others))):
    places.append(
        (rel, rng.randrange(max(os.path.getsize(os.path.join(ckdir, rel)), 1)))
    )
  cases = [(f'bit {at} of {rel}', rel, 'flip', at) for rel, at in places]
  cases += [(f'{rel} truncated', rel, 'cut', None) for rel in files]
  scratch = b.path('damaged', 'checkpoints')
  detected = silent = unharmed = 0
  for name, rel, kind, at in cases:
    shutil.rmtree(os.path.dirname(scratch), ignore_errors=True)
    shutil.copytree(ckdir, scratch)
    target = os.path.join(scratch, rel)
    if kind == 'flip':
      _flip(target, at)
    else:
      with open(target, 'r+b') as f:
        f.truncate(os.path.getsize(target) // 2)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
      c = ckpt_lib.open_read_only(scratch)
      got = c.restore_latest()
      c.close(quiet=True)
    same = lambda a, b_: all(
        np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(leaves(a), leaves(b_))
    )
    if same(got, good[newest]):
      unharmed += 1
      outcome = 'its own data (the bytes carried none)'
    elif same(got, good[previous]) and err.getvalue().count('\n') == 1:
      detected += 1
      outcome = 'detected: ' + err.getvalue().strip().split(' is ', 1)[1][:70]
    else:
      silent += 1
      outcome = 'SILENTLY DIFFERENT'
    b.record('3 checkpoint', name, outcome != 'SILENTLY DIFFERENT', outcome)
  b.summary_corruption = (len(cases), detected, unharmed, silent)
  # End to end: the newest checkpoint's data damaged, then the same command.
  _flip(os.path.join(ckdir, data_file), 200)
  resumed = b.train(workdir, '--stop_at_step', str(newest + 4), epochs=LONG)
  lines = err_lines(resumed)
  logged = metrics_lib.read_records(workdir, 'train')
  b.record(
      '3 checkpoint',
      'resume after a bit flip in the newest checkpoint (python -m train)',
      resumed.returncode == 0
      and len(lines) == 1
      and f'resuming from step {previous}' in lines[0]
      and logged[-1]['step'] == newest + 4,
      f'rc {resumed.returncode}: "{lines[0][:120]}..."'
      if lines
      else 'no warning',
  )

"""Kill -9 during training, resume, and compare with an uninterrupted run.

``python -m train`` (LeNet-5 of ``models/`` on in-memory synthetic data,
RDA then ASR, a checkpoint every 4 steps written asynchronously) is killed
with SIGKILL once it has written a few checkpoints, at a moment that is
likely to fall inside a checkpoint write. Re-running the same command with
the same run directory continues from the newest complete checkpoint; the
final parameters and optimizer state are bit-identical (CPU) to a run that
was never interrupted, and no step is logged twice.
"""

import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from _train_driver import (
    REPO,
    env_with_devices,
    flat,
    full_checkpoint,
    run_train,
    train_cmd,
)
from train import checkpoint as ckpt_lib
from train import metrics as metrics_lib

pytest.importorskip('models')

ARGS = [
    '--method',
    'rda',
    '--model',
    'lenet5',
    '--dataset',
    'synthetic',
    '--batch_size',
    '16',
    '--steps_per_epoch',
    '40',
    '--epochs',
    '3',
    '--asr_epochs',
    '2',
    '--lam',
    '1e-3',
    '--gamma',
    '20',
    '--init_scale',
    '2',
    '--checkpoint_every_steps',
    '4',
    '--log_every_steps',
    '4',
    '--keep_checkpoints',
    '2',
    '--no-progress',
    '--no-report',
]
TOTAL = 200


def _checkpoint_steps(workdir):
  d = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(d):
    return []
  return sorted(int(n) for n in os.listdir(d) if n.isdigit())


def _kill_during_training(workdir, min_step, timeout=240):
  proc = subprocess.Popen(
      train_cmd(ARGS + ['--workdir', workdir]),
      cwd=REPO,
      env=env_with_devices(1),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  start = time.time()
  try:
    while time.time() - start < timeout:
      steps = _checkpoint_steps(workdir)
      if steps and steps[-1] >= min_step:
        break
      if proc.poll() is not None:
        pytest.fail(f'training ended early: {proc.stderr.read()[-3000:]}')
      time.sleep(0.02)
    else:
      pytest.fail('no checkpoint in time')
    time.sleep(0.05)  # Somewhere in the next steps / checkpoint writes.
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL
  return _checkpoint_steps(workdir)


def test_kill_resume_is_bit_identical(tmp_path):
  ref, run = str(tmp_path / 'ref'), str(tmp_path / 'run')
  run_train(ARGS + ['--workdir', ref])

  left = _kill_during_training(run, min_step=60)
  assert left and left[-1] < TOTAL  # Killed before the end.
  # An interrupted write may have left an Orbax temporary directory; the
  # complete checkpoints are still there.
  complete = ckpt_lib.Checkpoints(
      os.path.join(run, 'checkpoints'), read_only=True
  ).latest_step()
  assert complete is not None and complete >= 60

  run_train(ARGS + ['--workdir', run])
  ckdir = os.path.join(run, 'checkpoints')
  assert not any('tmp' in n for n in os.listdir(ckdir))  # Cleaned up.
  a, b = full_checkpoint(ref), full_checkpoint(run)
  assert int(a['step']) == int(b['step']) == TOTAL
  fa, fb = flat(a), flat(b)
  assert set(fa) == set(fb)
  for k in fa:
    np.testing.assert_array_equal(fb[k], fa[k], err_msg=k)
  # Metrics after the resumed checkpoint were dropped, then re-logged once.
  steps = [r['step'] for r in metrics_lib.read_records(run, 'train')]
  assert steps == sorted(set(steps)) and steps[-1] == TOTAL
  assert steps == [r['step'] for r in metrics_lib.read_records(ref, 'train')]


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path):
  """A half-written checkpoint (Orbax tmp dir) is ignored, then removed."""
  run = str(tmp_path / 'run')
  args = ARGS + ['--workdir', run, '--stop_at_step', '8']
  run_train(args)
  ckdir = os.path.join(run, 'checkpoints')
  assert _checkpoint_steps(run) == [4, 8]
  # What a kill during the write of step 12 leaves: the data written so far
  # in '<step>.orbax-checkpoint-tmp-<time>', never renamed to '12'.
  tmp = os.path.join(ckdir, '12.orbax-checkpoint-tmp-1234567')
  shutil.copytree(os.path.join(ckdir, '8'), tmp)
  for root, _, files in os.walk(tmp):
    for f in files[:1]:
      with open(os.path.join(root, f), 'w') as fh:
        fh.write('partial')
  c = ckpt_lib.Checkpoints(ckdir, read_only=True)
  assert c.latest_step() == 8
  restored = c.restore_raw()
  assert int(restored['step']) == 8
  run_train(ARGS + ['--workdir', run, '--stop_at_step', '16'])
  assert not any('tmp' in n for n in os.listdir(ckdir))
  assert _checkpoint_steps(run) == [12, 16]  # keep_checkpoints 2

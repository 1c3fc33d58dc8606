"""Kill -9 during training, resume, and compare with an uninterrupted run.

``python -m train`` (LeNet-5 of ``models/`` on in-memory synthetic data,
RDA then ASR, a checkpoint every 4 steps written asynchronously) is killed
with SIGKILL at a known point: blocked at the checkpoint of step 20, after
logging it and before writing it. Re-running the same command with the same
run directory continues from the newest complete checkpoint (16), through
the start of ASR (step 30) to the end (50); the final
parameters and optimizer state are bit-identical (CPU) to a run that was
never interrupted, and no step is logged twice. A kill in the middle of a
write is :func:`test_interrupted_checkpoint_write_keeps_the_previous_one`.
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
    '10',
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
TOTAL = 50


def _checkpoint_steps(workdir):
  d = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(d):
    return []
  return sorted(int(n) for n in os.listdir(d) if n.isdigit())


KILL_AT = 20  # A checkpoint step (every 4) of the sparse phase (1-30).


def _kill_at_step(workdir, step, timeout=240):
  """Runs the job until it blocks at the checkpoint of ``step`` (every
  earlier write finished, this one not begun), then kills it with SIGKILL."""
  marker = os.path.join(os.path.dirname(workdir), 'blocked')
  proc = subprocess.Popen(
      train_cmd(
          ARGS + ['--workdir', workdir], block_before_save=(step, marker)
      ),
      cwd=REPO,
      env=env_with_devices(1),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  start = time.time()
  try:
    while not os.path.exists(marker):
      if proc.poll() is not None:
        pytest.fail(f'training ended early: {proc.stderr.read()[-3000:]}')
      if time.time() - start > timeout:
        pytest.fail(f'the job did not reach step {step} in {timeout} s')
      time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL


def test_kill_resume_is_bit_identical(tmp_path):
  ref, run = str(tmp_path / 'ref'), str(tmp_path / 'run')
  run_train(ARGS + ['--workdir', ref])

  _kill_at_step(run, KILL_AT)
  # Killed after logging step 20 and before writing its checkpoint: the run
  # resumes from step 16 and logs 17-20 again (once).
  assert _checkpoint_steps(run) == [KILL_AT - 8, KILL_AT - 4]
  logged = [r['step'] for r in metrics_lib.read_records(run, 'train')]
  assert logged[-1] == KILL_AT

  run_train(ARGS + ['--workdir', run])
  ckdir = os.path.join(run, 'checkpoints')
  assert not any('tmp' in n for n in os.listdir(ckdir))
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

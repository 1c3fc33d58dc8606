"""One run per run directory, and locks that a killed run does not leave
stuck: two processes on one lock, a holder killed with SIGKILL, and several
processes racing for the lock of a dead one (with ``flock``, and with the
``O_EXCL`` files used where a file system has no ``flock``)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from _train_driver import REPO, TinyBN
from train import config as config_lib
from train.data import loader as data_lib
from train import locks
from train import train as train_lib

HOLD = """
import sys, time
from train import locks
lock = locks.RunLock(sys.argv[1])
lock.acquire()
open(sys.argv[2], 'w').close()
time.sleep(600)
"""


def _hold(workdir, tmp_path):
  """A process that holds the run directory's lock (until killed)."""
  ready = tmp_path / 'ready'
  proc = subprocess.Popen(
      [sys.executable, '-c', HOLD, str(workdir), str(ready)], cwd=REPO
  )
  deadline = time.time() + 60
  while not ready.exists():
    assert proc.poll() is None and time.time() < deadline
    time.sleep(0.02)
  return proc


def _cfg(workdir):
  return config_lib.get_config(
      None,
      method='rda',
      dataset='synthetic',
      batch_size=16,
      steps_per_epoch=4,
      epochs=1,
      asr_epochs=0,
      progress=False,
      report=False,
      workdir=str(workdir),
  )


def test_a_second_run_is_refused_and_a_killed_ones_lock_taken_over(
    tmp_path, capsys
):
  workdir = tmp_path / 'run'
  proc = _hold(workdir, tmp_path)
  try:
    cfg = _cfg(workdir)
    data = data_lib.synthetic_data(
        cfg.dataset, global_batch=16, eval_global_batch=16, num_train=64
    )
    with pytest.raises(locks.RunLocked) as e:
      train_lib.train_and_evaluate(cfg, model=TinyBN(), data=data)
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith(f'the run directory {workdir} is in use')
    assert f'PID {proc.pid} on host {socket.gethostname()}' in message
    assert 'choose another --workdir' in message
    # Refused before writing anything.
    assert sorted(os.listdir(workdir)) == [locks.RUN_LOCK]
  finally:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
  # The killed run's lock file stays, naming it; it is taken over.
  with open(workdir / locks.RUN_LOCK) as f:
    assert json.load(f)['pid'] == proc.pid
  lock = locks.RunLock(str(workdir))
  lock.acquire()
  assert f'PID {proc.pid} on host' in capsys.readouterr().err
  with open(workdir / locks.RUN_LOCK) as f:
    assert json.load(f)['pid'] == os.getpid()
  lock.release()
  assert not os.path.exists(workdir / locks.RUN_LOCK)


RACE = """
import os, sys, time
from train import locks
path, go, flock = sys.argv[1], sys.argv[2], sys.argv[3] == '1'
open(f'{go}.ready.{os.getpid()}', 'w').close()
while not os.path.exists(go):
  time.sleep(0.001)
lock = locks.FileLock(path, use_flock=flock)
holder = lock.try_acquire()
print('won' if holder is None else 'lost', flush=True)
time.sleep(0.3)  # Hold it while the others try.
"""


@pytest.mark.parametrize('use_flock', [True, False], ids=['flock', 'o_excl'])
def test_racing_for_a_dead_holders_lock_exactly_one_wins(tmp_path, use_flock):
  path = tmp_path / 'run.lock'
  dead = subprocess.run(
      [sys.executable, '-c', 'import os; print(os.getpid())'],
      capture_output=True,
      text=True,
  )
  record = dict(locks.holder_record(), pid=int(dead.stdout))
  path.write_text(json.dumps(record))
  assert locks.is_gone(record)
  go = tmp_path / 'go'
  procs = [
      subprocess.Popen(
          [sys.executable, '-c', RACE, str(path), str(go), str(int(use_flock))],
          cwd=REPO,
          stdout=subprocess.PIPE,
          text=True,
      )
      for _ in range(4)
  ]
  deadline = time.time() + 60
  while len(list(tmp_path.glob('go.ready.*'))) < len(procs):
    assert time.time() < deadline
    time.sleep(0.01)
  go.touch()  # All at the line: go.
  results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
  assert results == ['lost'] * 3 + ['won'], results
  assert not os.path.exists(str(path) + '.takeover')


def test_without_flock_a_live_holder_keeps_its_lock(tmp_path):
  path = str(tmp_path / 'run.lock')
  mine = locks.FileLock(path, use_flock=False)
  assert mine.try_acquire() is None
  other = locks.FileLock(path, use_flock=False)
  holder = other.try_acquire()
  assert holder['pid'] == os.getpid()  # Alive: refused.
  mine.release()
  assert other.try_acquire() is None
  other.release()


def test_a_file_system_without_flock_falls_back(tmp_path, monkeypatch):
  def no_flock(fd, op):
    raise OSError(37, 'No locks available')  # ENOLCK

  monkeypatch.setattr(locks.fcntl, 'flock', no_flock)
  lock = locks.FileLock(str(tmp_path / 'run.lock'))
  assert lock.try_acquire() is None and not lock.use_flock
  assert locks.FileLock(str(tmp_path / 'run.lock')).try_acquire() is not None
  lock.release()


def test_a_waiting_lock_says_once_whom_it_waits_for(tmp_path):
  path = str(tmp_path / 'prepare.lock')
  first = locks.FileLock(path)
  assert first.try_acquire() is None
  said = []

  def release_soon(line):
    said.append(line)
    first.release()

  with locks.waiting_lock(
      path, 'preparing mnist', poll_s=0.01, say=release_soon
  ):
    pass
  assert len(said) == 1
  assert said[0].startswith(f'waiting for PID {os.getpid()} on host ')
  assert 'which is preparing mnist' in said[0]

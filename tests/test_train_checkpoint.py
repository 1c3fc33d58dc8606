"""Checkpoints that detect corruption and writes that fail loudly.

Every array of a checkpoint has a CRC-32 beside it; a flipped bit anywhere,
a truncated or missing file is found when the checkpoint is read, and the
newest good checkpoint is used instead with one warning line naming the bad
one. A write that fails (an injected error, a full file system) stops the
run with one line: the cause and the last good checkpoint, exit status 4.
"""

import errno
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from _train_driver import REPO, TinyBN, env_with_devices, flat
from train import checkpoint as ckpt_lib
from train import cli
from train import config as config_lib
from train.data import loader as data_lib
from train import metrics as metrics_lib
from train import train as train_lib


def state_tree(seed):
  """A train state's checkpoint tree: params, Adam's state, BN statistics."""
  rng = np.random.default_rng(seed)
  params = {
      'Conv_0': {'kernel': rng.normal(size=(3, 3, 1, 8)).astype(np.float32)},
      'Dense_0': {
          'kernel': rng.normal(size=(200, 10)).astype(np.float32),
          'bias': rng.normal(size=(10,)).astype(np.float32),
      },
  }
  opt_state = optax.adam(1e-3).init(params)
  opt_state = jax.tree.map(lambda x: np.asarray(x) + seed, opt_state)
  return {
      'step': np.array(seed, np.int32),
      'params': params,
      'opt_state': opt_state,
      'batch_stats': {'BatchNorm_0': {'mean': np.full(8, seed, np.float32)}},
  }


def same(a, b):
  fa, fb = flat(a), flat(b)
  return set(fa) == set(fb) and all(
      fa[k].dtype == fb[k].dtype and fa[k].tobytes() == fb[k].tobytes()
      for k in fa
  )


@pytest.fixture(scope='module')
def two_checkpoints(tmp_path_factory):
  """Checkpoints of steps 1 and 2 (written once, copied by each test)."""
  folder = str(tmp_path_factory.mktemp('ckpts') / 'checkpoints')
  with ckpt_lib.Checkpoints(folder, async_save=False) as c:
    c.save(1, state_tree(1))
    c.save(2, state_tree(2))
  return folder


def _files(folder):
  return sorted(
      os.path.relpath(os.path.join(d, f), folder)
      for d, _, fs in os.walk(folder)
      for f in fs
  )


def test_every_array_is_checksummed_and_read_back_verified(
    two_checkpoints, capsys
):
  c = ckpt_lib.Checkpoints(two_checkpoints, read_only=True)
  assert same(c.restore_latest(state_tree(0)), state_tree(2))
  assert same(c.restore(1, state_tree(0)), state_tree(1))
  raw = c.restore_raw(2)
  assert same(raw['params'], state_tree(2)['params'])
  c.close()
  assert capsys.readouterr().err == ''
  record = ckpt_lib.checksums(state_tree(2))['leaves']
  assert 'opt_state/0/mu/Dense_0/kernel' in record
  assert len(record) == len(jax.tree.leaves(state_tree(2)))


def _damage_cases(folder, step='2'):
  """(description, damage) for single bit flips at several places of every
  file of the step, and truncations of every file."""
  cases = []
  for rel in _files(folder):
    # (Orbax does not read commit_success.txt on a local file system.)
    if not rel.startswith(step + os.sep) or 'commit_success' in rel:
      continue
    size = os.path.getsize(os.path.join(folder, rel))
    for at in sorted({size // 3, (2 * size) // 3}):
      cases.append((f'{rel} bit at {at}', rel, ('flip', at)))
    cases.append((f'{rel} truncated', rel, ('truncate', size // 2)))
  return cases


def _apply(path, damage):
  kind, at = damage
  if kind == 'flip':
    with open(path, 'r+b') as f:
      f.seek(at)
      byte = f.read(1)[0]
      f.seek(at)
      f.write(bytes([byte ^ (1 << (at % 8))]))
  else:
    with open(path, 'r+b') as f:
      f.truncate(at)


def test_bit_flips_and_truncations_never_give_damaged_data(
    two_checkpoints, tmp_path, capfd
):
  """Each damaged copy of the newest checkpoint gives either its own data
  (the damage hit bytes that carry none: a timestamp) or the previous
  checkpoint's with one warning line naming it; never other numbers."""
  cases = _damage_cases(two_checkpoints)
  assert len(cases) >= 25
  outcomes = {}
  work = str(tmp_path / 'checkpoints')
  for name, rel, damage in cases:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(two_checkpoints, work)
    _apply(os.path.join(work, rel), damage)
    c = ckpt_lib.Checkpoints(work, read_only=True)
    got = c.restore_latest(state_tree(0))
    c.close()
    err = capfd.readouterr().err
    if same(got, state_tree(2)):
      outcomes[name] = 'unharmed'
      assert err == '', (name, err)
    else:
      assert same(got, state_tree(1)), name
      lines = err.splitlines()
      assert len(lines) == 1, (name, err[:3000])
      assert lines[0].startswith(f'warning: checkpoint step 2 in {work} is ')
      assert lines[0].endswith(
          'resuming from step 1, the newest good checkpoint.'
      )
      outcomes[name] = 'damaged' if 'checksum' in lines[0] else 'unreadable'
  # The arrays' bytes (the largest file holds them): only the checksums see
  # a flip there.
  largest = max(
      _files(two_checkpoints),
      key=lambda r: os.path.getsize(os.path.join(two_checkpoints, r)),
  )
  assert all(
      v == 'damaged'
      for k, v in outcomes.items()
      if k.startswith(largest + ' bit')
  ), outcomes


def test_checkpoints_without_checksums_are_read_with_a_note(tmp_path, capsys):
  """What runs of before the checksums wrote: one Orbax item, no record."""
  folder = str(tmp_path / 'checkpoints')
  mngr = ocp.CheckpointManager(
      folder,
      options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False),
  )
  mngr.save(3, args=ocp.args.StandardSave(state_tree(3)))
  mngr.close()
  c = ckpt_lib.Checkpoints(folder, read_only=True)
  assert same(c.restore_latest(state_tree(0)), state_tree(3))
  c.close()
  assert (
      'has no checksums (written by an older rda-optax): read unverified'
      in (capsys.readouterr().err)
  )
  # A new checkpoint whose record was lost is damaged, not old.
  c = ckpt_lib.Checkpoints(folder)
  c.save(4, state_tree(4))
  c.close()
  shutil.rmtree(os.path.join(folder, '4', 'integrity'))
  c = ckpt_lib.Checkpoints(folder, read_only=True)
  assert same(c.restore_latest(state_tree(0)), state_tree(3))
  c.close()
  assert 'step 4' in capsys.readouterr().err


def test_nothing_readable_is_one_clear_error(two_checkpoints, tmp_path):
  work = str(tmp_path / 'checkpoints')
  shutil.copytree(two_checkpoints, work)
  for step in ('1', '2'):
    for rel in _files(work):
      if rel.startswith(step + os.sep) and '/d/' in rel:
        _apply(os.path.join(work, rel), ('flip', 40))
  c = ckpt_lib.Checkpoints(work, read_only=True)
  with pytest.raises(
      ckpt_lib.UnreadableCheckpoints, match='remove that folder'
  ):
    c.restore_latest(state_tree(0))
  c.close()


# ---------------------------------------------------------------------------
# Writes that fail.
# ---------------------------------------------------------------------------

_TENSORSTORE_ENOSPC = (
    'RESOURCE_EXHAUSTED: Error writing "params.Conv_0.kernel/0" in OCDBT '
    'database at local file "/x/4.orbax-checkpoint-tmp/": Failed to write '
    "4022272 bytes to file 7: No space left on device [os_error_code='28']"
)


def _failing_save(monkeypatch, at_step):
  """Orbax's save raises TensorStore's error of a full disk at ``at_step``."""
  save = ocp.CheckpointManager.save

  def failing(self, step, *args, **kwargs):
    if step == at_step:
      raise ValueError(_TENSORSTORE_ENOSPC)
    return save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', failing)


@pytest.mark.parametrize('async_save', [True, False])
def test_a_failed_write_is_one_error_naming_the_cause_and_the_last_good(
    tmp_path, monkeypatch, async_save
):
  _failing_save(monkeypatch, 2)
  c = ckpt_lib.Checkpoints(str(tmp_path / 'checkpoints'), async_save=async_save)
  c.save(1, state_tree(1))
  with pytest.raises(ckpt_lib.CheckpointWriteError) as e:
    c.save(2, state_tree(2))
    c.wait()
  c.close()
  message = str(e.value)
  assert '\n' not in message
  assert 'the checkpoint of step 2 could not be written to' in message
  assert '(No space left on device)' in message
  assert 'the last good checkpoint, step 1, is kept there' in message
  assert e.value.exit_status == 4
  c = ckpt_lib.Checkpoints(str(tmp_path / 'checkpoints'), read_only=True)
  assert c.all_steps() == [1]
  assert same(c.restore_latest(state_tree(0)), state_tree(1))
  c.close()


def tiny_run_values(tmp_path, **kw):
  """RMDA then ASR by SGD on TinyBN, 8 steps, a checkpoint every 2 (the
  steps of tests/test_train.py's RMDA resume test: compiled once)."""
  values = dict(
      method='rmda',
      lr=0.05,
      lam=5e-2,
      momentum=0.9,
      asr_optimizer='sgd',
      dataset='synthetic',
      batch_size=16,
      steps_per_epoch=4,
      epochs=1,
      asr_epochs=1,
      gamma=1.0,
      init_scale=2.0,
      checkpoint_every_steps=2,
      log_every_steps=1,
      progress=False,
      report=False,
      workdir=str(tmp_path / 'run'),
  )
  values.update(kw)
  return values


def tiny_run_cfg(tmp_path, **kw):
  return config_lib.get_config(None, **tiny_run_values(tmp_path, **kw))


def tiny_run(cfg):
  data = data_lib.synthetic_data(
      cfg.dataset,
      global_batch=cfg.batch_size,
      eval_global_batch=cfg.eval_batch,
      seed=cfg.seed,
      num_train=256,
      num_eval=40,
  )
  return train_lib.train_and_evaluate(cfg, model=TinyBN(), data=data)


def test_the_run_stops_at_once_when_a_checkpoint_write_fails(
    tmp_path, monkeypatch
):
  cfg = tiny_run_cfg(tmp_path)
  _failing_save(monkeypatch, 4)
  with pytest.raises(ckpt_lib.CheckpointWriteError) as e:
    tiny_run(cfg)
  assert 'the last good checkpoint, step 2, is kept there' in str(e.value)
  # Stopped at once: the write runs beside step 5, its failure is seen there
  # (or at step 6 at the latest), not at the end (step 8).
  logged = [r['step'] for r in metrics_lib.read_records(cfg.workdir, 'train')]
  assert max(logged) <= 6, logged
  # The same command resumes from the last good checkpoint.
  monkeypatch.undo()
  assert int(tiny_run(cfg).step) == 8
  logged = [r['step'] for r in metrics_lib.read_records(cfg.workdir, 'train')]
  assert logged == list(range(1, 9))


def test_a_full_disk_under_the_metrics_stops_the_run_in_one_line(
    tmp_path, monkeypatch
):
  cfg = tiny_run_cfg(tmp_path)
  write = metrics_lib.MetricWriter.write

  def full(self, record):
    if record['step'] >= 3:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
    write(self, record)

  monkeypatch.setattr(metrics_lib.MetricWriter, 'write', full)
  with pytest.raises(ckpt_lib.WriteFailed) as e:
    tiny_run(cfg)
  message = str(e.value)
  assert message.startswith(
      f'cannot write {cfg.workdir}/metrics.jsonl (No space left on device); '
      'the last good checkpoint, step 2, is kept in'
  )
  assert e.value.exit_status == 4


def test_the_command_line_gives_a_failed_write_its_exit_status(
    tmp_path, monkeypatch, capsys
):
  def failing(cfg, **kwargs):
    raise ckpt_lib.CheckpointWriteError('the checkpoint of step 4 could not')

  monkeypatch.setattr(train_lib, 'train_and_evaluate', failing)
  status = cli.main(
      [
          '--dataset',
          'synthetic',
          '--model',
          'lenet5',
          '--workdir',
          str(tmp_path),
      ]
  )
  assert status == 4
  assert capsys.readouterr().err == (
      'python -m train: error: the checkpoint of step 4 could not\n'
  )


def _can_mount_tmpfs(path) -> bool:
  try:
    proc = subprocess.run(
        [
            'unshare',
            '-rm',
            'sh',
            '-c',
            f'mount -t tmpfs -o size=64k tmpfs {path}',
        ],
        capture_output=True,
        timeout=20,
    )
  except (OSError, subprocess.TimeoutExpired):
    return False
  return proc.returncode == 0


def test_a_full_file_system_stops_the_run_in_one_line(tmp_path):
  """A real disk full: a 160 kB tmpfs (in a user namespace, no root needed)
  as the run directory holds the first checkpoint but not the second."""
  mount = tmp_path / 'tiny'
  mount.mkdir()
  if not _can_mount_tmpfs(mount):
    pytest.skip('cannot mount a tmpfs in a user namespace here (unshare -rm)')
  values = tiny_run_values(mount, steps_per_epoch=8, progress=False)
  args = [
      f'--{k}={v}'
      for k, v in values.items()
      if k not in ('progress', 'report', 'gamma')  # (rmda has no γ)
  ]
  args += ['--no-progress', '--no-report']
  driver = os.path.join(REPO, 'tests', '_train_driver.py')
  command = ' '.join(
      [f'mount -t tmpfs -o size=160k tmpfs {mount} &&', sys.executable, driver]
      + ['--tiny_bn', '--']
      + args
  )
  proc = subprocess.run(
      ['unshare', '-rm', 'sh', '-c', command],
      cwd=REPO,
      env=env_with_devices(1),
      capture_output=True,
      text=True,
      timeout=300,
  )
  err = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 4, proc.stderr[-3000:]
  assert len(err) == 1 and 'No space left on device' in err[0], err
  assert 'Traceback' not in proc.stdout + proc.stderr

"""Faults and bad input against the training job: no silent wrong answers.

Measures the targets of issue 25 with the real commands (``python -m
train``, ``python -m train.export``, preparation in separate processes) on
tiny runs (LeNet-5 on synthetic data, TFDS datasets faked in MNIST's format
by ``tests/_fake_mnist.py``):

* silent wrong answers, by the 7 kinds the issue found (target 0): a dataset
  prepared from another's files, two runs on one run directory, checkpoint
  bit rot read back, an unfinished RMDA run exported dense, a failed
  checkpoint write that training runs past, a damaged sparse file read, two
  preparations of one dataset at once;
* concurrency cases (target 3 of 3 clear): a second run on a busy run
  directory, a run on the directory of a killed one, two preparations;
* checkpoint corruption (target: all detected and recovered): single bit
  flips at 10 places of the newest checkpoint and truncated files, each read
  back as the job does (and one resumed end to end);
* tracebacks on write failures (target 0): full file systems of three sizes
  (a tmpfs in a user namespace; skipped where that is not allowed).

    python -m benchmarks.faults            # 2-3 minutes on 2 (shared) CPU cores
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, 'tests')]

# pylint: disable=g-import-not-at-top,wrong-import-position
import _fake_mnist  # noqa: E402
import rda_optax  # noqa: E402
from train import checkpoint as ckpt_lib  # noqa: E402
from train import metrics as metrics_lib  # noqa: E402
from train.data import datasets  # noqa: E402

RUN = [
    '--model',
    'lenet5',
    '--dataset',
    'synthetic:28x28x1:10',
    '--method',
    'rmda',
    '--lr',
    '0.05',
    '--momentum',
    '0.9',
    '--batch_size',
    '16',
    '--steps_per_epoch',
    '8',
    '--asr_epochs',
    '0',
    '--checkpoint_every_steps',
    '4',
    '--log_every_steps',
    '4',
    '--no-progress',
    '--no-report',
]


# λ of the runs: small enough that a long run does not collapse to a
# constant prediction (the job stops such a run); the export case takes a
# larger one, to be sparse after 12 steps.
LAM = 1e-3
LAM_SPARSE = 0.05


class Bench:
  """Runs commands in a scratch folder, one XLA compilation cache for all."""

  def __init__(self, root: str):
    self.root = root
    self.env = dict(os.environ)
    self.env.update(
        JAX_PLATFORMS='cpu',
        TF_CPP_MIN_LOG_LEVEL='3',
        JAX_COMPILATION_CACHE_DIR=os.path.join(root, 'xla-cache'),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
        PYTHONPATH=REPO + os.pathsep + self.env.get('PYTHONPATH', ''),
    )
    self.rows: list[tuple[str, str, bool, str]] = []

  def path(self, *parts) -> str:
    return os.path.join(self.root, *parts)

  def run(self, args, *, wrap=None, timeout=600):
    cmd = [sys.executable, *args]
    if wrap:
      cmd = wrap(cmd)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=self.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    proc.seconds = time.perf_counter() - start
    return proc

  def train(self, workdir, *extra, epochs=2, lam=LAM, **kw):
    return self.run(
        ['-m', 'train', *RUN, '--lam', str(lam), '--epochs', str(epochs)]
        + ['--workdir', workdir, *extra],
        **kw,
    )

  def record(self, group: str, case: str, ok: bool, what: str) -> None:
    self.rows.append((group, case, ok, what))
    print(f'{"ok  " if ok else "FAIL"} {group}: {case}: {what}', flush=True)


def err_lines(proc) -> list[str]:
  return [l for l in proc.stderr.splitlines() if l.strip()]


def has_traceback(proc) -> bool:
  return 'Traceback' in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------
# 1, 7: datasets.
# ---------------------------------------------------------------------------


def datasets_cases(b: Bench) -> None:
  from train.data import tfds_source

  class Patch:  # monkeypatch's two methods, undone at the end.
    undo: list = []

    @classmethod
    def setattr(cls, obj, name, value):
      cls.undo.append(
          lambda o=obj, n=name, v=getattr(obj, name): setattr(o, n, v)
      )
      setattr(obj, name, value)

    @classmethod
    def setitem(cls, mapping, key, value):
      cls.undo.append(
          lambda m=mapping, k=key, v=mapping[key]: m.__setitem__(k, v)
      )
      mapping[key] = value

  data_dir = b.path('tfds')
  mnist = _fake_mnist.write_archives(b.path('fake_mnist'), pixel=30)
  fashion = _fake_mnist.write_archives(
      b.path('fake_fashion'), pixel=200, seed=1
  )
  try:
    _fake_mnist.accept('mnist', mnist, Patch)
    _fake_mnist.accept('fashion_mnist', fashion, Patch)
    with contextlib.redirect_stderr(io.StringIO()):
      tfds_source.prepare_tfds(
          'mnist', data_dir=data_dir, manual_dir=b.path('fake_mnist')
      )
      tfds_source.prepare_tfds(
          'fashion_mnist', data_dir=data_dir, manual_dir=b.path('fake_fashion')
      )
    means = {}
    for name in ('mnist', 'fashion_mnist'):
      ds = tfds_source.load_tfds(name, data_dir=data_dir, in_memory=True)
      means[name] = float(
          ds.eval.get_batch(np.arange(len(ds.eval)))['image'].mean()
      )
    record = tfds_source.read_provenance('fashion_mnist', data_dir)
    ok = (
        abs(means['mnist'] - 30) < 1
        and abs(means['fashion_mnist'] - 200) < 1
        and record['archives'][0]['sha256']
        == fashion[record['archives'][0]['file']][1]
    )
    b.record(
        '1 dataset',
        'mnist then fashion_mnist (same archive names) in one data folder',
        ok,
        f'test-split mean pixel {means["mnist"]:.0f} / '
        f'{means["fashion_mnist"]:.0f} (fakes made with 30 / 200); provenance '
        'recorded',
    )
  finally:
    for undo in reversed(Patch.undo):
      undo()
  mnist_dir = os.path.join(
      datasets.shared_data_dir() or '/nonexistent', 'mnist'
  )
  if os.path.isdir(mnist_dir):
    try:
      tfds_source.prepare_tfds(
          'fashion_mnist', data_dir=b.path('tfds2'), manual_dir=mnist_dir
      )
      b.record(
          '1 dataset', "MNIST's archives as fashion_mnist", False, 'accepted'
      )
    except tfds_source.ArchiveMismatch as e:
      b.record(
          '1 dataset',
          "MNIST's real archives offered as fashion_mnist",
          '\n' not in str(e),
          f'refused: {str(e)[:110]}...',
      )
  # 7: two preparations at once (separate processes; the first holds the
  # lock until the second says it waits).
  prep_dir, manual = b.path('tfds_race'), b.path('race_manual')
  marker, release = b.path('race_marker'), b.path('race_release')
  script = os.path.join(REPO, 'tests', '_fake_mnist.py')
  first = subprocess.Popen(
      [
          sys.executable,
          script,
          'mnist',
          prep_dir,
          manual,
          '30',
          release,
          marker,
      ],
      cwd=REPO,
      env=b.env,
      stderr=subprocess.PIPE,
      text=True,
  )
  while not os.path.exists(marker) and first.poll() is None:
    time.sleep(0.05)
  second = subprocess.Popen(
      [sys.executable, script, 'mnist', prep_dir, manual, '30'],
      cwd=REPO,
      env=b.env,
      stderr=subprocess.PIPE,
      text=True,
  )
  said = second.stderr.readline().strip()  # Blocks until it says something.
  open(release, 'w').close()
  rest = second.communicate(timeout=300)[1]
  first_err = first.communicate(timeout=300)[1]
  ok = (
      first.returncode == 0
      and second.returncode == 0
      and said.startswith(f'waiting for PID {first.pid} on host')
      and 'Preparing' not in rest
      and 'Traceback' not in rest + first_err
  )
  b.record(
      '7 concurrent preparation',
      'two processes prepare mnist in one data folder',
      ok,
      f'the second said "{said[:80]}...", then read it; rc {first.returncode}'
      f' / {second.returncode}',
  )


# ---------------------------------------------------------------------------
# 2: run directories; 3: checkpoints.
# ---------------------------------------------------------------------------


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
        for x, y in zip(_leaves(a), _leaves(b_))
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


def _leaves(tree):
  import jax  # pylint: disable=import-outside-toplevel

  return jax.tree.leaves(tree)


# ---------------------------------------------------------------------------
# 4: export; 5: failed writes; 6: sparse files.
# ---------------------------------------------------------------------------


def export_case(b: Bench) -> None:
  workdir = b.path('unfinished')
  trained = b.train(workdir, '--stop_at_step', '12', epochs=4, lam=LAM_SPARSE)
  exported = b.run(['-m', 'train.export', workdir])
  with open(os.path.join(workdir, 'export', 'model.json')) as f:
    meta = json.load(f)
  logged = metrics_lib.read_records(workdir, 'train')[-1]
  ok = (
      trained.returncode == exported.returncode == 0
      and logged['step'] == 12
      and abs(meta['weight_sparsity'] - logged['sparsity']) < 1e-6
      and meta['weight_sparsity'] > 0
  )
  b.record(
      '4 export',
      'python -m train --stop_at_step 12, then python -m train.export',
      ok,
      f'exported weight sparsity {meta["weight_sparsity"]:.2%} '
      f'({meta["parameters"]["nonzero"]:,} nonzero); the run logged '
      f'{logged["sparsity"]:.2%} at step {logged["step"]}',
  )


def _can_unshare(b: Bench) -> bool:
  probe = b.path('probe')
  os.makedirs(probe, exist_ok=True)
  try:
    proc = subprocess.run(
        [
            'unshare',
            '-rm',
            'sh',
            '-c',
            f'mount -t tmpfs -o size=64k tmpfs {probe}',
        ],
        capture_output=True,
        timeout=20,
    )
    return proc.returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False


def write_failure_cases(b: Bench) -> None:
  if not _can_unshare(b):
    b.record(
        '5 write failure', 'full file system', True, 'SKIPPED: no unshare -rm'
    )
    return
  b.tracebacks = 0
  # The first checkpoint (about 4 MB) fails; one fits; two fit.
  for size in ('1m', '6m', '10m'):
    mount = b.path(f'full_{size}')
    os.makedirs(mount, exist_ok=True)
    workdir = os.path.join(mount, 'run')

    def wrap(cmd, mount=mount):
      return [
          'unshare',
          '-rm',
          'sh',
          '-c',
          f'mount -t tmpfs -o size={size} tmpfs {mount} && exec "$@"',
          'sh',
          *cmd,
      ]

    start = time.perf_counter()
    proc = b.train(workdir, epochs=4, wrap=wrap)
    lines = err_lines(proc)
    b.tracebacks += has_traceback(proc)
    b.record(
        '5 write failure',
        f'run directory on a full {size} file system',
        proc.returncode == 4 and len(lines) == 1 and not has_traceback(proc),
        f'rc {proc.returncode} after {time.perf_counter() - start:.0f} s, '
        f'{len(lines)} line: "{lines[-1][:120]}..."'
        if lines
        else f'rc {proc.returncode}',
    )


def sparse_file_cases(b: Bench) -> None:
  from rda_optax import sparse_io

  rng = np.random.default_rng(0)
  tree = {
      'conv': {'kernel': rng.normal(size=(3, 3, 4, 8)).astype(np.float32)},
      'dense': {
          'kernel': np.where(rng.random((300, 20)) < 0.01, 1.5, 0).astype(
              np.float32
          )
      },
      'bias': rng.normal(size=(20,)).astype(np.float32),
  }
  tree['conv']['kernel'][rng.random((3, 3, 4, 8)) < 0.7] = 0
  path = b.path('model.npz')
  rda_optax.save_sparse(path, tree)
  data = open(path, 'rb').read()
  with np.load(path) as npz:
    members = {k: npz[k] for k in npz.files}
  header = json.loads(members['__header__'].tobytes())
  cases = []
  for _ in range(200):
    blob = bytearray(data)
    blob[rng.integers(len(blob))] ^= 1 << int(rng.integers(8))
    cases.append(bytes(blob))
  for n in rng.integers(0, len(data), 30):
    cases.append(data[:n])
  edits = [
      lambda h: h['leaves'][0].pop('crc32'),
      lambda h: h.update(leaves=5),
      lambda h: h['leaves'][1].update(shape=[1000000, 1000000]),
      lambda h: h['leaves'][1].update(shape=h['leaves'][1]['shape'][::-1]),
      lambda h: h['leaves'][2].update(dtype='int32'),
      lambda h: h['leaves'][2].update(nnz=h['leaves'][2]['nnz'] - 1),
  ]
  for edit in edits:
    for keep_crc in (True, False):
      h = json.loads(json.dumps(header))
      edit(h)
      if not keep_crc:
        h['header_crc32'] = sparse_io._header_crc(h)  # pylint: disable=protected-access
      m = dict(
          members, __header__=np.frombuffer(json.dumps(h).encode(), np.uint8)
      )
      buf = io.BytesIO()
      np.savez(buf, **m)
      cases.append(buf.getvalue())
  refused = same = other = altered = 0
  for blob in cases:
    with open(path, 'wb') as f:
      f.write(blob)
    try:
      back = rda_optax.load_sparse(path, like=tree)
    except rda_optax.SparseFormatError:
      refused += 1
      continue
    except Exception:  # pylint: disable=broad-except
      other += 1
      continue
    if all(
        np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(_leaves(back), _leaves(tree))
    ):
      same += 1
    else:
      altered += 1
  b.record(
      '6 sparse file',
      f'{len(cases)} damaged or edited copies of a model file',
      other == 0 and altered == 0,
      f'{refused} SparseFormatError, {same} read back bit-identical, '
      f'{other} other exceptions, {altered} altered data returned',
  )


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument(
      '--keep', action='store_true', help='keep the scratch folder'
  )
  args = parser.parse_args(argv)
  root = tempfile.mkdtemp(prefix='rda-faults-')
  b = Bench(root)
  b.summary_corruption = (0, 0, 0, 0)
  b.tracebacks = 0
  start = time.perf_counter()
  try:
    sparse_file_cases(b)
    datasets_cases(b)
    workdir = run_directory_cases(b)
    checkpoint_cases(b, workdir)
    export_case(b)
    write_failure_cases(b)
  finally:
    if not args.keep:
      shutil.rmtree(root, ignore_errors=True)
  kinds = {}
  for group, _, ok, _ in b.rows:
    kinds[group] = kinds.get(group, True) and ok
  concurrency = [
      ok
      for g, c, ok, _ in b.rows
      if g == '7 concurrent preparation' or g == '2 run directory'
  ]
  total, detected, unharmed, silent = b.summary_corruption
  print()
  print(
      f'## Faults ({time.strftime("%Y-%m-%d")}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {time.perf_counter() - start:.0f} s)'
  )
  print()
  print('| kind | case | result |')
  print('|---|---|---|')
  for group, case, ok, what in b.rows:
    print(f'| {group} | {case} | {"" if ok else "**FAIL** "}{what} |')
  print()
  print(
      f'silent wrong answers: {sum(not ok for ok in kinds.values())} of {len(kinds)} kinds (target 0)'
  )
  print(
      f'concurrency cases clear: {sum(concurrency)} of {len(concurrency)} (target all)'
  )
  print(
      f'checkpoint corruption: {total} cases, {detected} detected and '
      f'recovered, {unharmed} harmless (read back bit-identical), {silent} '
      'silently different (target 0)'
  )
  print(f'tracebacks on write failures: {b.tracebacks} (target 0)')
  return 0 if all(kinds.values()) else 1


if __name__ == '__main__':
  sys.exit(main())

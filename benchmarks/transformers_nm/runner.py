"""Running a sweep of :mod:`benchmarks.transformers_nm`: each run a
``python -m train`` command in its own run directory, finished runs skipped
(an interrupted sweep resumes), several at a time after the runs they start
from, each recorded with its command, wall time, machine, date and commit;
the record of each finished run for the tables."""

from __future__ import annotations

from concurrent import futures
import datetime
import json
import os
import platform
import subprocess
import sys
import time

from train import metrics as train_metrics

from .sweep import Run

# The repository: the commands run there.
ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


def run_dir(out: str, run: Run) -> str:
  return os.path.join(out, 'runs', run.name.replace('/', '_').replace(':', '-'))


def command(out: str, run: Run, smoke: tuple[str, ...] = ()) -> list[str]:
  """The run's command line; ``smoke``: the flags of a smoke run
  (:meth:`Setting.smoke`)."""
  cmd = ['python', '-m', 'train', *run.flags, '--workdir', run_dir(out, run)]
  if run.needs is not None:
    cmd += ['--init_from', run_dir(out, run.needs)]
  return cmd + list(smoke)


def _flags_of(cmd: str) -> str:
  return cmd.split(' --workdir ')[0]


def finished(out: str, run: Run, smoke: tuple[str, ...] = ()) -> dict | None:
  """The final eval record of a finished run (None if not run or
  interrupted); refuses a folder run with other flags."""
  folder = run_dir(out, run)
  done = os.path.join(folder, 'sweep_done')
  if not os.path.exists(done):
    return None
  with open(done) as f:
    ran = json.load(f)['command']
  if _flags_of(ran) != _flags_of(' '.join(command(out, run, smoke))):
    raise RuntimeError(
        f'{folder} was run with other flags ({ran!r}); remove it to run it '
        'again.'
    )
  evals = train_metrics.read_records(folder, 'eval')
  return evals[-1] if evals else None


def machine() -> str:
  cpu = platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(
          (l.split(':', 1)[1].strip() for l in f if l.startswith('model name')),
          cpu,
      )
  except OSError:
    pass
  return f'{platform.platform()}, {cpu}, {os.cpu_count()} CPUs'


def _commit() -> str | None:
  try:
    git = lambda *a: subprocess.run(
        ['git', *a], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = git('rev-parse', '--short', 'HEAD')
    if git('status', '--porcelain', '--untracked-files=no'):
      commit += '+changes'
    return commit
  except (OSError, subprocess.SubprocessError):
    return None


def execute(out: str, run: Run, smoke: tuple[str, ...] = ()) -> dict:
  rec = finished(out, run, smoke)
  if rec is not None:
    return rec
  cmd = command(out, run, smoke)
  env = dict(
      os.environ,
      PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
  )
  # One XLA cache for the sweep: the runs share most of their programs.
  env.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(out, '.jax_cache'))
  t0 = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, *cmd[1:], '--no-progress'],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
  )
  with open(os.path.join(run_dir(out, run) + '.log'), 'w') as f:
    f.write(proc.stdout + proc.stderr)
  if proc.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
  with open(os.path.join(run_dir(out, run), 'sweep_done'), 'w') as f:
    json.dump(
        {
            'command': ' '.join(cmd),
            'wall_s': time.perf_counter() - t0,
            'machine': machine(),
            'date': datetime.datetime.now(datetime.timezone.utc).strftime(
                '%Y-%m-%d %H:%M UTC'
            ),
            'commit': _commit(),
        },
        f,
    )
  return finished(out, run, smoke)


def execute_all(
    out: str, runs: list[Run], jobs: int, smoke: tuple[str, ...] = ()
) -> list:
  """Runs ``runs`` (``jobs`` at a time, each after the run it needs);
  returns ``(run, error)`` of those that failed."""
  failed: list = []
  pending = list(runs)
  done: set = set()
  with futures.ThreadPoolExecutor(max(1, jobs)) as pool:
    while pending:
      ready = [r for r in pending if r.needs is None or r.needs in done]
      blocked = [r for r in pending if r.needs in {f[0] for f in failed}]
      for r in blocked:
        failed.append((r, 'its --init_from run failed'))
        pending.remove(r)
      if not ready:
        if not pending:
          break
        raise RuntimeError('runs wait for runs outside the sweep')
      batch = {pool.submit(execute, out, r, smoke): r for r in ready}
      for f in futures.as_completed(batch):
        r = batch[f]
        pending.remove(r)
        try:
          f.result()
          done.add(r)
          print(f'done {r.name}', flush=True)
        except Exception as e:  # pylint: disable=broad-except
          failed.append((r, str(e)))
          print(f'FAILED {r.name}: {str(e)[-500:]}', flush=True)
  return failed


def record(
    setting: str, out: str, run: Run, smoke: tuple[str, ...] = ()
) -> dict:
  rec = finished(out, run, smoke) or {}
  folder = run_dir(out, run)
  with open(os.path.join(folder, 'sweep_done')) as f:
    done = json.load(f)
  summary_path = os.path.join(folder, 'report', 'summary.json')
  nm = None
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      nm = json.load(f).get('nm')
  return {
      'setting': setting,
      'method': run.method,
      'variant': run.variant,
      'target': run.target,
      'seed': run.seed,
      'test_loss': rec.get('test_loss'),
      'test_bpc': rec.get('test_bpc'),
      'test_top1': rec.get('test_top1'),
      'sparsity': rec.get('sparsity'),
      'nm': nm,
      **done,
  }


def collect(
    setting: str, out: str, runs: list[Run], smoke: tuple[str, ...] = ()
) -> list[dict]:
  """The records (:func:`record`) of the runs of ``runs`` that finished."""
  return [
      record(setting, out, r, smoke)
      for r in runs
      if os.path.exists(os.path.join(run_dir(out, r), 'sweep_done'))
  ]

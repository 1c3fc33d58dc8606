"""Running a frontier sweep: each run a ``python -m train`` command in its
own run directory, finished runs skipped (an interrupted sweep resumes),
several at a time after the runs they start from, each recorded with where,
when and from which commit it ran."""

from __future__ import annotations

from concurrent import futures
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

from train import metrics as train_metrics

from .settings import Run

# The repository: the commands run there.
ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


def run_dir(out: str, run: Run) -> str:
  path = os.path.join(out, 'runs', run.name.replace('/', '_'))
  rel = os.path.relpath(path, ROOT)
  return path if rel.startswith('..') else rel  # Commands run in ROOT.


def command(out: str, run: Run) -> list[str]:
  cmd = ['python', '-m', 'train', *run.flags, '--workdir', run_dir(out, run)]
  if run.needs is not None:
    cmd += ['--init_from', run_dir(out, run.needs)]
  return cmd


def finished(out: str, run: Run) -> dict[str, Any] | None:
  """The final eval record of a finished run, else None."""
  folder = os.path.join(ROOT, run_dir(out, run))
  done_file = os.path.join(folder, 'frontier_done')
  if not os.path.exists(done_file):
    return None  # Not run, or interrupted (its checkpoint resumes it).
  with open(done_file) as f:
    ran = json.load(f).get('command')
  # The flags must match; the run directory may be spelled relative to
  # another checkout (a sweep run from a second worktree with --out).
  if ran is not None and _flags_of(ran) != _flags_of(
      ' '.join(command(out, run))
  ):
    raise RuntimeError(
        f'{folder} was run with other flags than the sweep now gives '
        f'({ran!r}); remove it to run it again.'
    )
  evals = train_metrics.read_records(folder, 'eval')
  return evals[-1] if evals else None


def execute(out: str, run: Run, env: dict[str, str] | None = None):
  """Runs ``run`` (unless finished) with ``env`` added to the environment;
  returns its final eval record."""
  rec = finished(out, run)
  if rec is not None:
    return rec
  cmd = command(out, run)
  t0 = time.perf_counter()
  env = dict(
      os.environ,
      **(env or {}),
      PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
  )
  proc = subprocess.run(
      [sys.executable, *cmd[1:], '--no-progress', '--no-report'],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
  )
  if proc.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
  wall = time.perf_counter() - t0
  with open(os.path.join(ROOT, run_dir(out, run), 'frontier_done'), 'w') as f:
    json.dump(
        {
            'wall_s': wall,
            'command': ' '.join(command(out, run)),
            **provenance(),
        },
        f,
    )
  return finished(out, run)


def machine() -> str:
  """This machine in words: OS, CPU model and count, accelerators.

  Reads no JAX (a sweep's parent process must not take an accelerator's
  memory from the runs it starts): the GPUs come from ``nvidia-smi``.
  """
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          cpu = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  words = f'{platform.platform()}, {cpu}, {os.cpu_count()} CPUs'
  try:
    gpus = subprocess.run(
        ['nvidia-smi', '--query-gpu=name', '--format=csv,noheader'],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split('\n')
  except (OSError, subprocess.SubprocessError):
    gpus = []
  gpus = [g.strip() for g in gpus if g.strip()]
  if gpus:
    words += ', ' + ', '.join(
        f'{gpus.count(g)} × {g}' for g in dict.fromkeys(gpus)
    )
  return words


def _git(*args: str) -> str:
  return subprocess.run(
      ['git', *args],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=30,
      check=True,
  ).stdout.strip()


def provenance() -> dict[str, Any]:
  """Where and when a run finished, and the code it ran: machine, UTC
  date-time, git commit (with ``+changes`` when the tree was modified)."""
  commit = None
  try:
    commit = _git('rev-parse', '--short', 'HEAD')
    if _git('status', '--porcelain', '--untracked-files=no'):
      commit += '+changes'
  except (OSError, subprocess.SubprocessError):
    pass
  return {
      'machine': machine(),
      'date': datetime.datetime.now(datetime.timezone.utc).strftime(
          '%Y-%m-%d %H:%M UTC'
      ),
      'commit': commit,
  }


def _flags_of(cmd: str) -> str:
  """A run's command without its run directory (which depends on --out)."""
  return cmd.split(' --workdir ')[0]


def collect(out: str, runs) -> list[dict[str, Any]]:
  """The records of ``runs``: from their run folders, else from the
  results.json already in ``out``.

  Run folders are not committed (checkpoints), so a fresh checkout has the
  published results.json alone: a record whose folder is absent is kept
  when its command is the one the sweep gives now, so re-running part of a
  sweep on another machine never drops the rest of its results.
  """
  path = os.path.join(out, 'results.json')
  old = {}
  if os.path.exists(path):
    with open(path) as f:
      old = {_flags_of(r['command']): r for r in json.load(f)}
  records = []
  for run in runs:
    rec = finished(out, run)
    if rec is not None:
      records.append(record(out, run, rec))
    elif (key := _flags_of(' '.join(command(out, run)))) in old:
      records.append(old[key])
  return records


def execute_all(out: str, runs: list[Run], jobs: int = 1) -> list:
  """Runs ``runs``, ``jobs`` at a time, each after the run it needs.

  Returns the (run, error) of the runs that failed (and of those that
  needed them); the others still run.
  """
  if jobs < 1:
    raise ValueError(f'--jobs must be at least 1, got {jobs}.')
  env = {}
  if jobs > 1 and not {
      'XLA_PYTHON_CLIENT_MEM_FRACTION',
      'XLA_PYTHON_CLIENT_PREALLOCATE',
  } & set(os.environ):
    # Each JAX process takes 75% of an accelerator's memory by default.
    env['XLA_PYTHON_CLIENT_MEM_FRACTION'] = f'{0.9 / jobs:.3f}'
  pending, running, failed, done = list(runs), {}, [], set()
  n = 0

  def report(run, rec):
    nonlocal n
    n += 1
    print(
        f'[{n}/{len(runs)}] {run.name}: top-1 {rec["test_top1"]:.4f} '
        f'sparsity {rec["sparsity"]:.4f}',
        flush=True,
    )

  with futures.ThreadPoolExecutor(jobs) as pool:
    while pending or running:
      for run in list(pending):
        if len(running) >= jobs:
          break
        if run.needs is not None and run.needs in pending + list(
            running.values()
        ):
          continue  # Its parent has not finished yet.
        pending.remove(run)
        if run.needs is not None and run.needs not in done:
          failed.append((run, f'{run.needs.name} failed'))
          continue
        running[pool.submit(execute, out, run, env)] = run
      if not running:
        continue
      finished_now, _ = futures.wait(
          running, return_when=futures.FIRST_COMPLETED
      )
      for fut in finished_now:
        run = running.pop(fut)
        try:
          rec = fut.result()
        except Exception as e:  # pylint: disable=broad-except
          if jobs == 1:
            raise
          failed.append((run, str(e)))
          print(f'FAILED {run.name}: {e}', file=sys.stderr, flush=True)
        else:
          done.add(run)
          report(run, rec)
  return failed


def record(out: str, run: Run, rec: dict[str, Any]) -> dict[str, Any]:
  with open(os.path.join(ROOT, run_dir(out, run), 'frontier_done')) as f:
    done = json.load(f)
  wall = done.get('wall_s')
  # Where and when it ran (runs made before these were recorded have none).
  where = {k: done[k] for k in ('machine', 'date', 'commit') if k in done}
  return {
      'method': run.method,
      'variant': run.variant,
      'strength': run.strength,
      'seed': run.seed,
      'test_top1': rec['test_top1'],
      'sparsity': rec['sparsity'],
      'total_sparsity': rec.get('total_sparsity'),
      'epoch': rec['epoch'],
      'wall_s': wall,
      **where,
      'command': ' '.join(command(out, run)),
  }

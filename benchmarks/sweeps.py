"""Sweeps of ``python -m train`` runs, shared by :mod:`benchmarks.frontier`
and :mod:`benchmarks.transformers_nm`: a run, its folder and its command;
running it (skipped once finished, so an interrupted sweep resumes, and a
run killed midway resumes from its own checkpoint); several at a time, each
after the run it starts from; where, when and from which commit each ran.

A benchmark describes how its runs are laid out and run with a
:class:`Sweep`, makes its runs as (a subclass of) :class:`Run`, and keeps
what is its own: the grid, the record of a finished run, the tables.
"""

from __future__ import annotations

from concurrent import futures
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable

from train import metrics as train_metrics

# The repository: the commands run there.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Run:
  """One ``python -m train`` run of a sweep.

  ``point`` is where the run stands on the sweep's axis (a strength, a
  target, ...): a benchmark's subclass gives it its name and says how
  :attr:`name` spells it (:attr:`label`).
  """

  method: str  # The curve or table row (rmda, han_global, adamw, ...).
  variant: str  # Its hyper-parameters other than the point.
  point: Any
  seed: int
  flags: tuple[str, ...]
  needs: Run | None = None  # The run whose directory --init_from names.

  @property
  def label(self) -> str:
    """The point as :attr:`name` spells it."""
    return str(self.point)

  @property
  def name(self) -> str:
    return f'{self.method}/{self.variant}/{self.label}/seed{self.seed}'


def flags_of(cmd: str) -> str:
  """A run's command without its run directory (which depends on the
  output folder) and what follows it: what makes two runs the same run."""
  return cmd.split(' --workdir ')[0]


@dataclasses.dataclass(frozen=True)
class Sweep:
  """How a benchmark lays out, runs and marks its runs.

  A run's folder is ``<out>/runs/<its name>`` (``/`` and ``:`` spelled
  ``_`` and ``-``); a folder spelled relatively is relative to :data:`ROOT`,
  where the commands run.

  Attributes:
    done_file: the file written in a run's folder once it finished (its
      command, wall time and :func:`provenance`); a run without it runs
      (again).
    relative: spell a run folder inside :data:`ROOT` relative to it, so the
      commands read the same from every checkout.
    train_flags: added to a command when it runs, not to the command
      printed and recorded.
    log: keep each run's output in ``<its folder>.log``.
    extra: flags after the run directory (e.g. a smoke run's few steps):
      part of the command, not of what makes a finished run the same run
      (:func:`flags_of`).
  """

  done_file: str
  relative: bool = False
  train_flags: tuple[str, ...] = ('--no-progress',)
  log: bool = False
  extra: tuple[str, ...] = ()

  def run_dir(self, out: str, run: Run) -> str:
    name = run.name.replace('/', '_').replace(':', '-')
    path = os.path.join(out, 'runs', name)
    if not self.relative:
      return path
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith('..') else rel

  def command(self, out: str, run: Run) -> list[str]:
    cmd = ['python', '-m', 'train', *run.flags]
    cmd += ['--workdir', self.run_dir(out, run)]
    if run.needs is not None:
      cmd += ['--init_from', self.run_dir(out, run.needs)]
    return cmd + list(self.extra)

  def folder(self, out: str, run: Run) -> str:
    """The run's folder as seen from here (:meth:`run_dir` is as seen from
    :data:`ROOT`)."""
    return os.path.join(ROOT, self.run_dir(out, run))

  def done(self, out: str, run: Run) -> dict[str, Any] | None:
    """What :attr:`done_file` holds, or None if the run has not finished."""
    path = os.path.join(self.folder(out, run), self.done_file)
    if not os.path.exists(path):
      return None  # Not run, or interrupted (its checkpoint resumes it).
    with open(path) as f:
      return json.load(f)

  def finished(self, out: str, run: Run) -> dict[str, Any] | None:
    """The final eval record of a finished run, else None; refuses a folder
    run with other flags."""
    done = self.done(out, run)
    if done is None:
      return None
    ran = done.get('command')
    # The flags must match; the run directory may be spelled relative to
    # another checkout (a sweep run from a second worktree with --out).
    if ran is not None and flags_of(ran) != flags_of(
        ' '.join(self.command(out, run))
    ):
      raise RuntimeError(
          f'{self.folder(out, run)} was run with other flags than the sweep '
          f'now gives ({ran!r}); remove it to run it again.'
      )
    evals = train_metrics.read_records(self.folder(out, run), 'eval')
    return evals[-1] if evals else None

  def execute(
      self, out: str, run: Run, env: dict[str, str] | None = None
  ) -> dict[str, Any] | None:
    """Runs ``run`` (unless finished) with ``env`` added to the environment;
    returns its final eval record."""
    rec = self.finished(out, run)
    if rec is not None:
      return rec
    cmd = self.command(out, run)
    env = dict(
        os.environ,
        **(env or {}),
        PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *cmd[1:], *self.train_flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    folder = self.folder(out, run)
    if self.log:
      with open(folder + '.log', 'w') as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode:
      raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
    with open(os.path.join(folder, self.done_file), 'w') as f:
      json.dump({'command': ' '.join(cmd), 'wall_s': wall, **provenance()}, f)
    return self.finished(out, run)


def _summary(rec: dict[str, Any] | None) -> str:
  keys = ('test_loss', 'test_top1', 'sparsity')
  return ' '.join(
      f'{k} {rec[k]:.4f}' for k in keys if (rec or {}).get(k) is not None
  )


def execute_all(
    runs: list[Run],
    jobs: int,
    execute: Callable[[Run, dict[str, str]], Any],
    *,
    summary: Callable[[Any], str] = _summary,
    keep_going: bool = True,
    on_done: Callable[[], Any] | None = None,
) -> list:
  """Runs ``runs``, ``jobs`` at a time, each after the run it needs.

  Args:
    runs: the runs, a run's parent (``needs``) among them.
    jobs: how many at once; with several, each gets ``0.9 / jobs`` of an
      accelerator's memory unless the environment says otherwise.
    execute: runs one run with some environment variables added; returns
      its final record.
    summary: the final record in words, printed as each run finishes.
    keep_going: on a failure, go on with the other runs (else raise it).
    on_done: called after each run that finished (to publish the results so
      far: a sweep stopped by a time limit keeps what it finished).

  Returns:
    The ``(run, error)`` of the runs that failed (and of those that needed
    them); the others still run.
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
          why = 'failed' if run.needs in runs else 'is not in the sweep'
          failed.append((run, f'{run.needs.name} {why}'))
          continue
        running[pool.submit(execute, run, env)] = run
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
          if not keep_going:
            raise
          failed.append((run, str(e)))
          print(f'FAILED {run.name}: {e}', file=sys.stderr, flush=True)
        else:
          done.add(run)
          n += 1
          print(f'[{n}/{len(runs)}] {run.name}: {summary(rec)}', flush=True)
          if on_done is not None:
            on_done()
  return failed


def machine() -> str:
  """This machine in words: OS, CPU model and count, accelerators.

  Reads no JAX (a sweep's parent process must not take an accelerator's
  memory from the runs it starts): the GPUs come from ``nvidia-smi``.
  """
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      models = (l for l in f if l.startswith('model name'))
      cpu = next((l.split(':', 1)[1].strip() for l in models), cpu)
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


def commit() -> str | None:
  """The checkout's git commit, with ``+changes`` when a tracked file was
  modified; None outside a git checkout."""

  def git(*args: str) -> str:
    return subprocess.run(
        ['git', *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()

  try:
    sha = git('rev-parse', '--short', 'HEAD')
    changed = git('status', '--porcelain', '--untracked-files=no')
  except (OSError, subprocess.SubprocessError):
    return None
  return sha + '+changes' if changed else sha


def provenance() -> dict[str, Any]:
  """Where and when a run finished, and the code it ran: machine, UTC
  date-time, git commit (see :func:`commit`)."""
  return {
      'machine': machine(),
      'date': datetime.datetime.now(datetime.timezone.utc).strftime(
          '%Y-%m-%d %H:%M UTC'
      ),
      'commit': commit(),
  }


def add_skip_published(parser: Any) -> None:
  """The sweeps' ``--skip_published`` flag (see :func:`unpublished`)."""
  parser.add_argument(
      '--skip_published',
      action='store_true',
      help='do not run again the runs whose records <out>/results.json '
      'holds (to go on with a sweep on another machine, e.g. a fresh '
      'checkout or an accelerator lent for a few minutes); by default every '
      'run whose folder is not finished here runs',
  )


def _published(out: str) -> dict[str, dict[str, Any]]:
  """The records of ``<out>/results.json`` by their command's flags."""
  path = os.path.join(out, 'results.json')
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {flags_of(r['command']): r for r in json.load(f) if 'command' in r}


def unpublished(
    out: str,
    runs: list[Any],
    command: Callable[[Any], list[str]],
    finished: Callable[[Any], Any],
) -> list[Any]:
  """The runs of ``runs`` still to run: those whose record is not in
  ``<out>/results.json`` with the same flags, in order, and the runs they
  need whose folders are not ``finished`` here (a fine-tuning starts from
  its parent's checkpoint). A sweep stopped on one machine thus resumes on
  another (a fresh checkout, or an accelerator lent for a few minutes)
  from its published results (the sweeps' ``--skip_published``); a record
  removed from results.json is run again."""
  published = _published(out)
  if not published:
    return list(runs)
  todo = [r for r in runs if flags_of(' '.join(command(r))) not in published]
  parents = {r.needs for r in todo if r.needs is not None}
  keep = [r for r in runs if r in todo or (r in parents and not finished(r))]
  if len(keep) < len(runs):
    print(
        f'{len(runs) - len(keep)} of the {len(runs)} runs are published in '
        f'{os.path.join(out, "results.json")} and not run again (remove '
        'their records to run them again).',
        flush=True,
    )
  return keep


def collect(
    out: str,
    runs: list[Any],
    record: Callable[[Any], dict[str, Any] | None],
    command: Callable[[Any], list[str]],
) -> list[dict[str, Any]]:
  """The records of ``runs``: ``record(run)`` for a run finished in ``out``
  (None if not), else the record of ``<out>/results.json`` whose command
  has the run's flags now (:func:`flags_of` of ``command(run)``).

  Run folders are not committed (checkpoints), so a fresh checkout has the
  published results.json alone: a record whose folder is absent is kept
  when its command is the one the sweep gives now, so re-running part of a
  sweep on another machine never drops the rest of its results, and a
  record whose command the sweep no longer gives is dropped.
  """
  old = _published(out)
  records = []
  for run in runs:
    rec = record(run)
    if rec is not None:
      records.append(rec)
    elif (key := flags_of(' '.join(command(run)))) in old:
      records.append(old[key])
  return records


def publish(out: str, records: list[dict[str, Any]], tables: str, text: str):
  """Writes ``records`` to ``<out>/results.json`` (whole or not at all) and
  ``text`` (a sweep's tables) to ``<out>/<tables>``."""
  path = os.path.join(out, 'results.json')
  with open(path + '.tmp', 'w') as f:
    json.dump(records, f, indent=1)
  os.replace(path + '.tmp', path)
  with open(os.path.join(out, tables), 'w') as f:
    f.write(text)


def exit_status(failed: list) -> int:
  """Names the runs that failed (:func:`execute_all`) again, after the
  tables; the command's exit status: 1 if any failed, else 0."""
  for run, err in failed:
    print(f'FAILED {run.name}: {err}', file=sys.stderr)
  return 1 if failed else 0

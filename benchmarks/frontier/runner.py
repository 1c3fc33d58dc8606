"""Running a frontier sweep (with :mod:`benchmarks.sweeps`): each run a
``python -m train`` command in its own run directory, finished runs skipped
(an interrupted sweep resumes), several at a time after the runs they start
from, each recorded with where, when and from which commit it ran."""

from __future__ import annotations

from typing import Any

from .. import sweeps
from ..sweeps import ROOT
from ..sweeps import machine
from ..sweeps import provenance
from .settings import Run

# Run folders relative to the repository (the commands read the same from
# every checkout); the runs write no report of their own (the sweep's
# tables are the report).
SWEEP = sweeps.Sweep(
    done_file='frontier_done',
    relative=True,
    train_flags=('--no-progress', '--no-report'),
)
run_dir = SWEEP.run_dir
command = SWEEP.command
finished = SWEEP.finished
execute = SWEEP.execute


def execute_all(out: str, runs: list[Run], jobs: int = 1, on_done=None) -> list:
  """Runs ``runs``, ``jobs`` at a time, each after the run it needs (see
  :func:`benchmarks.sweeps.execute_all`, ``on_done`` after each); with one
  at a time, the first failure is raised.

  Returns the (run, error) of the runs that failed (and of those that
  needed them); the others still run.
  """
  return sweeps.execute_all(
      runs,
      jobs,
      lambda run, env: execute(out, run, env),
      summary=lambda rec: (
          f'top-1 {rec["test_top1"]:.4f} sparsity {rec["sparsity"]:.4f}'
      ),
      keep_going=jobs > 1,
      on_done=on_done,
  )


def collect(out: str, runs) -> list[dict[str, Any]]:
  """The records of ``runs``: from their run folders, else from the
  results.json already in ``out`` (see :func:`benchmarks.sweeps.collect`)."""

  def from_folder(run):
    rec = finished(out, run)
    return None if rec is None else record(out, run, rec)

  return sweeps.collect(out, runs, from_folder, lambda r: command(out, r))


def record(out: str, run: Run, rec: dict[str, Any]) -> dict[str, Any]:
  done = SWEEP.done(out, run)
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
      'wall_s': done.get('wall_s'),
      **where,
      'command': ' '.join(command(out, run)),
  }

"""Running a sweep of :mod:`benchmarks.transformers_nm` (with
:mod:`benchmarks.sweeps`): each run a ``python -m train`` command in its own
run directory, finished runs skipped (an interrupted sweep resumes), several
at a time after the runs they start from, each recorded with its command,
wall time, machine, date and commit; the record of each finished run for
the tables.

``smoke``: the flags of a smoke run (:meth:`Setting.smoke`), after the run
directory in each command.
"""

from __future__ import annotations

import json
import os

from .. import sweeps
from ..sweeps import ROOT
from ..sweeps import machine
from .sweep import Run


def _sweep(smoke: tuple[str, ...] = ()) -> sweeps.Sweep:
  # Each run keeps its output beside its folder, and its report (the N:M
  # check of the record); run folders inside the repository are spelled
  # relative to it, so the recorded commands read the same from every
  # checkout.
  return sweeps.Sweep(
      done_file='sweep_done', log=True, extra=tuple(smoke), relative=True
  )


def run_dir(out: str, run: Run) -> str:
  return _sweep().run_dir(out, run)


def command(out: str, run: Run, smoke: tuple[str, ...] = ()) -> list[str]:
  """The run's command line."""
  return _sweep(smoke).command(out, run)


def finished(out: str, run: Run, smoke: tuple[str, ...] = ()) -> dict | None:
  """The final eval record of a finished run (None if not run or
  interrupted); refuses a folder run with other flags."""
  return _sweep(smoke).finished(out, run)


def execute(
    out: str,
    run: Run,
    smoke: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> dict | None:
  """Runs ``run`` (unless finished) with ``env`` added to the environment;
  returns its final eval record."""
  env = dict(env or {})
  if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
    # One XLA cache for the sweep: the runs share most of their programs.
    env['JAX_COMPILATION_CACHE_DIR'] = os.path.join(out, '.jax_cache')
  return _sweep(smoke).execute(out, run, env)


def execute_all(
    out: str,
    runs: list[Run],
    jobs: int,
    smoke: tuple[str, ...] = (),
    on_done=None,
) -> list:
  """Runs ``runs`` (``jobs`` at a time, each after the run it needs, see
  :func:`benchmarks.sweeps.execute_all`, ``on_done`` after each); returns
  ``(run, error)`` of those that failed (and of those that needed them)."""
  return sweeps.execute_all(
      runs,
      jobs,
      lambda run, env: execute(out, run, smoke, env),
      on_done=on_done,
  )


def record(
    setting: str, out: str, run: Run, smoke: tuple[str, ...] = ()
) -> dict:
  rec = finished(out, run, smoke) or {}
  summary_path = os.path.join(
      _sweep().folder(out, run), 'report', 'summary.json'
  )
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
      **_sweep(smoke).done(out, run),
  }


def collect(
    setting: str, out: str, runs: list[Run], smoke: tuple[str, ...] = ()
) -> list[dict]:
  """The records (:func:`record`) of the runs of ``runs`` that finished in
  ``out``, else those already published in its results.json with the run's
  command (see :func:`benchmarks.sweeps.collect`)."""

  def from_folder(run):
    if _sweep(smoke).done(out, run) is None:
      return None
    return record(setting, out, run, smoke)

  return sweeps.collect(
      out, runs, from_folder, lambda r: command(out, r, smoke)
  )

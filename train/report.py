"""The final report of a run: sparsity table, summary and PNG plots.

Written by process 0 at the end of :func:`train.train.train_and_evaluate`
into ``<workdir>/report/``:

* ``sparsity_table.txt``: :func:`rda_optax.sparsity_table` of the final
  params (``*`` marks the regularized / selected leaves); when the run made
  its kernels N:M (``--regularizer nm``, or ``--nm`` of the pruning
  methods), a column says for each selected kernel whether it meets the
  pattern (:func:`rda_optax.nm_violations`: ``yes``, or its groups with more
  than N nonzeros);
* ``summary.json``: final test accuracy (a language model: validation loss
  and bits per character), sparsity, steps, the config;
* ``accuracy.png``: train and test top-1 over epochs (ASR phase shaded); for
  a language model ``loss.png``: train and validation loss (nats per
  character, bits on the right axis) instead;
* ``sparsity.png``: sparsity of the selected leaves and of all params over
  epochs;
* ``layer_sparsity.png``: final sparsity per selected layer (bars);
* ``report.md``: all of it in one page.

``python -m train.report RUN_DIR`` rebuilds it from the run directory
(metrics and newest checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import jax

import rda_optax
from rda_optax import sparsity as sparsity_lib
from . import config as config_lib
from . import methods
from . import selection
from . import metrics as metrics_lib
from . import run_model
from . import tasks

REPORT_DIR = 'report'


def write_report(
    cfg: config_lib.Config,
    params: Any,
    last_train: dict[str, Any] | None = None,
    step: int | None = None,
) -> dict[str, Any]:
  """Writes ``<workdir>/report/`` for the final ``params`` (host arrays) of
  step ``step`` (None: the last evaluation's). The evaluation figures are
  the last evaluation's: of another model when ``params`` are of a later
  checkpoint (an unfinished run), which the report then says.

  Returns:
    The summary dict (also written to ``summary.json``).
  """
  out = os.path.join(cfg.workdir, REPORT_DIR)
  os.makedirs(out, exist_ok=True)
  mask = selection.run_mask(cfg)
  task = tasks.for_config(cfg)
  records = sparsity_lib.layer_sparsity(params, mask)
  table = sparsity_lib.sparsity_table(params, records=records)
  nm = methods.uses_nm(cfg)
  nm_record = None
  if nm is not None:
    table, nm_record = nm_column(table, params, records, *nm)
  summary_sp = sparsity_lib.sparsity_summary(params, records=records)
  with open(os.path.join(out, 'sparsity_table.txt'), 'w') as f:
    f.write(table + '\n')

  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  trains = metrics_lib.read_records(cfg.workdir, 'train')
  final = evals[-1] if evals else {}
  model_step = final.get('step') if step is None else step
  rate_key = f'{task.unit}_per_sec'  # images_per_sec, chars_per_sec
  ips = [r[rate_key] for r in trains if r.get(rate_key)]
  summary = {
      'model': cfg.model,
      'dataset': cfg.dataset,
      'method': cfg.method,
      'asr_epochs': cfg.asr_epochs,
      'regularizer': cfg.regularizer,
      'steps': final.get('step'),
      # The step of the parameters (their sparsity): the newest checkpoint's,
      # after the last evaluation's in an unfinished run.
      'model_step': model_step,
      'epochs': final.get('epoch'),
      'test_top1': final.get('test_top1'),
      'test_top5': final.get('test_top5'),
      'test_loss': final.get('test_loss'),
      'best_test_top1': max(
          (r['test_top1'] for r in evals if r.get('test_top1') is not None),
          default=None,
      ),
      # The best evaluation's step and sparsity: an earlier, denser model
      # than the final one, when the sparsity was still ramping up.
      **_best(evals, task.kind),
      'sparsity': summary_sp['regularized/sparsity'],
      'total_sparsity': summary_sp['total/sparsity'],
      'channel_sparsity': summary_sp['regularized/channel_sparsity'],
      'nonzeros': summary_sp['regularized/nonzeros'],
      'size': summary_sp['regularized/size'],
      f'median_{rate_key}': (sorted(ips)[len(ips) // 2] if ips else None),
      'config': cfg.to_dict(),
  }
  if task.kind == 'language_model':
    summary.update(
        task='language_model',
        test_bpc=final.get('test_bpc'),
        best_test_loss=min(
            (r['test_loss'] for r in evals if r.get('test_loss') is not None),
            default=None,
        ),
        context=cfg.context,
    )
  if nm_record is not None:
    summary['nm'] = nm_record
  with open(os.path.join(out, 'summary.json'), 'w') as f:
    json.dump(metrics_lib._jsonable(summary), f, indent=2, sort_keys=True)  # pylint: disable=protected-access

  title = f'{cfg.model} / {cfg.dataset} / {cfg.method}' + (
      ' + ASR' if cfg.asr_epochs else ''
  )
  from . import plots  # pylint: disable=import-outside-toplevel (matplotlib)

  pngs = []
  if evals:
    plots.plot_evals(evals, os.path.join(out, task.plot_file), title, task)
    plots.plot_sparsity(evals, trains, os.path.join(out, 'sparsity.png'), title)
    pngs += [task.plot_file, 'sparsity.png']
  layers = {r.path: r.sparsity for r in records if r.regularized}
  if layers:
    plots.plot_layers(
        layers,
        os.path.join(out, 'layer_sparsity.png'),
        f'{title}: final sparsity per layer',
        sizes={r.path: r.size for r in records if r.regularized},
    )
    pngs.append('layer_sparsity.png')

  def pct(x):
    return '-' if x is None else f'{100 * x:.2f}%'

  if summary['steps'] is None:
    steps = f'- steps: {model_step} (no evaluation yet)'
  else:
    steps = (
        f'- steps: {summary["steps"]} ({(summary["epochs"] or 0):.2f} '
        'epochs)'
    )
  if summary['steps'] is not None and model_step != summary['steps']:
    steps += (
        f'; **unfinished run**: the evaluation below is of step '
        f'{summary["steps"]}, its last, and the sparsity of its newest '
        f'checkpoint, step {model_step} (`python -m train.export RUN_DIR`, '
        'then `python -m train --eval_export RUN_DIR`, evaluates that one)'
    )
  lines = [
      f'# Report: {title}',
      '',
      f'- run directory: `{os.path.abspath(cfg.workdir)}`',
      steps,
      *task.report_lines(summary),
      f'- sparsity of the selected leaves (`--select {cfg.select}`): '
      f'{pct(summary["sparsity"])} ({summary["nonzeros"]} of {summary["size"]} '
      'weights nonzero)',
      f'- sparsity of all parameters: {pct(summary["total_sparsity"])}; '
      f'all-zero output channels: {pct(summary["channel_sparsity"])}',
  ]
  if nm_record is not None:
    lines.append(
        f'- N:M pattern {nm_record["pattern"]}: met by '
        f'{nm_record["kernels_meeting"]} of {nm_record["kernels"]} selected '
        f'kernels ({nm_record["violating_groups"]} groups with more than '
        f'{nm[0]} nonzeros)'
    )
  if summary[f'median_{rate_key}']:
    lines.append(
        f'- training throughput (median): '
        f'{summary[f"median_{rate_key}"]:.0f} {task.unit}/s'
    )
  # The run's last logged hyper-parameters (also when the report is rebuilt
  # from the run directory, or printed again for a finished run).
  last_train = last_train or (trains[-1] if trains else None)
  hypers = [
      f'{k} = {last_train[k]:.4g}'
      for k in _HYPERS
      if last_train and isinstance(last_train.get(k), (int, float))
  ]
  if hypers:
    lines.append('- last hyper-parameters: ' + ', '.join(hypers))
  head = len(lines)
  lines += ['', '## Per-layer sparsity', '', '```', table, '```', '']
  lines += [f'![{p}]({p})' for p in pngs]
  with open(os.path.join(out, 'report.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines[:head]) + '\n\n' + table, flush=True)
  return summary


def _best(evals: list[dict[str, Any]], kind: str) -> dict[str, Any]:
  """``best_step`` and ``best_sparsity``: of the evaluation with the best
  test top-1 (the lowest loss for a language model)."""
  key = 'test_loss' if kind == 'language_model' else 'test_top1'
  scored = [r for r in evals if r.get(key) is not None]
  if not scored:
    return {'best_step': None, 'best_sparsity': None}
  sign = -1 if kind == 'language_model' else 1
  best = max(scored, key=lambda r: sign * r[key])  # The first of equals.
  return {'best_step': best.get('step'), 'best_sparsity': best.get('sparsity')}


# Logged hyper-parameters shown in the report (those the run has).
_HYPERS = (
    'lr',
    'gamma',
    'lam',
    'target_sparsity',
    'nm_n',
    'nm_fraction',
    'momentum',
)


def nm_column(
    table: str, params: Any, records, n: int, m: int
) -> tuple[str, dict[str, Any]]:
  """``table`` (of :func:`rda_optax.sparsity_table`, rows in the order of
  ``records``) with an ``N:M`` column: for each selected kernel ``yes`` if
  it meets the pattern (:func:`rda_optax.satisfies_nm`), else the number of
  its groups with more than ``n`` nonzeros (:func:`rda_optax.nm_violations`);
  ``-`` for leaves not selected. Also returns the totals.
  """
  leaves = {
      rda_optax.path_str(path): leaf
      for path, leaf in jax.tree_util.tree_leaves_with_path(params)
  }
  header = f'{n}:{m}'
  cells, kernels, meeting, violating = [], 0, 0, 0
  for r in records:
    if not r.regularized:
      cells.append('-')
      continue
    bad = rda_optax.nm_violations(leaves[r.path], n, m)
    kernels += 1
    meeting += bad == 0
    violating += bad
    cells.append('yes' if bad == 0 else f'{bad} groups')
  cells.append(f'{meeting}/{kernels} yes')
  cells.append('-')
  lines = table.split('\n')
  if len(lines) != len(cells) + 1:
    raise ValueError('The sparsity table does not have a row per record.')
  width = max(len(header), *(len(c) for c in cells))
  out = [lines[0] + '  ' + header.rjust(width)]
  out += [line + '  ' + c.rjust(width) for line, c in zip(lines[1:], cells)]
  record = {
      'pattern': header,
      'kernels': kernels,
      'kernels_meeting': meeting,
      'violating_groups': violating,
  }
  return '\n'.join(out), record


def main(argv: list[str] | None = None) -> int:
  """``python -m train.report RUN_DIR``: rebuild a run's report."""
  parser = argparse.ArgumentParser(
      prog='python -m train.report',
      description='Rebuild the report of a run (sparsity table, summary, '
      'plots) from its metrics and newest checkpoint.',
  )
  parser.add_argument(
      'run', help='a run directory (--workdir of python -m ' 'train)'
  )
  run = parser.parse_args(argv).run
  if not os.path.isdir(run):
    print(
        f'error: {run} is not a run directory (a --workdir of python -m '
        'train).',
        file=sys.stderr,
    )
    return 2
  try:
    cfg = config_lib.load_config(run).replace(workdir=run)
    variables = run_model.load_model(run)  # The sparse point, also mid-run.
  except (ValueError, OSError) as e:  # ConfigError, unreadable checkpoints
    print(f'error: cannot rebuild the report of {run}: {e}', file=sys.stderr)
    return 2
  write_report(cfg, variables['params'], step=variables['step'])
  return 0


if __name__ == '__main__':
  sys.exit(main())

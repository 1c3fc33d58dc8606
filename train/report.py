"""The final report of a run: sparsity table, summary and PNG plots.

Written by process 0 at the end of :func:`train.train.train_and_evaluate`
into ``<workdir>/report/``:

* ``sparsity_table.txt``: :func:`rda_optax.sparsity_table` of the final
  params (``*`` marks the regularized / selected leaves);
* ``summary.json``: final test accuracy, sparsity, steps, the config;
* ``accuracy.png``: train and test top-1 over epochs (ASR phase shaded);
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

from rda_optax import sparsity as sparsity_lib
from . import checkpoint as ckpt_lib
from . import config as config_lib
from . import selection
from . import metrics as metrics_lib

REPORT_DIR = 'report'


def _plt():
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  return plt


def _asr_span(records, ax):
  asr = [r['epoch'] for r in records if r.get('phase') == 'asr']
  if asr:
    start = min(asr)
    main = [r['epoch'] for r in records if r.get('phase') != 'asr']
    if main:
      start = max(main)
    ax.axvspan(start, max(asr), color='tab:orange', alpha=0.12, label='ASR')


def _finish_epoch_plot(plt, fig, ax, evals, path, title, ylabel) -> None:
  """Shades the ASR phase, labels, saves and closes a plot over epochs."""
  _asr_span(evals, ax)
  ax.set_xlabel('epoch')
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_accuracy(evals: list[dict[str, Any]], path: str, title: str) -> None:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  ep = [r['epoch'] for r in evals]
  for key, label in (
      ('test_top1', 'test top-1'),
      ('train_top1', 'train top-1'),
      ('test_top5', 'test top-5'),
  ):
    ys = [r.get(key) for r in evals]
    if any(y is not None for y in ys):
      ax.plot(
          ep,
          [float('nan') if y is None else y for y in ys],
          marker='o',
          ms=3,
          label=label,
      )
  _finish_epoch_plot(plt, fig, ax, evals, path, title, 'accuracy')


def plot_sparsity(
    evals: list[dict[str, Any]],
    trains: list[dict[str, Any]],
    path: str,
    title: str,
) -> None:
  """Sparsity over epochs; the legend and a note give the final values.

  The two evaluated curves (selected leaves, all parameters) are often a
  fraction of a point apart: they are drawn in different styles (solid with
  dots, dashed with squares) so that neither hides the other, and the final
  values are written out.
  """
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  pct = lambda v: float('nan') if v is None else 100 * v
  if trains:
    ax.plot(
        [r['epoch'] for r in trains],
        [pct(r.get('sparsity')) for r in trains],
        lw=1,
        alpha=0.45,
        color='tab:blue',
        label='selected leaves (train log)',
    )
  ep = [r['epoch'] for r in evals]
  final = evals[-1] if evals else {}
  for key, label, style in (
      (
          'sparsity',
          'selected leaves',
          dict(color='tab:blue', marker='o', ms=4, lw=1.8),
      ),
      (
          'total_sparsity',
          'all parameters',
          dict(color='tab:red', marker='s', ms=3, lw=1.2, ls='--', mfc='none'),
      ),
  ):
    last = final.get(key)
    if last is not None:
      label = f'{label} (final {100 * last:.2f}%)'
    ax.plot(ep, [pct(r.get(key)) for r in evals], label=label, **style)
  if final.get('sparsity') is not None:
    ax.annotate(
        f'{100 * final["sparsity"]:.2f}% zeros',
        (final['epoch'], 100 * final['sparsity']),
        textcoords='offset points',
        xytext=(-6, -16),
        ha='right',
        fontsize=8,
    )
  ax.set_ylim(-2, 102)
  _finish_epoch_plot(
      plt, fig, ax, evals, path, title, 'sparsity (% of exact zeros)'
  )


def plot_layers(
    layers: dict[str, float],
    path: str,
    title: str,
    sizes: dict[str, int] | None = None,
) -> None:
  """Final sparsity per layer, each bar labelled with its value.

  With ``sizes`` (weights per layer) the label also gives the nonzeros,
  what the layer still costs.
  """
  plt = _plt()
  names = list(layers)
  height = max(3.0, 0.3 * len(names) + 1.2)
  fig, ax = plt.subplots(figsize=(7.5, height))
  ys = list(range(len(names)))
  values = [100 * layers[n] for n in names]
  ax.barh(ys, values, color='tab:blue')
  for y, n, v in zip(ys, names, values):
    text = f'{v:.1f}%'
    if sizes and n in sizes:
      left = round(sizes[n] * (1 - layers[n]))
      text += f'  ({left:,} of {sizes[n]:,} nonzero)'
    inside = v > 55
    ax.text(
        v - 1 if inside else v + 1,
        y,
        text,
        va='center',
        ha='right' if inside else 'left',
        fontsize=7,
        color='white' if inside else 'black',
    )
  ax.set_yticks(ys)
  ax.set_yticklabels(names, fontsize=7)
  ax.invert_yaxis()
  ax.set_xlim(0, 100)
  ax.set_xlabel('sparsity (% of exact zeros)')
  ax.set_title(title)
  ax.grid(axis='x', alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_report(
    cfg: config_lib.Config,
    params: Any,
    last_train: dict[str, Any] | None = None,
) -> dict[str, Any]:
  """Writes ``<workdir>/report/`` for the final ``params`` (host arrays).

  Returns:
    The summary dict (also written to ``summary.json``).
  """
  out = os.path.join(cfg.workdir, REPORT_DIR)
  os.makedirs(out, exist_ok=True)
  mask = selection.leaf_mask(cfg.select)
  records = sparsity_lib.layer_sparsity(params, mask)
  table = sparsity_lib.sparsity_table(params, records=records)
  summary_sp = sparsity_lib.sparsity_summary(params, records=records)
  with open(os.path.join(out, 'sparsity_table.txt'), 'w') as f:
    f.write(table + '\n')

  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  trains = metrics_lib.read_records(cfg.workdir, 'train')
  final = evals[-1] if evals else {}
  ips = [r['images_per_sec'] for r in trains if r.get('images_per_sec')]
  summary = {
      'model': cfg.model,
      'dataset': cfg.dataset,
      'method': cfg.method,
      'asr_epochs': cfg.asr_epochs,
      'regularizer': cfg.regularizer,
      'steps': final.get('step'),
      'epochs': final.get('epoch'),
      'test_top1': final.get('test_top1'),
      'test_top5': final.get('test_top5'),
      'test_loss': final.get('test_loss'),
      'best_test_top1': max(
          (r['test_top1'] for r in evals if r.get('test_top1') is not None),
          default=None,
      ),
      'sparsity': summary_sp['regularized/sparsity'],
      'total_sparsity': summary_sp['total/sparsity'],
      'channel_sparsity': summary_sp['regularized/channel_sparsity'],
      'nonzeros': summary_sp['regularized/nonzeros'],
      'size': summary_sp['regularized/size'],
      'median_images_per_sec': (sorted(ips)[len(ips) // 2] if ips else None),
      'config': cfg.to_dict(),
  }
  with open(os.path.join(out, 'summary.json'), 'w') as f:
    json.dump(metrics_lib._jsonable(summary), f, indent=2, sort_keys=True)  # pylint: disable=protected-access

  title = f'{cfg.model} / {cfg.dataset} / {cfg.method}' + (
      ' + ASR' if cfg.asr_epochs else ''
  )
  pngs = []
  if evals:
    plot_accuracy(evals, os.path.join(out, 'accuracy.png'), title)
    plot_sparsity(evals, trains, os.path.join(out, 'sparsity.png'), title)
    pngs += ['accuracy.png', 'sparsity.png']
  layers = {r.path: r.sparsity for r in records if r.regularized}
  if layers:
    plot_layers(
        layers,
        os.path.join(out, 'layer_sparsity.png'),
        f'{title}: final sparsity per layer',
        sizes={r.path: r.size for r in records if r.regularized},
    )
    pngs.append('layer_sparsity.png')

  def pct(x):
    return '-' if x is None else f'{100 * x:.2f}%'

  lines = [
      f'# Report: {title}',
      '',
      f'- run directory: `{os.path.abspath(cfg.workdir)}`',
      f'- steps: {summary["steps"]} ({(summary["epochs"] or 0):.2f} epochs)',
      f'- test top-1: {pct(summary["test_top1"])}, top-5: '
      f'{pct(summary["test_top5"])} (best top-1 {pct(summary["best_test_top1"])})',
      f'- sparsity of the selected leaves (`--select {cfg.select}`): '
      f'{pct(summary["sparsity"])} ({summary["nonzeros"]} of {summary["size"]} '
      'weights nonzero)',
      f'- sparsity of all parameters: {pct(summary["total_sparsity"])}; '
      f'all-zero output channels: {pct(summary["channel_sparsity"])}',
  ]
  if summary['median_images_per_sec']:
    lines.append(
        f'- training throughput (median): '
        f'{summary["median_images_per_sec"]:.0f} images/s'
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


# Logged hyper-parameters shown in the report (those the run has).
_HYPERS = ('lr', 'gamma', 'lam', 'target_sparsity', 'momentum')


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
    variables = ckpt_lib.load_variables(run)
  except (ValueError, OSError) as e:  # ConfigError, unreadable checkpoints
    print(f'error: cannot rebuild the report of {run}: {e}', file=sys.stderr)
    return 2
  write_report(cfg, variables['params'])
  return 0


if __name__ == '__main__':
  sys.exit(main())

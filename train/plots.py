"""The PNG plots of a run's report (:mod:`train.report`): accuracy (a
language model: its losses) and sparsity over epochs, and the final sparsity
per layer.

matplotlib (with its file backend, Agg) loads with this module, which
:func:`train.report.write_report` imports when it draws: the training job
does not pay for it at start-up.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from . import tasks  # pylint: disable=wrong-import-position


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
  """Train and test top-1 (and test top-5) over epochs."""
  plot_evals(evals, path, title, tasks.CLASSIFICATION)


def plot_evals(
    evals: list[dict[str, Any]], path: str, title: str, task: tasks.Task
) -> None:
  """The task's curves over epochs (:attr:`~train.tasks.Classification.curves`:
  accuracy, or a language model's losses with bits per character on a second
  axis)."""
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  ep = [r['epoch'] for r in evals]
  if task.kind == 'language_model':
    ax.secondary_yaxis(
        'right',
        functions=(lambda x: x / tasks.LN2, lambda b: b * tasks.LN2),
    ).set_ylabel('bits per character')
  for key, label in task.curves:
    ys = [r.get(key) for r in evals]
    if any(y is not None for y in ys):
      ax.plot(
          ep,
          [float('nan') if y is None else y for y in ys],
          marker='o',
          ms=3,
          label=label,
      )
  _finish_epoch_plot(plt, fig, ax, evals, path, title, task.plot_ylabel)


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

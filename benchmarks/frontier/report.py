"""The frontier's report: runs aggregated over seeds, each method's best
point at each sparsity level (the rule in :mod:`benchmarks.frontier`), the
Markdown tables and the accuracy-against-sparsity plot."""

from __future__ import annotations

import datetime
import math
import statistics
from typing import Any

from .runner import machine


def by_point(records) -> dict[tuple, list]:
  """(method, variant, strength) -> the records of that point (its seeds)."""
  groups: dict[tuple, list] = {}
  for r in records:
    groups.setdefault((r['method'], r['variant'], r['strength']), []).append(r)
  return groups


def aggregate(records):
  """(method, variant, strength) -> mean/std of accuracy and sparsity."""
  out = {}
  for key, rs in by_point(records).items():
    acc = [r['test_top1'] for r in rs]
    sp = [r['sparsity'] for r in rs]
    out[key] = {
        'acc': statistics.mean(acc),
        'acc_std': statistics.stdev(acc) if len(acc) > 1 else 0.0,
        'sparsity': statistics.mean(sp),
        'sparsity_std': statistics.stdev(sp) if len(sp) > 1 else 0.0,
        'seeds': len(rs),
    }
  return out


# A point counts for a level it misses by less than 0.01 percentage point:
# pruning to s keeps n − round(s·n) weights, one weight short of s on
# ResNet-8's 77k kernel weights (96.99974% for 97%).
LEVEL_TOLERANCE = 1e-4


def at_levels(agg, levels):
  """method -> level -> (acc, acc_std, sparsity, variant, strength, seeds).

  At each level L, a method's candidates are its points whose mean sparsity
  reaches L. Within L's band (below the next level), those measured over
  the most seeds are eligible and the most accurate of them is taken; a
  point above the band (or, when the band is empty, the best of those)
  replaces it only when it is more accurate over at least as many seeds.
  So the best of several one-seed points is not compared against a mean
  over three seeds (it would be biased upward), a three-seed point at a
  higher level does not stand in for the point at L itself, and a method
  is never compared below its sparsity.
  """
  levels = sorted(levels)
  bands = {
      level: levels[i + 1] if i + 1 < len(levels) else math.inf
      for i, level in enumerate(levels)
  }
  candidates: dict[str, dict[float, list]] = {}
  for (method, variant, strength), a in agg.items():
    if method == 'dense' and variant == 'parent':
      continue
    point = (
        a['acc'],
        a['acc_std'],
        a['sparsity'],
        variant,
        strength,
        a['seeds'],
    )
    for level in levels:
      # Dense SGD is the reference, shown at the first level only.
      if (
          level == levels[0]
          if method == 'dense'
          else a['sparsity'] + LEVEL_TOLERANCE >= level
      ):
        candidates.setdefault(method, {}).setdefault(level, []).append(point)
  table: dict[str, dict[float, tuple]] = {}
  for method, by_level in candidates.items():
    for level, points in by_level.items():
      band = [p for p in points if p[2] + LEVEL_TOLERANCE < bands[level]]
      pick = max(band or points, key=lambda p: (p[5], p[0]))
      # A point above the band replaces it when it is more accurate over at
      # least as many seeds (the overshooting method compared at its
      # higher sparsity).
      above = [
          p
          for p in points
          if p not in band and p[5] >= pick[5] and p[0] > pick[0]
      ]
      table.setdefault(method, {})[level] = max(
          above, key=lambda p: p[0], default=pick
      )
  return table


def per_seed(records) -> list[str]:
  """Markdown rows of every point run with more than one seed, seed by seed.

  The mean ± std of the level table hides whether one method is ahead in
  every seed or only on average; this table shows it.
  """
  groups = {
      key: {r['seed']: r['test_top1'] for r in rs}
      for key, rs in by_point(records).items()
      if len(rs) > 1
  }
  if not groups:
    return []
  seeds = sorted({s for v in groups.values() for s in v})
  lines = [
      'Test top-1 seed by seed (every point run with more than one seed):',
      '',
      '| method / variant / strength | '
      + ' | '.join(f'seed {s}' for s in seeds)
      + ' |',
      '|---|' + '---:|' * len(seeds),
  ]
  for (method, variant, strength), accs in sorted(groups.items()):
    cells = [f'{accs[s]:.2%}' if s in accs else '—' for s in seeds]
    lines.append(
        f'| {method} / {variant} / {strength:g} | ' + ' | '.join(cells) + ' |'
    )
  return lines + ['']


def runs_made_on(records) -> list[str]:
  """Lines naming the machines, dates and commits of the runs."""
  by_machine: dict[str, list[dict[str, Any]]] = {}
  unknown = 0
  for r in records:
    if r.get('machine'):
      by_machine.setdefault(r['machine'], []).append(r)
    else:
      unknown += 1
  lines = []
  for name, recs in by_machine.items():
    days = sorted({r['date'][:10] for r in recs if r.get('date')})
    commits = sorted({r['commit'] for r in recs if r.get('commit')})
    when = (
        ''
        if not days
        else f', {days[0]}'
        if len(days) == 1
        else f', {days[0]} to {days[-1]}'
    )
    lines.append(
        f'- {len(recs)} run{"s" * (len(recs) > 1)} on {name}{when}'
        + (f', commit {", ".join(commits)}' if commits else '')
    )
  if unknown:
    lines.append(
        f'- {unknown} run{"s" * (unknown > 1)} made before machines were '
        'recorded per run (docs/results.md dates them)'
    )
  return ['Runs:', '', *lines, ''] if lines else []


def markdown(setting_name, setting, records, agg) -> str:
  table = at_levels(agg, setting.levels)
  methods = [
      m
      for m in (
          'rmda',
          'rmda_target',
          'rda',
          'prox_sgd',
          'gmp',
          'han_global',
          'han_layer',
      )
      if m in table
  ]
  lines = [
      f'Setting `{setting_name}`: {setting.base}, {setting.epochs:g} '
      f'epochs for every method.',
      '',
      *runs_made_on(records),
      f'This report: {machine()}, JAX on {_device()}; '
      f'{datetime.date.today()}.',
      '',
  ]
  if setting.note:
    lines += [setting.note, '']
  if 'dense' in table:
    d = table['dense'][setting.levels[0]]
    lines += [
        f'Dense SGD reference: {d[0]:.2%} ± {d[1]:.2%} '
        f'({d[5]} seed{"s" * (d[5] > 1)}).',
        '',
    ]
  lines.append('| sparsity ≥ | ' + ' | '.join(methods) + ' |')
  lines.append('|---:|' + '---:|' * len(methods))
  most = max((e[5] for m in methods for e in table[m].values()), default=0)
  for level in setting.levels:
    cells = []
    for m in methods:
      e = table[m].get(level)
      seeds = (
          ''
          if e is None or e[5] == most
          else f' ({e[5]} seed{"s" * (e[5] > 1)})'
      )
      cells.append(
          '—' if e is None else f'{e[0]:.2%} ± {e[1]:.2%} @ {e[2]:.2%}{seeds}'
      )
    lines.append(f'| {level:.1%} | ' + ' | '.join(cells) + ' |')
  lines += [
      '',
      'Each cell: mean test top-1 ± std over seeds @ mean kernel '
      'sparsity, the best point of the method whose mean sparsity is '
      'at least the level. The point chosen (variant, strength):',
      '',
  ]
  for m in methods:
    chosen = ', '.join(
        f'{lv:.1%}: {e[3]} / {e[4]:g}' for lv, e in sorted(table[m].items())
    )
    lines.append(f'- {m}: {chosen}')
  lines.append('')
  lines += per_seed(records)
  lines += [
      'Sparsity and accuracy against the strength λ of each '
      'regularization method (mean over seeds): how to pick λ for a '
      'target sparsity.',
      '',
  ]
  for (m, variant), pts in lambda_curves(agg).items():
    lines.append(
        f'| {m} / {variant}: λ | '
        + ' | '.join(f'{lam:g}' for lam, _ in pts)
        + ' |'
    )
    lines.append('|---|' + '---:|' * len(pts))
    lines.append(
        '| sparsity | '
        + ' | '.join(f'{a["sparsity"]:.2%}' for _, a in pts)
        + ' |'
    )
    lines.append(
        '| test top-1 | ' + ' | '.join(f'{a["acc"]:.2%}' for _, a in pts) + ' |'
    )
    lines.append('')
  lams = lambda_at_levels(agg, setting.levels)
  if lams:
    names = sorted(lams)
    lines += [
        'λ for each level, interpolated (log λ linear in the mean sparsity '
        'between the two grid points around the level; — outside the '
        'grid):',
        '',
        '| sparsity | ' + ' | '.join(f'{m} / {v}' for m, v in names) + ' |',
        '|---:|' + '---:|' * len(names),
    ]
    for level in setting.levels:
      cells = [lams[n].get(level) for n in names]
      lines.append(
          f'| {level:.1%} | '
          + ' | '.join(
              '—' if c is None else f'{c:.1e}'.replace('e-0', 'e-')
              for c in cells
          )
          + ' |'
      )
    lines.append('')
  return '\n'.join(lines) + '\n'


def lambda_at_levels(agg, levels) -> dict[tuple[str, str], dict[float, float]]:
  """{(method, variant): {level: λ}} for the regularization methods: log λ
  interpolated linearly in the mean sparsity between the first two
  consecutive grid points (by λ) whose sparsities bracket the level."""
  out = {}
  for name, curve in lambda_curves(agg).items():
    pts = [(lam, a['sparsity']) for lam, a in curve if lam > 0]
    found = {}
    for level in levels:
      for (l0, s0), (l1, s1) in zip(pts, pts[1:]):
        if s0 <= level <= s1 and s1 > s0:
          t = (level - s0) / (s1 - s0)
          found[level] = math.exp(
              math.log(l0) + t * (math.log(l1) - math.log(l0))
          )
          break
    if pts:
      out[name] = found
  return out


def lambda_curves(agg) -> dict[tuple[str, str], list[tuple[float, dict]]]:
  """{(method, variant): [(λ, aggregate), ...] by λ} for the
  regularization methods."""
  curves = {}
  for m in ('rmda', 'rda', 'prox_sgd'):
    for variant in sorted({k[1] for k in agg if k[0] == m}):
      curves[(m, variant)] = sorted(
          (k[2], a) for k, a in agg.items() if k[0] == m and k[1] == variant
      )
  return curves


def plot(path, setting, agg) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  x_of = lambda s: -math.log10(max(1 - s, 1e-4))
  styles = {
      'rmda': 'C3',
      'rmda_target': 'C6',
      'rda': 'C1',
      'prox_sgd': 'C4',
      'gmp': 'C2',
      'han_global': 'C0',
      'han_layer': 'C9',
  }
  table = at_levels(agg, setting.levels)
  for method, color in styles.items():
    # The frontier: the best variant per level (as in the table), plus every
    # point of the method faintly.
    pts = sorted(
        ((k[2], a) for k, a in agg.items() if k[0] == method),
        key=lambda t: t[0],
    )
    if not pts:
      continue
    ax.scatter(
        [x_of(a['sparsity']) for _, a in pts],
        [100 * a['acc'] for _, a in pts],
        s=8,
        color=color,
        alpha=0.3,
    )
    best = sorted(table.get(method, {}).items())
    if best:
      ax.errorbar(
          [x_of(e[2]) for _, e in best],
          [100 * e[0] for _, e in best],
          yerr=[100 * e[1] for _, e in best],
          color=color,
          marker='o',
          capsize=3,
          label=method,
      )
  dense = table.get('dense', {}).get(setting.levels[0])
  if dense:
    ax.axhline(
        100 * dense[0],
        color='gray',
        ls='--',
        lw=1,
        label=f'dense SGD ({100 * dense[0]:.2f}%)',
    )
  ticks = [0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998]
  ax.set_xticks([x_of(t) for t in ticks], [f'{100 * t:g}' for t in ticks])
  ax.set_xlabel('kernel sparsity (%)')
  ax.set_ylabel('test top-1 (%)')
  # The interesting band: within a few points of dense (worse curves run
  # off the bottom; the tables have every number).
  top = 100 * dense[0] if dense else max(100 * a['acc'] for a in agg.values())
  lowest = min(
      (
          100 * e[0]
          for m, t in table.items()
          if m != 'dense'
          for e in t.values()
      ),
      default=top,
  )
  # 4 points below dense, or down to the lowest point of any curve, but at
  # most the setting's plot_depth below dense.
  ax.set_ylim(
      max(min(top - 4.0, lowest - 0.5), top - setting.plot_depth), top + 0.4
  )
  ax.set_xlim(x_of(0.85), x_of(0.998))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='lower left')
  ax.set_title(
      f'{setting.base.get("model")} / {setting.base.get("dataset")}, '
      f'{setting.epochs:g} epochs (mean ± std over seeds)'
  )
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _device() -> str:
  try:
    import jax  # pylint: disable=import-outside-toplevel

    return str(jax.devices()[0].device_kind)
  except Exception:  # pylint: disable=broad-except
    return 'unknown'

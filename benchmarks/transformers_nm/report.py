"""The report of a sweep of :mod:`benchmarks.transformers_nm`: whether a run
reached its target, and per target and method the best variant's mean over
seeds (the rule in the package's docstring), as Markdown."""

from __future__ import annotations

import statistics

from .sweep import Setting


def meets(rec: dict, target: str) -> bool:
  """Whether a run reached ``target``: every kernel N:M, or at least the
  level's sparsity (up to rounding)."""
  if ':' in target:
    nm = rec.get('nm') or {}
    return nm.get('pattern') == target and nm.get('kernels_meeting') == nm.get(
        'kernels'
    )
  return (rec.get('sparsity') or 0) >= float(target) - 1e-4


def table(setting: Setting, records: list[dict]) -> str:
  """Per target and method: the best variant's mean ± std over seeds."""
  key = setting.metric
  sign = 1 if setting.lower_is_better else -1
  points: dict = {}
  for r in records:
    if r.get(key) is None:
      continue
    points.setdefault((r['method'], r['variant'], r['target']), []).append(r)
  lines = []
  dense = [  # Full-budget dense runs (not han's shorter parents).
      r[key]
      for r in records
      if r['target'] == 'dense' and r['variant'] != 'parent' and r.get(key)
  ]
  if dense:
    lines.append(
        f'Dense reference: {key} {statistics.mean(dense):.4f} '
        f'± {statistics.pstdev(dense):.4f} ({len(dense)} seeds)'
    )
    lines.append('')
  lines += [
      f'| target | method | {key} (mean ± std) | seeds | sparsity | variant |',
      '|---|---|---|---|---|---|',
  ]
  for target in setting.targets:
    for method in setting.methods:
      if method == 'dense':
        continue
      best = None
      for (m, v, t), rs in points.items():
        if m != method:
          continue
        if t != target and not (t.startswith('lam') and ':' not in target):
          continue
        if not all(meets(r, target) for r in rs):
          continue
        vals = [r[key] for r in rs]
        score = (-len(vals), sign * statistics.mean(vals))
        if best is None or score < best[0]:
          best = (score, v, t, rs)
      if best is None:
        lines.append(f'| {target} | {method} | - | 0 | - | - |')
        continue
      _, v, t, rs = best
      vals = [r[key] for r in rs]
      sp = statistics.mean(r['sparsity'] for r in rs)
      lines.append(
          f'| {target} | {method} | {statistics.mean(vals):.4f} ± '
          f'{statistics.pstdev(vals):.4f} | {len(vals)} | {100 * sp:.2f}% | '
          f'{v}{"" if t == target else " " + t} |'
      )
  return '\n'.join(lines)


def markdown(name: str, setting: Setting, records: list[dict]) -> str:
  """``results.md``: the setting's title and note, then :func:`table`."""
  return (
      f'# {name}: {setting.base.get("model")} on '
      f'{setting.base.get("dataset")}, {setting.epochs:g} epochs\n\n'
      + (setting.note + '\n\n' if setting.note else '')
      + table(setting, records)
      + '\n'
  )

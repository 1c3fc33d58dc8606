"""A sweep's runs: the ``Run`` and ``Setting`` types (a setting's methods,
each a kind and its variants, and the runs they make at each target and
seed, for the sweep and for ``--smoke``) and the flags that make a method of
each kind reach a target (see :mod:`benchmarks.transformers_nm`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from train.cli import flags

from .. import sweeps

NM = '2:4'


class Run(sweeps.Run):
  """One ``python -m train`` run of a sweep: ``Run(method, variant, target,
  seed, flags, needs=None)``, its point the target: ``'0.75'``, ``'2:4'``,
  or ``'dense'`` (the reference), or a λ's point."""

  @property
  def target(self) -> str:
    return self.point


@dataclasses.dataclass(frozen=True)
class Setting:
  """A model / dataset / budget and each method's runs.

  ``methods`` maps a row name to ``(variants, kind)``: ``kind`` says how a
  target becomes flags (see :func:`target_flags`); each variant is a dict
  of flags. ``finetune_epochs``: han's fine-tuning (its dense parent trains
  ``epochs - finetune_epochs``).
  """

  base: dict[str, Any]
  epochs: float
  targets: tuple[str, ...]
  methods: dict[str, tuple[dict[str, dict[str, Any]], str]]
  metric: str  # 'test_loss' (lower is better) or 'test_top1' (higher).
  finetune_epochs: float = 0.0
  lams: tuple[float, ...] = ()  # The λ grid of the 'l1' kind.
  note: str = ''
  smoke_steps_per_epoch: int = 1  # --smoke: a few steps of every run.
  smoke_flags: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def lower_is_better(self) -> bool:
    return self.metric == 'test_loss'

  def runs(self, seeds, methods=None) -> list[Run]:
    out: list[Run] = []
    for method, (variants, kind) in self.methods.items():
      if methods and method not in methods:
        continue
      for vname, v in variants.items():
        for seed in seeds:
          out += self._runs(method, vname, v, kind, seed, out)
    return out

  def smoke_runs(self, methods=None) -> list[Run]:
    """One run of each method (seed 0, its first variant; at N:M when the
    setting has it, else its first target or λ) and the runs they need;
    the dense method's is han's dense parent when han runs."""
    out: list[Run] = []
    chosen = [m for m in self.methods if not methods or m in methods]
    parent = any(self.methods[m][1] == 'han' for m in chosen)
    for method in chosen:
      variants, kind = self.methods[method]
      if kind == 'dense' and parent:
        continue  # The parent of han's run is a dense run.
      vname, v = next(iter(variants.items()))
      runs = self._runs(method, vname, v, kind, 0, out)
      pick = [r for r in runs if r.target == NM] or [
          r for r in runs if r.needs is None
      ][:1]
      for r in pick:
        if r.needs is not None and r.needs not in out:
          out.append(r.needs)
        out.append(r)
    return out

  def smoke(self) -> tuple[str, ...]:
    """The flags that make a run a smoke run: a few steps per epoch (the
    epoch-valued options unchanged), one evaluation, at the end."""
    return flags(
        {
            'steps_per_epoch': self.smoke_steps_per_epoch,
            'log_every_steps': 1,
            'eval_every_epochs': 1000,
            **self.smoke_flags,
        }
    )

  def _runs(self, method, vname, v, kind, seed, before) -> list[Run]:
    common = {**self.base, 'seed': seed, 'epochs': self.epochs}
    if kind == 'dense':
      return [Run(method, vname, 'dense', seed, flags({**common, **v}))]
    if kind == 'l1':  # A λ grid: each point lands at some sparsity.
      return [
          Run(
              method,
              vname,
              f'lam{lam:g}',
              seed,
              flags({**common, **v, 'lam': lam}),
          )
          for lam in self.lams
      ]
    out = []
    for target in self.targets:
      if kind == 'han':
        parent_v, ft = self.methods['dense'][0]['default'], self.finetune_epochs
        parent = Run(
            'dense',
            'parent',
            'dense',
            seed,
            flags({**common, **parent_v, 'epochs': self.epochs - ft}),
        )
        if parent not in before and parent not in out:
          out.append(parent)
        f = {**common, **v, 'epochs': ft, **target_flags(kind, target)}
        out.append(Run(method, vname, target, seed, flags(f), needs=parent))
      else:
        f = {**common, **v, **target_flags(kind, target)}
        out.append(Run(method, vname, target, seed, flags(f)))
    return out


def target_flags(kind: str, target: str) -> dict[str, Any]:
  """The flags that make a run of ``kind`` reach ``target`` (a sparsity
  level, or N:M)."""
  nm = ':' in target
  if kind == 'projected':  # A proximal method projected on the target.
    if nm:
      return {'regularizer': 'nm', 'nm': target}
    return {'regularizer': 'sparsity', 'target_sparsity': float(target)}
  if kind == 'gmp':
    return {'nm': target} if nm else {'gmp_sparsity': float(target)}
  if kind == 'han':
    return {'nm': target} if nm else {'prune_sparsity': float(target)}
  raise ValueError(f'Unknown kind {kind!r}.')

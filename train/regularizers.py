"""The train job's regularizers (``--regularizer``), each declared once.

A :class:`Regularizer` says everything the job needs to know about one: its
builder, the options it reads, whether its prox makes exact zeros (so that
adaptive sparse retraining, ASR, may follow), its checks, and what the
scheduled strength drives: λ (``--lam`` and its schedule), or for
``sparsity`` the target sparsity's ramp. The CLI help, validation and the
optimizer (:mod:`train.optimizer`) read this table, so adding a regularizer
means adding one entry (and its tests).

Light like :mod:`train.methods` (no JAX, no Optax at import); builders get
the modules they build with from their :class:`~train.methods.BuildContext`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

# The options whose meaning depends on the regularizer.
TARGET_OPTIONS = frozenset(
    {'target_sparsity', 'target_begin_epoch', 'target_end_epoch'}
)
STRENGTH_OPTIONS = frozenset({'lam', 'lam2'})
# --scale_penalty: what --scale_lam puts on the batch-norm scales, beside the
# regularizer on the kernels (built in train.selection).
SCALE_PENALTIES = ('l1', 'channel')


@dataclasses.dataclass(frozen=True)
class Regularizer:
  """One regularizer of ``python -m train --regularizer``.

  Attributes:
    name: the ``--regularizer`` value.
    summary: one line for the help.
    build: ``BuildContext -> rda_optax regularizer`` (None: no penalty).
    reads: the options it reads besides ``--regularizer``.
    zeros_from: the options whose positive value makes its prox give exact
      zeros (empty: none ever), the condition for ASR to follow.
    drives: the hyper-parameter its schedule drives in the optimizer:
      ``'lam'``, or another name that :attr:`schedule` builds.
    schedule: ``(cfg, steps_per_epoch, rda_optax) -> schedule`` of
      :attr:`drives` when it is not λ.
    split: ``BuildContext -> penalty`` of ``--method splitting``'s sparse
      copy ``V = prox(W)`` (elementwise; None: splitting cannot use it).
    check: ``(cfg, explicit) -> None``, raising ``ValueError`` for settings
      it cannot use; ``explicit`` are the options set explicitly.
  """

  name: str
  summary: str
  build: Callable[[Any], Any] | None
  reads: frozenset[str] = frozenset()
  zeros_from: frozenset[str] = STRENGTH_OPTIONS
  drives: str = 'lam'
  schedule: Callable[[Any, int, Any], Any] | None = None
  split: Callable[[Any], Any] | None = None
  check: Callable[[Any, frozenset[str]], None] | None = None

  def makes_zeros(self, cfg) -> bool:
    """Whether its prox gives exact zeros with ``cfg``'s strengths."""
    return any(getattr(cfg, o) > 0 for o in self.zeros_from)


def ramp_end(end_epoch: float, epochs: float) -> float:
  """The end of a sparsity ramp: ``end_epoch``, or 3/4 of ``epochs`` if < 0."""
  return end_epoch if end_epoch >= 0 else 0.75 * epochs


def target_end_epoch(cfg) -> float:
  """``--target_end_epoch``, or 3/4 of ``--epochs`` if < 0."""
  return ramp_end(cfg.target_end_epoch, cfg.epochs)


def _lam(ctx) -> Any:
  return ctx.hypers['lam']


def _tl1(ctx):
  cfg = ctx.cfg
  kw = dict(a=cfg.tl1_a)
  if cfg.lam2:
    kw.update(
        group_strength=cfg.lam2,
        groups=cfg.groups,
        group_prox=cfg.tl1_group_prox,
    )
  return ctx.rda_optax.transformed_l1(_lam(ctx), **kw)


def _sparsity(ctx):
  return ctx.rda_optax.sparsity_constraint(
      ctx.hypers['target_sparsity'], scope=ctx.cfg.prune_scope
  )


def _target_ramp(cfg, steps_per_epoch: int, rda_optax):
  """Zhu & Gupta's cubic ramp from 0 to ``--target_sparsity``."""
  begin = int(round(cfg.target_begin_epoch * steps_per_epoch))
  end = int(round(target_end_epoch(cfg) * steps_per_epoch))
  return functools.partial(
      rda_optax.zhu_gupta_sparsity,
      final_sparsity=cfg.target_sparsity,
      begin_step=begin,
      end_step=max(end, begin),
  )


def _check_target(cfg, explicit) -> None:
  if explicit & STRENGTH_OPTIONS:
    raise ValueError(
        '--regularizer sparsity constrains the sparsity itself and has no '
        'strength: drop --lam / --lam2 and set --target_sparsity (and its '
        'ramp, --target_begin_epoch / --target_end_epoch).'
    )
  if not 0 <= cfg.target_sparsity < 1:
    raise ValueError(
        f'--target_sparsity must be in [0, 1), got {cfg.target_sparsity}.'
    )
  end = target_end_epoch(cfg)
  if not 0 <= cfg.target_begin_epoch <= end <= cfg.epochs:
    raise ValueError(
        f'--regularizer sparsity needs 0 <= --target_begin_epoch '
        f'({cfg.target_begin_epoch:g}) <= --target_end_epoch ({end:g}) <= '
        f'--epochs ({cfg.epochs:g}).'
    )


def _check_no_target(cfg, explicit) -> None:
  """A penalty's strength is λ: the target options mean nothing to it."""
  if explicit & TARGET_OPTIONS:
    bad = ', '.join('--' + o for o in sorted(explicit & TARGET_OPTIONS))
    raise ValueError(
        f'{bad} set the target of --regularizer sparsity, but the '
        f'regularizer is {cfg.regularizer}: add --regularizer sparsity, or '
        f'drop them and set --lam.'
    )


def _check_sparse_group_lasso(cfg, explicit) -> None:
  _check_no_target(cfg, explicit)
  if cfg.lam2 == 0:
    raise ValueError(
        '--regularizer sparse_group_lasso needs --lam2 > 0 '
        '(the group strength; --lam is the l1 strength).'
    )


_GROUPED = frozenset({'lam', 'groups'})

REGULARIZERS: dict[str, Regularizer] = {
    r.name: r
    for r in (
        Regularizer(
            'none',
            'no penalty',
            None,
            zeros_from=frozenset(),
            check=_check_no_target,
        ),
        Regularizer(
            'l1',
            'λ‖w‖₁ (soft threshold)',
            lambda ctx: ctx.rda_optax.l1(_lam(ctx)),
            frozenset({'lam'}),
            split=lambda ctx: ctx.rda_optax.l1(_lam(ctx)),
            check=_check_no_target,
        ),
        Regularizer(
            'l0',
            'λ‖w‖₀ (hard threshold)',
            lambda ctx: ctx.rda_optax.l0(_lam(ctx)),
            frozenset({'lam'}),
            split=lambda ctx: ctx.rda_optax.l0(_lam(ctx)),
            check=_check_no_target,
        ),
        Regularizer(
            'group_lasso',
            'λ Σ √n_g ‖w_g‖ over --groups',
            lambda ctx: ctx.rda_optax.group_lasso(
                _lam(ctx), groups=ctx.cfg.groups
            ),
            _GROUPED,
            check=_check_no_target,
        ),
        Regularizer(
            'sparse_group_lasso',
            'λ‖w‖₁ + λ₂ Σ √n_g ‖w_g‖ (--lam2)',
            lambda ctx: ctx.rda_optax.sparse_group_lasso(
                _lam(ctx), ctx.cfg.lam2, groups=ctx.cfg.groups
            ),
            _GROUPED | {'lam2'},
            check=_check_sparse_group_lasso,
        ),
        Regularizer(
            'tl1',
            'transformed ℓ1 (--tl1_a), with a group term for --lam2 > 0',
            _tl1,
            _GROUPED | {'lam2', 'tl1_a', 'tl1_group_prox'},
            split=lambda ctx: ctx.rda_optax.transformed_l1(
                _lam(ctx), a=ctx.cfg.tl1_a
            ),
            check=_check_no_target,
        ),
        Regularizer(
            'sparsity',
            'the constraint: keep the largest weights, --target_sparsity of '
            'them at zero (reached along a cubic ramp)',
            _sparsity,
            TARGET_OPTIONS | {'prune_scope'},
            zeros_from=frozenset({'target_sparsity'}),
            drives='target_sparsity',
            schedule=_target_ramp,
            check=_check_target,
        ),
    )
}


def get(name: str) -> Regularizer:
  """The regularizer ``name``; ValueError listing them if unknown."""
  try:
    return REGULARIZERS[name]
  except KeyError:
    raise ValueError(
        f'Unknown regularizer {name!r}. Choose one of: '
        f'{", ".join(REGULARIZERS)}.'
    ) from None


def splittable() -> tuple[str, ...]:
  """The regularizers ``--method splitting`` can keep ``V = prox(W)`` of."""
  return tuple(r.name for r in REGULARIZERS.values() if r.split is not None)

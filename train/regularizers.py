"""The train job's regularizers (``--regularizer``), each declared once.

A :class:`Regularizer` says everything the job needs to know about one: its
builder, the options it reads, whether its prox makes exact zeros (so that
adaptive sparse retraining, ASR, may follow), its checks, and what the
scheduled strength drives: λ (``--lam`` and its schedule), or for
``sparsity`` the target sparsity's ramp (for ``nm`` the ramp to N:M). The
CLI help, validation and the optimizer (:mod:`train.optimizer`) read this
table, so adding a regularizer means adding one entry (and its tests).

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
# The pattern of --regularizer nm (and of the pruning methods' --nm) and how
# it is reached.
NM_OPTIONS = frozenset({'nm', 'nm_schedule'})
NM_SCHEDULES = ('n', 'fraction')
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
      ``'lam'``, or another name that :attr:`schedule` builds; or
      ``cfg -> name`` when the options choose it (:meth:`driven`).
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
  drives: str | Callable[[Any], str] = 'lam'
  schedule: Callable[[Any, int, Any], Any] | None = None
  split: Callable[[Any], Any] | None = None
  check: Callable[[Any, frozenset[str]], None] | None = None

  def makes_zeros(self, cfg) -> bool:
    """Whether its prox gives exact zeros with ``cfg``'s strengths (a
    positive number, or a pattern such as ``--nm 2:4``)."""
    return any(_positive(getattr(cfg, o)) for o in self.zeros_from)

  def driven(self, cfg) -> str:
    """The hyper-parameter its schedule drives with ``cfg``'s options."""
    return self.drives(cfg) if callable(self.drives) else self.drives


def _positive(value) -> bool:
  return value > 0 if isinstance(value, (int, float)) else bool(value)


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
  _check_no_nm(cfg, explicit)
  end = target_end_epoch(cfg)
  if not 0 <= cfg.target_begin_epoch <= end <= cfg.epochs:
    raise ValueError(
        f'--regularizer sparsity needs 0 <= --target_begin_epoch '
        f'({cfg.target_begin_epoch:g}) <= --target_end_epoch ({end:g}) <= '
        f'--epochs ({cfg.epochs:g}).'
    )


def _check_no_target(cfg, explicit) -> None:
  """A penalty's strength is λ: the target and N:M options mean nothing to
  it."""
  if explicit & TARGET_OPTIONS:
    bad = ', '.join('--' + o for o in sorted(explicit & TARGET_OPTIONS))
    raise ValueError(
        f'{bad} set the target of --regularizer sparsity, but the '
        f'regularizer is {cfg.regularizer}: add --regularizer sparsity, or '
        f'drop them and set --lam.'
    )
  _check_no_nm(cfg, explicit)


def _check_no_nm(cfg, explicit) -> None:
  """The N:M options belong to --regularizer nm."""
  if explicit & NM_OPTIONS:
    bad = ', '.join('--' + o for o in sorted(explicit & NM_OPTIONS))
    raise ValueError(
        f'{bad} set the pattern of the N:M constraint, but the regularizer '
        f'is {cfg.regularizer}: add --regularizer nm, or drop them.'
    )


# ---------------------------------------------------------------------------
# N:M sparsity (--regularizer nm; the pruning methods' --nm reads these too).
# ---------------------------------------------------------------------------


def parse_nm(text: str) -> tuple[int, int]:
  """``"2:4"`` -> ``(2, 4)``: at most N nonzeros in every M weights.

  Example:
    >>> parse_nm('2:4')
    (2, 4)

  Raises:
    ValueError: not ``N:M`` with integers ``1 <= N < M``.
  """
  parts = str(text).split(':')
  try:
    n, m = (int(p) for p in parts)
  except ValueError:
    n = m = None
  if len(parts) != 2 or n is None or not 1 <= n < m:
    raise ValueError(
        f'--nm must be N:M with integers 1 <= N < M (e.g. 2:4, 1:4, 4:8), '
        f'got {text!r}.'
    )
  return n, m


def _nm(ctx):
  """The N:M constraint at this update: N (``nm_n``) or the share of groups
  held to N:M (``nm_fraction``) from its ramp."""
  n, m = parse_nm(ctx.cfg.nm)
  return ctx.rda_optax.nm_constraint(
      ctx.hypers.get('nm_n', n),
      m,
      fraction=ctx.hypers.get('nm_fraction', 1.0),
  )


def _nm_drives(cfg) -> str:
  return 'nm_fraction' if cfg.nm_schedule == 'fraction' else 'nm_n'


def _nm_ramp(cfg, steps_per_epoch: int, rda_optax):
  """``--nm_schedule n``: N from M down to N (:func:`rda_optax.nm_n_schedule`,
  Zhu & Gupta's cubic); ``fraction``: the share of N:M groups from 0 to 1
  (:func:`rda_optax.nm_fraction_schedule`); from --target_begin_epoch to
  --target_end_epoch."""
  n, m = parse_nm(cfg.nm)
  begin = int(round(cfg.target_begin_epoch * steps_per_epoch))
  end = max(int(round(target_end_epoch(cfg) * steps_per_epoch)), begin)
  if cfg.nm_schedule == 'fraction':
    return functools.partial(
        rda_optax.nm_fraction_schedule, begin_step=begin, end_step=end
    )
  return functools.partial(
      rda_optax.nm_n_schedule, n=n, m=m, begin_step=begin, end_step=end
  )


def _check_nm(cfg, explicit) -> None:
  if not cfg.nm:
    raise ValueError('--regularizer nm needs the pattern: --nm N:M (2:4).')
  parse_nm(cfg.nm)
  strength = sorted(explicit & (STRENGTH_OPTIONS | {'target_sparsity'}))
  if strength:
    raise ValueError(
        '--regularizer nm is a constraint (at most N of every M weights '
        'nonzero) with no strength: drop '
        f'{", ".join("--" + o for o in strength)}.'
    )
  end = target_end_epoch(cfg)
  if not 0 <= cfg.target_begin_epoch <= end <= cfg.epochs:
    raise ValueError(
        f'--regularizer nm needs 0 <= --target_begin_epoch '
        f'({cfg.target_begin_epoch:g}) <= --target_end_epoch ({end:g}) <= '
        f'--epochs ({cfg.epochs:g}) (its ramp to N:M).'
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
        Regularizer(
            'nm',
            'the N:M constraint: at most N nonzeros in every M consecutive '
            "weights along each kernel's input axis (--nm 2:4), reached "
            'along --nm_schedule over the target ramp',
            _nm,
            NM_OPTIONS | {'target_begin_epoch', 'target_end_epoch'},
            zeros_from=frozenset({'nm'}),
            drives=_nm_drives,
            schedule=_nm_ramp,
            check=_check_nm,
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

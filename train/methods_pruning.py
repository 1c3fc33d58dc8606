"""The pruning methods' builders and checks: han, gmp, gmp_adamw and
han_adamw (magnitude pruning, or with ``--nm`` to the N:M pattern).

Entries of the one method table, :data:`train.methods.METHODS`.
"""

from __future__ import annotations

from . import regularizers
from .method_types import BuildContext


def check_han(cfg, explicit) -> None:
  if not 0 <= cfg.prune_sparsity < 1:
    raise ValueError(
        f'--prune_sparsity must be in [0, 1), got {cfg.prune_sparsity}.'
    )
  _check_pruning_nm(cfg, explicit)


def _check_pruning_nm(cfg, explicit) -> None:
  """A pruning method's ``--nm`` (prune to N:M by magnitude) replaces its
  sparsity."""
  if cfg.nm:
    regularizers.parse_nm(cfg.nm)
    replaced = {'gmp_sparsity', 'prune_sparsity'} & explicit
    if replaced:
      raise ValueError(
          f'--nm {cfg.nm} prunes to N:M, which replaces '
          f'{", ".join("--" + o for o in sorted(replaced))}: drop one.'
      )
  elif 'nm_schedule' in explicit:
    raise ValueError('--nm_schedule is the ramp of --nm N:M: set --nm too.')


def gmp_end_epoch(cfg) -> float:
  """gmp's end epoch: ``--gmp_end_epoch``, or 3/4 of ``--epochs`` if < 0."""
  return regularizers.ramp_end(cfg.gmp_end_epoch, cfg.epochs)


def _gradual_pruning(ctx: BuildContext):
  """The pruning of gmp and gmp_adamw, chained last: to --gmp_sparsity by
  magnitude, or with --nm to the N:M pattern (along --nm_schedule)."""
  cfg = ctx.cfg
  begin = ctx.steps(cfg.gmp_begin_epoch)
  ramp = dict(
      begin_step=begin,
      end_step=max(ctx.steps(gmp_end_epoch(cfg)), begin),
      frequency=cfg.gmp_frequency,
      mask=ctx.mask,
  )
  if cfg.nm:
    n, m = regularizers.parse_nm(cfg.nm)
    return ctx.rda_optax.gradual_nm_pruning(
        n, m, schedule=cfg.nm_schedule, **ramp
    )
  return ctx.rda_optax.gradual_magnitude_pruning(
      cfg.gmp_sparsity, scope=cfg.prune_scope, **ramp
  )


def build_gmp(ctx: BuildContext):
  return ctx.optax.chain(ctx.sgd(), _gradual_pruning(ctx))


def build_gmp_adamw(ctx: BuildContext):
  return ctx.optax.chain(ctx.adamw(), _gradual_pruning(ctx))


def check_gmp(cfg, explicit) -> None:
  if not 0 <= cfg.gmp_sparsity < 1:
    raise ValueError(
        f'--gmp_sparsity must be in [0, 1), got {cfg.gmp_sparsity}.'
    )
  end = gmp_end_epoch(cfg)
  if not cfg.gmp_begin_epoch <= end <= cfg.epochs:
    raise ValueError(
        f'{cfg.method} needs --gmp_begin_epoch ({cfg.gmp_begin_epoch:g}) <= '
        f'--gmp_end_epoch ({end:g}) <= --epochs ({cfg.epochs:g}).'
    )
  if cfg.gmp_frequency <= 0:
    raise ValueError('--gmp_frequency must be positive.')
  _check_pruning_nm(cfg, explicit)

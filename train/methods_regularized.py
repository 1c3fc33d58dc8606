"""The regularized methods' builders and checks: prox_sgd, rda, rmda,
ramda, prox_adamw and splitting.

Entries of the one method table, :data:`train.methods.METHODS`; each
builder makes its optimizer from a :class:`~train.method_types.BuildContext`
with the method's regularizer (:mod:`train.regularizers`).
"""

from __future__ import annotations

from . import regularizers
from .method_types import ADAM_B1
from .method_types import ADAM_B2
from .method_types import BuildContext


def build_prox_sgd(ctx: BuildContext):
  return ctx.rda_optax.prox_sgd(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum or None,
      nesterov=ctx.cfg.nesterov,
      mask=ctx.mask,
  )


def build_rda(ctx: BuildContext):
  return ctx.rda_optax.rda(
      ctx.hypers['gamma'], ctx.regularizer(), mask=ctx.mask
  )


def build_rmda(ctx: BuildContext):
  return ctx.rda_optax.rmda(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum,
      mask=ctx.mask,
      restart_steps=tuple(ctx.steps(e) for e in ctx.cfg.restart_epochs),
  )


def build_prox_adamw(ctx: BuildContext):
  return ctx.rda_optax.prox_adamw(
      ctx.hypers['lr'],
      ctx.regularizer(),
      b1=ADAM_B1,
      b2=ADAM_B2,
      weight_decay=ctx.cfg.adamw_weight_decay,
      mask=ctx.mask,
      weight_decay_mask=ctx.decay_mask(),
      solver=ctx.cfg.group_solver,
  )


def build_ramda(ctx: BuildContext):
  return ctx.rda_optax.ramda(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum,
      mask=ctx.mask,
      restart_steps=tuple(ctx.steps(e) for e in ctx.cfg.restart_epochs),
      solver=ctx.cfg.group_solver,
  )


def check_rate(cfg, explicit) -> None:
  """A proximal method's step takes a positive rate from the first update:
  the warm-up schedules start at 0."""
  del explicit
  if cfg.lr_schedule in ('warmup', 'warmup_cosine'):
    raise ValueError(
        f'--lr_schedule {cfg.lr_schedule} starts the rate at 0, which '
        f"{cfg.method}'s proximal step does not take (its threshold and step "
        'weights need a positive rate): use cosine, linear, piecewise or '
        'constant.'
    )


def build_splitting(ctx: BuildContext):
  cfg, optax = ctx.cfg, ctx.optax
  inner = (
      optax.adam(ctx.hypers['lr'])
      if cfg.split_optimizer == 'adam'
      else ctx.sgd()
  )
  penalty = regularizers.get(cfg.regularizer).split(ctx)
  beta = cfg.beta
  if cfg.beta_every_epochs > 0:
    beta = optax.exponential_decay(
        cfg.beta,
        transition_steps=max(ctx.steps(cfg.beta_every_epochs), 1),
        decay_rate=cfg.beta_growth,
        staircase=True,
    )
  return ctx.rda_optax.variable_splitting(
      inner,
      penalty,
      beta,
      group_strength=cfg.lam2,
      groups=cfg.groups,
      mask=ctx.mask,
  )


def check_splitting(cfg, explicit) -> None:
  del explicit
  kinds = regularizers.splittable()
  if cfg.regularizer not in kinds:
    raise ValueError(
        f'--method splitting keeps V = prox(W) of an '
        f'{", ".join(kinds[:-1])} or {kinds[-1]} penalty (--regularizer '
        f'{" | ".join(kinds)}), not '
        f'{cfg.regularizer}; its group term on W is --lam2.'
    )
  if cfg.split_optimizer not in ('adam', 'sgd'):
    raise ValueError(
        f'--split_optimizer must be adam or sgd, got '
        f'{cfg.split_optimizer!r}.'
    )
  if not cfg.beta > 0 or not cfg.beta_growth >= 1:
    raise ValueError(
        f'--beta must be > 0 and --beta_growth >= 1 (β grows), '
        f'got {cfg.beta} and {cfg.beta_growth}.'
    )
  if cfg.beta_every_epochs < 0:
    raise ValueError('--beta_every_epochs must be >= 0 (0: constant β).')

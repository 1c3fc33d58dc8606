"""The train job's methods, each declared once.

A :class:`Method` says everything the job needs to know about a method: the
options it reads (the CLI refuses the others when given explicitly), which
of them are schedules (lr, γ, λ), whether it makes exact zeros that adaptive
sparse retraining (ASR) can follow, whether it starts from another run's
weights, its kernel initialization, and how to build its optimizer. The CLI
help, validation, the optimizer, logging and the report read this table, so
adding a method means adding one entry (and its tests).

This module is light (no JAX, no Optax at import): ``python -m train --help``
and config validation read it without loading the numerical stack; the
builders get the modules they build with from their :class:`BuildContext`.
The regularizers are a table of their own, :mod:`train.regularizers`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from . import regularizers

# Options whose use depends on the method: set explicitly for a method that
# does not read them, they are an error (a value meant for another method).
METHOD_OPTIONS = frozenset(
    {
        'lr',
        'lr_schedule',
        'gamma',
        'gamma_schedule',
        'lam',
        'lam2',
        'scale_lam',
        'scale_penalty',
        'regularizer',
        'momentum',
        'nesterov',
        'init_scale',
        'restart_epochs',
        'prune_sparsity',
        'gmp_sparsity',
        'gmp_begin_epoch',
        'gmp_end_epoch',
        'gmp_frequency',
        'split_optimizer',
        'beta',
        'beta_growth',
        'beta_every_epochs',
        'target_sparsity',
        'target_begin_epoch',
        'target_end_epoch',
        'nm',
        'nm_schedule',
        'adamw_weight_decay',
    }
)
SCHEDULED = ('lr', 'gamma', 'lam')  # Options that take a schedule.
# β₁, β₂ of every Adam-based method (adamw, prox_adamw, gmp_adamw,
# han_adamw): β₂ = 0.99 as nanoGPT's character-level Shakespeare (short runs
# of small batches; the same for all of them, so they compare at one setting).
ADAM_B1 = 0.9
ADAM_B2 = 0.99


@dataclasses.dataclass(frozen=True)
class BuildContext:
  """What a method's (and a regularizer's) builder gets.

  Attributes:
    cfg: the run's config.
    hypers: ``'lr'`` / ``'gamma'`` / ``'lam'`` (those the method reads) as a
      float or an Optax schedule of the step; in place of ``'lam'``, what the
      regularizer's schedule drives (``'target_sparsity'``, the ramp, for
      ``--regularizer sparsity``; ``'nm_n'`` or ``'nm_fraction'`` for
      ``--regularizer nm``).
    mask: the leaf selection of ``--select`` (None = the library default).
    steps_per_epoch: to turn epoch-valued options into steps.
    optax: the ``optax`` module, to build with.
    rda_optax: the ``rda_optax`` module, to build with.
    scales: with ``--scale_lam``, ``(penalty, labels)``: the batch-norm
      scales' regularizer and the ``params -> 'weights' | 'scales'`` labels
      (:mod:`train.selection`); None otherwise.
  """

  cfg: Any
  hypers: dict[str, Any]
  mask: Any
  steps_per_epoch: int
  optax: Any
  rda_optax: Any
  scales: tuple[Any, Callable[[Any], Any]] | None = None

  def steps(self, epochs: float) -> int:
    return int(round(epochs * self.steps_per_epoch))

  def sgd(self):
    """SGD with the run's lr, momentum and Nesterov flag."""
    return self.optax.sgd(
        self.hypers['lr'],
        momentum=self.cfg.momentum or None,
        nesterov=self.cfg.nesterov,
    )

  def adamw(self):
    """AdamW with the run's lr and ``--adamw_weight_decay`` on the selected
    leaves (β₁ = :data:`ADAM_B1`, β₂ = :data:`ADAM_B2`)."""
    return self.optax.adamw(
        self.hypers['lr'],
        b1=ADAM_B1,
        b2=ADAM_B2,
        weight_decay=self.cfg.adamw_weight_decay,
        mask=self.decay_mask(),
    )

  def decay_mask(self):
    """The selection (``mask``, or the library's default mask when None):
    the leaves AdamW's decoupled decay applies to."""
    return self.mask if self.mask is not None else self.rda_optax.default_mask

  def regularizer(self):
    """The rda_optax regularizer of ``--regularizer`` (its entry in
    :data:`train.regularizers.REGULARIZERS`), and with ``--scale_lam`` the
    batch-norm penalty beside it (:func:`rda_optax.partitioned`; ``mask``
    then selects those leaves too)."""
    entry = regularizers.get(self.cfg.regularizer)
    reg = entry.build(self) if entry.build is not None else None
    if self.scales is None:
      return reg
    penalty, labels = self.scales
    return self.rda_optax.partitioned(
        {'weights': reg, 'scales': penalty}, labels
    )


@dataclasses.dataclass(frozen=True)
class Method:
  """One method of ``python -m train --method``.

  Attributes:
    name: the ``--method`` value.
    summary: one line for the help and the docs.
    reads: the options of :data:`METHOD_OPTIONS` it uses.
    build: ``BuildContext -> optax.GradientTransformation``: the method's own
      optimizer (``--weight_decay`` and ASR are added around it).
    sparse: its steps make exact zeros, so ``--asr_epochs`` may follow.
    from_run: starts from ``--init_from``'s weights, pruned by magnitude and
      frozen from the first step (Han et al.).
    init_scale_default: ``None``: the model's default kernel init;
      otherwise ``--init_scale`` selects ``rda_optax.rda_uniform(s)`` and 0
      means this default (0 = the model's init).
    divergence_hint: what to change when a run diverges.
    check: ``(cfg, explicit) -> None``, raising ``ValueError`` for settings
      this method cannot use (beyond the options it reads); ``explicit`` are
      the options set explicitly.
  """

  name: str
  summary: str
  reads: frozenset[str]
  build: Callable[[BuildContext], Any]
  sparse: bool = False
  from_run: bool = False
  init_scale_default: float | None = None
  divergence_hint: str = 'lower --lr'
  check: Callable[[Any, frozenset[str]], None] | None = None

  @property
  def schedules(self) -> tuple[str, ...]:
    """The scheduled options it reads, among lr, gamma, lam."""
    return tuple(s for s in SCHEDULED if s in self.reads)

  @property
  def ignores(self) -> frozenset[str]:
    """Method options it does not read (refused when set explicitly)."""
    return METHOD_OPTIONS - self.reads


# ---------------------------------------------------------------------------
# Builders and checks.
# ---------------------------------------------------------------------------


def _sgd(ctx: BuildContext):
  return ctx.sgd()


def _prox_sgd(ctx: BuildContext):
  return ctx.rda_optax.prox_sgd(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum or None,
      nesterov=ctx.cfg.nesterov,
      mask=ctx.mask,
  )


def _rda(ctx: BuildContext):
  return ctx.rda_optax.rda(
      ctx.hypers['gamma'], ctx.regularizer(), mask=ctx.mask
  )


def _rmda(ctx: BuildContext):
  return ctx.rda_optax.rmda(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum,
      mask=ctx.mask,
      restart_steps=tuple(ctx.steps(e) for e in ctx.cfg.restart_epochs),
  )


def _check_han(cfg, explicit) -> None:
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


def _gmp(ctx: BuildContext):
  return ctx.optax.chain(ctx.sgd(), _gradual_pruning(ctx))


def _gmp_adamw(ctx: BuildContext):
  return ctx.optax.chain(ctx.adamw(), _gradual_pruning(ctx))


def _check_gmp(cfg, explicit) -> None:
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


def _adamw(ctx: BuildContext):
  return ctx.adamw()


def _prox_adamw(ctx: BuildContext):
  return ctx.rda_optax.prox_adamw(
      ctx.hypers['lr'],
      ctx.regularizer(),
      b1=ADAM_B1,
      b2=ADAM_B2,
      weight_decay=ctx.cfg.adamw_weight_decay,
      mask=ctx.mask,
      weight_decay_mask=ctx.decay_mask(),
  )


def _ramda(ctx: BuildContext):
  return ctx.rda_optax.ramda(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum,
      mask=ctx.mask,
      restart_steps=tuple(ctx.steps(e) for e in ctx.cfg.restart_epochs),
  )


def _check_rate(cfg, explicit) -> None:
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


def _splitting(ctx: BuildContext):
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


def _check_splitting(cfg, explicit) -> None:
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


_SGD_OPTIONS = frozenset({'lr', 'lr_schedule', 'momentum', 'nesterov'})
_SCALE_OPTIONS = frozenset({'scale_lam', 'scale_penalty'})
_REG_OPTIONS = (
    regularizers.STRENGTH_OPTIONS
    | regularizers.TARGET_OPTIONS
    | regularizers.NM_OPTIONS
    | {'regularizer'}
)
_ADAMW_OPTIONS = frozenset({'lr', 'lr_schedule', 'adamw_weight_decay'})
_GMP_OPTIONS = frozenset(
    {'gmp_sparsity', 'gmp_begin_epoch', 'gmp_end_epoch', 'gmp_frequency'}
    | regularizers.NM_OPTIONS
)

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            'sgd', 'dense SGD with momentum (the reference)', _SGD_OPTIONS, _sgd
        ),
        Method(
            'prox_sgd',
            'proximal SGD (soft threshold after each step)',
            _SGD_OPTIONS | _REG_OPTIONS | _SCALE_OPTIONS,
            _prox_sgd,
            sparse=True,
            check=_check_rate,
        ),
        Method(
            'rda',
            'regularized dual averaging centred at the initial weights '
            '(He et al.)',
            _REG_OPTIONS
            | _SCALE_OPTIONS
            | {'gamma', 'gamma_schedule', 'init_scale'},
            _rda,
            sparse=True,
            init_scale_default=2.0,
            divergence_hint='raise --gamma (RDA steps with 1/(gamma*sqrt(n)))',
        ),
        Method(
            'rmda',
            'RDA with a learning rate and momentum (modernized dual '
            'averaging)',
            _REG_OPTIONS
            | {
                'lr',
                'lr_schedule',
                'momentum',
                'init_scale',
                'restart_epochs',
            }
            | _SCALE_OPTIONS,
            _rmda,
            sparse=True,
            init_scale_default=0.0,
            check=_check_rate,
        ),
        Method(
            'han',
            'magnitude prune --init_from, then fine-tune with the zeros '
            'frozen (Han et al.)',
            _SGD_OPTIONS | {'prune_sparsity', 'nm'},
            _sgd,
            from_run=True,
            check=_check_han,
        ),
        Method(
            'splitting',
            'variable splitting: train W, keep its sparse copy '
            'V = prox(W) of an elementwise penalty, with a group term '
            '(--lam2) on W (Bui et al., paper 001)',
            _SGD_OPTIONS
            | (_REG_OPTIONS - regularizers.NM_OPTIONS)
            | {'split_optimizer', 'beta', 'beta_growth', 'beta_every_epochs'},
            _splitting,
            sparse=True,
            check=_check_splitting,
        ),
        Method(
            'gmp',
            'gradual magnitude pruning (Zhu & Gupta; with --nm, to N:M)',
            _SGD_OPTIONS | _GMP_OPTIONS,
            _gmp,
            check=_check_gmp,
        ),
        # The Adam-type methods of the transformers (β₂ = ADAM_B2).
        Method(
            'adamw',
            'dense AdamW (the reference of the Adam-type methods)',
            _ADAMW_OPTIONS,
            _adamw,
        ),
        Method(
            'ramda',
            'regularized adaptive momentum dual averaging: RMDA with '
            "MADGRAD's preconditioner (Huang & Lee)",
            _REG_OPTIONS | {'lr', 'lr_schedule', 'momentum', 'restart_epochs'},
            _ramda,
            sparse=True,
            check=_check_rate,
        ),
        Method(
            'prox_adamw',
            "proximal AdamW: the prox step in Adam's metric (ProxGen)",
            _REG_OPTIONS | _ADAMW_OPTIONS,
            _prox_adamw,
            sparse=True,
            check=_check_rate,
        ),
        Method(
            'gmp_adamw',
            'gradual magnitude pruning with AdamW (with --nm, to N:M)',
            _ADAMW_OPTIONS | _GMP_OPTIONS,
            _gmp_adamw,
            check=_check_gmp,
        ),
        Method(
            'han_adamw',
            'magnitude prune --init_from (with --nm, to N:M), then fine-tune '
            'with AdamW, the zeros frozen',
            _ADAMW_OPTIONS | {'prune_sparsity', 'nm'},
            _adamw,
            from_run=True,
            check=_check_han,
        ),
    )
}


def get(name: str) -> Method:
  """The method called ``name``; ValueError listing the methods if unknown."""
  try:
    return METHODS[name]
  except KeyError:
    raise ValueError(
        f'Unknown method {name!r}. Choose one of: ' f'{", ".join(METHODS)}.'
    ) from None


def uses_nm(cfg) -> tuple[int, int] | None:
  """``(N, M)`` when the run makes its kernels N:M (``--regularizer nm`` for
  a method that reads a regularizer, ``--nm`` for the pruning methods),
  else None."""
  method = METHODS.get(cfg.method)
  if method is None or not cfg.nm:
    return None
  if 'regularizer' in method.reads:
    return regularizers.parse_nm(cfg.nm) if cfg.regularizer == 'nm' else None
  return regularizers.parse_nm(cfg.nm) if 'nm' in method.reads else None


def reading(option: str) -> tuple[str, ...]:
  """The methods that read ``option``, in table order."""
  return tuple(m.name for m in METHODS.values() if option in m.reads)


def options_summary() -> str:
  """'rda: gamma, lam, ...; rmda: ...': what each method reads."""
  return '; '.join(
      f'{m.name}: {", ".join(sorted(o for o in m.reads if not o.endswith("_schedule")))}'
      for m in METHODS.values()
  )

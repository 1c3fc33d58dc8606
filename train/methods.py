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
builders import what they build.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

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
  """What a method's builder gets.

  Attributes:
    cfg: the run's config.
    hypers: ``'lr'`` / ``'gamma'`` / ``'lam'`` (those the method reads) as a
      float or an Optax schedule of the step; ``'target_sparsity'`` (the
      ramp) in place of ``'lam'`` for ``--regularizer sparsity``.
    mask: the leaf selection of ``--select`` (None = the library default).
    steps_per_epoch: to turn epoch-valued options into steps.
  """

  cfg: Any
  hypers: dict[str, Any]
  mask: Any
  steps_per_epoch: int

  def steps(self, epochs: float) -> int:
    return int(round(epochs * self.steps_per_epoch))

  def sgd(self):
    """SGD with the run's lr, momentum and Nesterov flag."""
    import optax  # pylint: disable=import-outside-toplevel

    return optax.sgd(
        self.hypers['lr'],
        momentum=self.cfg.momentum or None,
        nesterov=self.cfg.nesterov,
    )

  def adamw(self):
    """AdamW with the run's lr and --adamw_weight_decay on the selected
    leaves (β₁ = 0.9, β₂ = 0.99: :data:`ADAM_B2`)."""
    import optax  # pylint: disable=import-outside-toplevel

    return optax.adamw(
        self.hypers['lr'],
        b1=ADAM_B1,
        b2=ADAM_B2,
        weight_decay=self.cfg.adamw_weight_decay,
        mask=self.decay_mask(),
    )

  def decay_mask(self):
    """The selection (``mask``, or the library's default mask when None):
    the leaves AdamW's decoupled decay applies to."""
    import rda_optax  # pylint: disable=import-outside-toplevel

    return self.mask if self.mask is not None else rda_optax.default_mask

  def regularizer(self):
    """The rda_optax regularizer of ``--regularizer`` with strength λ (for
    ``sparsity``: the constraint on the ramp to ``--target_sparsity``), and
    with ``--scale_lam`` the batch-norm penalty of ``--scale_penalty`` beside
    it (:func:`rda_optax.partitioned`; ``mask`` then selects those leaves
    too)."""
    import rda_optax  # pylint: disable=import-outside-toplevel

    reg = self._weights_regularizer()
    cfg = self.cfg
    if not cfg.scale_lam:
      return reg
    if cfg.scale_penalty == 'channel':
      scales = rda_optax.coupled_group_lasso(
          cfg.scale_lam, coupled_batch_norms(cfg.model)
      )
    else:
      scales = rda_optax.l1(cfg.scale_lam)
    return rda_optax.partitioned(
        {'weights': reg, 'scales': scales}, scale_labels(cfg)
    )

  def _weights_regularizer(self):
    import rda_optax  # pylint: disable=import-outside-toplevel

    cfg = self.cfg
    if cfg.regularizer == 'none':
      return None
    if cfg.regularizer == 'sparsity':
      return rda_optax.sparsity_constraint(
          self.hypers['target_sparsity'], scope=cfg.prune_scope
      )
    if cfg.regularizer == 'nm':
      # N (or the share of N:M groups) at this update, from nm_hypers.
      n, m = parse_nm(cfg.nm)
      return rda_optax.nm_constraint(
          self.hypers.get('nm_n', n),
          m,
          fraction=self.hypers.get('nm_fraction', 1.0),
      )
    lam = self.hypers['lam']
    if cfg.regularizer == 'l1':
      return rda_optax.l1(lam)
    if cfg.regularizer == 'l0':
      return rda_optax.l0(lam)
    if cfg.regularizer == 'group_lasso':
      return rda_optax.group_lasso(lam, groups=cfg.groups)
    if cfg.regularizer == 'sparse_group_lasso':
      return rda_optax.sparse_group_lasso(lam, cfg.lam2, groups=cfg.groups)
    if cfg.regularizer == 'tl1':
      kw = dict(a=cfg.tl1_a)
      if cfg.lam2:
        kw.update(
            group_strength=cfg.lam2,
            groups=cfg.groups,
            group_prox=cfg.tl1_group_prox,
        )
      return rda_optax.transformed_l1(lam, **kw)
    raise ValueError(f'Unknown regularizer {cfg.regularizer!r}.')


SCALE_PENALTIES = ('l1', 'channel')


def is_norm_scale(path) -> bool:
  """A leaf named ``scale``: the γ of a Flax normalization layer."""
  last = path[-1] if path else None
  return getattr(last, 'key', getattr(last, 'name', None)) == 'scale'


@functools.lru_cache(maxsize=None)
def coupled_batch_norms(model: str) -> tuple[tuple[str, ...], ...]:
  """``models.coupled_scales(..., shifts=True)`` of the registry model
  ``model``: per channel space, the scales and shifts of the batch norms
  after the layers writing it."""
  from ._models import models  # pylint: disable=import-outside-toplevel

  return models.coupled_scales(models.create(model), shifts=True)


def scale_leaf(cfg) -> Callable[[Any], bool]:
  """``path -> bool``: the leaves ``--scale_lam`` penalises (every
  normalization scale for ``l1``; the writers' batch-norm scales and shifts
  for ``channel``)."""
  if cfg.scale_penalty != 'channel':
    return is_norm_scale
  import jax  # pylint: disable=import-outside-toplevel

  paths = {p for s in coupled_batch_norms(cfg.model) for p in s}
  return lambda path: (
      jax.tree_util.keystr(path, simple=True, separator='/') in paths
  )


def scale_labels(cfg) -> Callable[[Any], Any]:
  """``params -> labels``: ``'scales'`` for the leaves of
  :func:`scale_leaf`, ``'weights'`` elsewhere; a model without any gets an
  error naming the fix."""
  import jax  # pylint: disable=import-outside-toplevel

  is_scale = scale_leaf(cfg)

  def labels(params):
    out = jax.tree_util.tree_map_with_path(
        lambda path, _: 'scales' if is_scale(path) else 'weights', params
    )
    if 'scales' not in jax.tree.leaves(out):
      raise ValueError(
          '--scale_lam penalises batch-norm scales, but this model has none '
          '(no batch norm after a conv or dense layer): drop --scale_lam, or '
          'use a model with batch norm (resnet*, vgg*).'
      )
    return out

  return labels


def with_scales(mask, cfg):
  """The leaf selection ``mask`` (None: the library default) plus the
  leaves of :func:`scale_leaf`, for ``--scale_lam``."""
  import jax  # pylint: disable=import-outside-toplevel
  import rda_optax  # pylint: disable=import-outside-toplevel

  is_scale = scale_leaf(cfg)

  def select(params):
    base = rda_optax.selection.resolve_mask(mask, params)
    return jax.tree_util.tree_map_with_path(
        lambda path, s: bool(s) or is_scale(path), base
    )

  return select


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
    check: ``cfg -> None``, raising ``ValueError`` for settings this method
      cannot use (beyond the options it reads).
  """

  name: str
  summary: str
  reads: frozenset[str]
  build: Callable[[BuildContext], Any]
  sparse: bool = False
  from_run: bool = False
  init_scale_default: float | None = None
  divergence_hint: str = 'lower --lr'
  check: Callable[[Any], None] | None = None

  @property
  def schedules(self) -> tuple[str, ...]:
    """The scheduled options it reads, among lr, gamma, lam."""
    return tuple(s for s in SCHEDULED if s in self.reads)

  @property
  def ignores(self) -> frozenset[str]:
    """Method options it does not read (refused when set explicitly)."""
    return METHOD_OPTIONS - self.reads


# ---------------------------------------------------------------------------
# Builders.
# ---------------------------------------------------------------------------


def _sgd(ctx: BuildContext):
  return ctx.sgd()


def _prox_sgd(ctx: BuildContext):
  import rda_optax  # pylint: disable=import-outside-toplevel

  return rda_optax.prox_sgd(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum or None,
      nesterov=ctx.cfg.nesterov,
      mask=ctx.mask,
  )


def _rda(ctx: BuildContext):
  import rda_optax  # pylint: disable=import-outside-toplevel

  return rda_optax.rda(ctx.hypers['gamma'], ctx.regularizer(), mask=ctx.mask)


def _rmda(ctx: BuildContext):
  import rda_optax  # pylint: disable=import-outside-toplevel

  return rda_optax.rmda(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum,
      mask=ctx.mask,
      restart_steps=tuple(ctx.steps(e) for e in ctx.cfg.restart_epochs),
  )


def _ramp_end(end_epoch: float, epochs: float) -> float:
  """The end of a sparsity ramp: ``end_epoch``, or 3/4 of ``epochs`` if < 0."""
  return end_epoch if end_epoch >= 0 else 0.75 * epochs


def target_end_epoch(cfg) -> float:
  """``--target_end_epoch``, or 3/4 of ``--epochs`` if < 0."""
  return _ramp_end(cfg.target_end_epoch, cfg.epochs)


def gmp_end_epoch(cfg) -> float:
  """gmp's end epoch: ``--gmp_end_epoch``, or 3/4 of ``--epochs`` if < 0."""
  return _ramp_end(cfg.gmp_end_epoch, cfg.epochs)


def _gradual_pruning(ctx: BuildContext):
  """gmp's pruning, chained last: to --gmp_sparsity by magnitude, or with
  --nm to the N:M pattern (along --nm_schedule)."""
  import rda_optax  # pylint: disable=import-outside-toplevel

  cfg = ctx.cfg
  begin = ctx.steps(cfg.gmp_begin_epoch)
  ramp = dict(
      begin_step=begin,
      end_step=max(ctx.steps(gmp_end_epoch(cfg)), begin),
      frequency=cfg.gmp_frequency,
      mask=ctx.mask,
  )
  if cfg.nm:
    n, m = parse_nm(cfg.nm)
    return rda_optax.gradual_nm_pruning(n, m, schedule=cfg.nm_schedule, **ramp)
  return rda_optax.gradual_magnitude_pruning(
      cfg.gmp_sparsity, scope=cfg.prune_scope, **ramp
  )


def _gmp(ctx: BuildContext):
  import optax  # pylint: disable=import-outside-toplevel

  return optax.chain(ctx.sgd(), _gradual_pruning(ctx))


def _gmp_adamw(ctx: BuildContext):
  import optax  # pylint: disable=import-outside-toplevel

  return optax.chain(ctx.adamw(), _gradual_pruning(ctx))


def _adamw(ctx: BuildContext):
  return ctx.adamw()


def _prox_adamw(ctx: BuildContext):
  import rda_optax  # pylint: disable=import-outside-toplevel

  return rda_optax.prox_adamw(
      ctx.hypers['lr'],
      ctx.regularizer(),
      b1=ADAM_B1,
      b2=ADAM_B2,
      weight_decay=ctx.cfg.adamw_weight_decay,
      mask=ctx.mask,
      weight_decay_mask=ctx.decay_mask(),
  )


def _ramda(ctx: BuildContext):
  import rda_optax  # pylint: disable=import-outside-toplevel

  return rda_optax.ramda(
      ctx.hypers['lr'],
      ctx.regularizer(),
      momentum=ctx.cfg.momentum,
      mask=ctx.mask,
      restart_steps=tuple(ctx.steps(e) for e in ctx.cfg.restart_epochs),
  )


# ---------------------------------------------------------------------------
# N:M sparsity (--regularizer nm, and --nm for the pruning methods).
# ---------------------------------------------------------------------------

NM_SCHEDULES = ('n', 'fraction')


def parse_nm(text: str) -> tuple[int, int]:
  """``"2:4"`` -> ``(2, 4)``: at most N nonzeros in every M weights.

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


def nm_hypers(cfg, steps_per_epoch: int) -> dict[str, Any]:
  """The schedule of ``--regularizer nm``: ``{'nm_n': N(t)}`` (--nm_schedule
  n: :func:`rda_optax.nm_n_schedule`, M fixed, N from M down) or
  ``{'nm_fraction': f(t)}`` (fraction: :func:`rda_optax.nm_fraction_schedule`),
  from --target_begin_epoch to --target_end_epoch (-1: 3/4 of --epochs)."""
  import rda_optax  # pylint: disable=import-outside-toplevel

  n, m = parse_nm(cfg.nm)
  begin = int(round(cfg.target_begin_epoch * steps_per_epoch))
  end = max(int(round(target_end_epoch(cfg) * steps_per_epoch)), begin)
  if cfg.nm_schedule == 'fraction':
    return {
        'nm_fraction': functools.partial(
            rda_optax.nm_fraction_schedule, begin_step=begin, end_step=end
        )
    }
  return {
      'nm_n': functools.partial(
          rda_optax.nm_n_schedule, n=n, m=m, begin_step=begin, end_step=end
      )
  }


def uses_nm(cfg) -> tuple[int, int] | None:
  """``(N, M)`` when the run makes its kernels N:M (--regularizer nm for a
  method that reads it, --nm for the pruning methods), else None."""
  method = METHODS.get(cfg.method)
  if method is None or not cfg.nm:
    return None
  if 'regularizer' in method.reads:
    return parse_nm(cfg.nm) if cfg.regularizer == 'nm' else None
  return parse_nm(cfg.nm) if 'nm' in method.reads else None


def check_nm(cfg, explicit=frozenset()) -> None:
  """The N:M options are consistent (ValueError naming the fix)."""
  method = METHODS[cfg.method]
  explicit = set(explicit)
  if cfg.nm_schedule not in NM_SCHEDULES:
    raise ValueError(
        f'--nm_schedule must be one of {", ".join(NM_SCHEDULES)}, got '
        f'{cfg.nm_schedule!r}.'
    )
  if cfg.nm:
    parse_nm(cfg.nm)
  reads_reg = 'regularizer' in method.reads
  if reads_reg and cfg.regularizer == 'nm':
    if not cfg.nm:
      raise ValueError('--regularizer nm needs the pattern: --nm N:M (2:4).')
    strength = sorted(explicit & {'lam', 'lam2', 'target_sparsity'})
    if strength:
      raise ValueError(
          f'--regularizer nm is a constraint (at most N of every M weights '
          f'nonzero) with no strength: drop '
          f'{", ".join("--" + o for o in strength)}.'
      )
    end = target_end_epoch(cfg)
    if not 0 <= cfg.target_begin_epoch <= end <= cfg.epochs:
      raise ValueError(
          f'--regularizer nm needs 0 <= --target_begin_epoch '
          f'({cfg.target_begin_epoch:g}) <= --target_end_epoch ({end:g}) <= '
          f'--epochs ({cfg.epochs:g}) (its ramp to N:M).'
      )
    return
  if reads_reg and explicit & {'nm', 'nm_schedule'} and cfg.nm:
    raise ValueError(
        f'--nm {cfg.nm} is the pattern of the N:M constraint: add '
        '--regularizer nm (or drop --nm).'
    )
  if not reads_reg and cfg.nm:
    replaced = {'gmp_sparsity', 'prune_sparsity'} & explicit
    if replaced:
      raise ValueError(
          f'--nm {cfg.nm} prunes to N:M, which replaces '
          f'{", ".join("--" + o for o in sorted(replaced))}: drop one.'
      )
  if 'nm_schedule' in explicit and not cfg.nm and 'nm' in method.reads:
    raise ValueError('--nm_schedule is the ramp of --nm N:M: set --nm too.')


def _check_rate(cfg) -> None:
  """A proximal method's step takes a positive rate from the first update:
  the warm-up schedules start at 0."""
  if cfg.lr_schedule in ('warmup', 'warmup_cosine'):
    raise ValueError(
        f'--lr_schedule {cfg.lr_schedule} starts the rate at 0, which '
        f"{cfg.method}'s proximal step does not take (its threshold and step "
        'weights need a positive rate): use cosine, linear, piecewise or '
        'constant.'
    )


def _check_gmp(cfg) -> None:
  """gmp_adamw's settings (as validation checks gmp's)."""
  if not 0 <= cfg.gmp_sparsity < 1:
    raise ValueError(
        f'--gmp_sparsity must be in [0, 1), got {cfg.gmp_sparsity}.'
    )
  end = gmp_end_epoch(cfg)
  if not 0 <= cfg.gmp_begin_epoch <= end <= cfg.epochs:
    raise ValueError(
        f'{cfg.method} needs 0 <= --gmp_begin_epoch '
        f'({cfg.gmp_begin_epoch:g}) <= --gmp_end_epoch ({end:g}) <= --epochs '
        f'({cfg.epochs:g}).'
    )
  if cfg.gmp_frequency <= 0:
    raise ValueError('--gmp_frequency must be positive.')


def _splitting(ctx: BuildContext):
  import optax  # pylint: disable=import-outside-toplevel
  import rda_optax  # pylint: disable=import-outside-toplevel

  cfg, lam = ctx.cfg, ctx.hypers['lam']
  inner = (
      optax.adam(ctx.hypers['lr'])
      if cfg.split_optimizer == 'adam'
      else ctx.sgd()
  )
  penalty = {
      'l0': rda_optax.l0,
      'l1': rda_optax.l1,
      'tl1': lambda v: rda_optax.transformed_l1(v, a=cfg.tl1_a),
  }[cfg.regularizer](lam)
  beta = cfg.beta
  if cfg.beta_every_epochs > 0:
    beta = optax.exponential_decay(
        cfg.beta,
        transition_steps=max(ctx.steps(cfg.beta_every_epochs), 1),
        decay_rate=cfg.beta_growth,
        staircase=True,
    )
  return rda_optax.variable_splitting(
      inner,
      penalty,
      beta,
      group_strength=cfg.lam2,
      groups=cfg.groups,
      mask=ctx.mask,
  )


def _check_splitting(cfg) -> None:
  if cfg.regularizer not in ('l0', 'l1', 'tl1'):
    raise ValueError(
        f'--method splitting keeps V = prox(W) of an l0, l1 or tl1 penalty '
        f'(--regularizer l0 | l1 | tl1), not {cfg.regularizer}; its group '
        'term on W is --lam2.'
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
_REG_OPTIONS = frozenset(
    {
        'lam',
        'lam2',
        'regularizer',
        'target_sparsity',
        'target_begin_epoch',
        'target_end_epoch',
        'nm',
        'nm_schedule',
    }
)
_ADAMW_OPTIONS = frozenset({'lr', 'lr_schedule', 'adamw_weight_decay'})
_GMP_OPTIONS = frozenset(
    {
        'gmp_sparsity',
        'gmp_begin_epoch',
        'gmp_end_epoch',
        'gmp_frequency',
        'nm',
        'nm_schedule',
    }
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
        ),
        Method(
            'splitting',
            'variable splitting: train W, keep its sparse copy '
            'V = prox(W) of an l0 / l1 / tl1 penalty, with a group term '
            '(--lam2) on W (Bui et al., paper 001)',
            _SGD_OPTIONS
            | _REG_OPTIONS
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
        ),
        # Transformers: Adam-type optimizers (β₂ = ADAM_B2).
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


def options_summary() -> str:
  """'rda: gamma, lam, ...; rmda: ...': what each method reads."""
  return '; '.join(
      f'{m.name}: {", ".join(sorted(o for o in m.reads if not o.endswith("_schedule")))}'
      for m in METHODS.values()
  )

"""From a :class:`train.config.Config` to an Optax optimizer.

One optimizer covers the whole run, so its state is continuous and a run
resumes from any step. Each method's own optimizer is declared in the table
:data:`train.methods.METHODS`, each regularizer's in
:data:`train.regularizers.REGULARIZERS`; this module adds what is common to
all of them.

``--asr_epochs E`` wraps a sparse method (``Method.sparse``) in
``rda_optax.asr(inner, start_step=epochs * steps_per_epoch)``: the sparse
phase, then adaptive sparse retraining with the same method, or with SGD
(``--asr_optimizer sgd``), starting from the sparse model. ``--weight_decay``
adds ``optax.add_decayed_weights`` (selected leaves) before the method;
``--asr_weight_decay`` before ASR's SGD.

Every hyper-parameter (lr, γ, λ) may be an Optax schedule whose boundaries
are given in epochs (:func:`make_schedule`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import optax

import rda_optax
from rda_optax import pruning
from .data import input_pipeline
from . import methods
from . import regularizers
from . import selection
from .config import Config, ConfigError

Schedule = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Phases:
  """Step counts of a run."""

  steps_per_epoch: int
  main_steps: int  # The method's phase (the sparse phase of a sparse one).
  asr_steps: int  # ASR after it.

  @property
  def total_steps(self) -> int:
    return self.main_steps + self.asr_steps

  def epoch(self, step: int) -> float:
    return step / self.steps_per_epoch

  def phase(self, step: int) -> str:
    """'asr' for the steps of the ASR phase, else 'main'."""
    return 'asr' if self.asr_steps and step >= self.main_steps else 'main'


def make_phases(cfg: Config, num_train_examples: int) -> Phases:
  """Steps per epoch and per phase for a dataset of ``num_train_examples``."""
  try:
    spe = cfg.steps_per_epoch or input_pipeline.steps_per_epoch(
        num_train_examples, cfg.batch_size
    )
  except ValueError:  # Fewer examples than one batch.
    spe = 0
  if spe <= 0:
    raise ConfigError(
        f'The train split has {num_train_examples} examples, fewer than one '
        f'batch of {cfg.batch_size}: lower --batch_size.'
    )
  phases = Phases(
      spe, int(round(cfg.epochs * spe)), int(round(cfg.asr_epochs * spe))
  )
  if phases.asr_steps and not phases.main_steps:
    raise ConfigError(
        f'--epochs {cfg.epochs:g} is {cfg.epochs * spe:.2f} steps of '
        f'{spe} per epoch, which rounds to no sparse phase before ASR: '
        'raise --epochs, or set --asr_epochs 0.'
    )
  if not phases.total_steps:
    raise ConfigError(
        f'--epochs {cfg.epochs:g} and --asr_epochs '
        f'{cfg.asr_epochs:g} round to no step at {spe} steps '
        'per epoch.'
    )
  return phases


def make_schedule(
    base: float,
    kind: str,
    boundaries: tuple[float, ...],
    scales: tuple[float, ...],
    phases: Phases,
    warmup_epochs: float = 0.0,
) -> float | Schedule:
  """An Optax schedule (or a constant) from epoch-valued options.

  Args:
    base: the initial value.
    kind: ``constant``; ``piecewise`` (multiply by ``scales[i]`` at epoch
      ``boundaries[i]``, :func:`optax.piecewise_constant_schedule`);
      ``cosine`` (:func:`optax.cosine_decay_schedule` to 0 over the whole
      run); ``warmup_cosine`` (linear warm-up from 0 for ``warmup_epochs``,
      then cosine, :func:`optax.warmup_cosine_decay_schedule`); ``linear``
      (from ``base`` to ``base * scales[0]`` over the run).
    boundaries: epochs (piecewise).
    scales: factors (piecewise; one end factor for linear).
    phases: step counts of the run (epochs → steps).
    warmup_epochs: warm-up length of ``warmup_cosine``.
  """
  spe, total = phases.steps_per_epoch, max(phases.total_steps, 1)
  if kind == 'constant':
    return float(base)
  if kind == 'piecewise':
    bounds: dict[int, float] = {}
    for b, s in zip(boundaries, scales):
      step = int(round(b * spe))
      bounds[step] = bounds.get(step, 1.0) * float(s)
    return optax.piecewise_constant_schedule(float(base), bounds)
  if kind == 'cosine':
    return optax.cosine_decay_schedule(float(base), decay_steps=total)
  if kind == 'warmup_cosine':
    warm = int(round(warmup_epochs * spe))
    return optax.warmup_cosine_decay_schedule(
        0.0, float(base), warmup_steps=warm, decay_steps=max(total, warm + 1)
    )
  if kind == 'linear':
    return optax.linear_schedule(
        float(base), float(base) * float(scales[0]), transition_steps=total
    )
  if kind == 'warmup':
    warm = int(round(warmup_epochs * spe))
    return optax.linear_schedule(0.0, float(base), transition_steps=warm)
  raise ConfigError(f'Unknown schedule {kind!r}.')


def hyper_schedules(cfg: Config, phases: Phases) -> dict[str, float | Schedule]:
  """The lr, gamma and lam schedules of a run (only those the method uses)."""
  out: dict[str, float | Schedule] = {}
  for name in methods.get(cfg.method).schedules:
    spec = cfg.schedule(name)
    out[name] = make_schedule(
        spec.base,
        spec.kind,
        spec.boundaries,
        spec.scales,
        phases,
        cfg.warmup_epochs,
    )
  reg = regularizers.get(cfg.regularizer)
  if reg.schedule is not None and 'lam' in out:
    # Its strength is not λ (the constraints': the target sparsity's ramp,
    # or N, or the share of N:M groups, along the ramp to N:M).
    del out['lam']
    out[reg.driven(cfg)] = reg.schedule(cfg, phases.steps_per_epoch, rda_optax)
  if phases.asr_steps and cfg.asr_optimizer == 'sgd':
    out['asr_lr'] = (
        optax.cosine_decay_schedule(cfg.asr_lr, phases.asr_steps)
        if cfg.asr_lr_schedule == 'cosine'
        else float(cfg.asr_lr)
    )
  return out


def applied_hypers(opt_state: Any, retraining_by_sgd: bool) -> dict[str, Any]:
  """The lr, γ and λ (or target sparsity) the last update applied.

  Read from the ``optax.inject_hyperparams`` states of
  :func:`create_optimizer`'s optimizer, so they are the values the update
  used, schedules and ASR's restarts included: the method's own (``lr``,
  ``gamma``, ``lam``, ``target_sparsity``, ``nm_n`` / ``nm_fraction``), or
  during ASR by SGD its ``learning_rate``, logged as ``lr``. Values are arrays (a leading device
  axis in a replicated state).
  """
  method, retrain = {}, {}
  for _, hypers in optax.tree_utils.tree_get_all_with_path(
      opt_state, 'hyperparams'
  ):
    if 'learning_rate' in hypers:  # optax.sgd: ASR's retraining.
      retrain = {'lr': hypers['learning_rate']}
    else:
      method = dict(hypers)
  return retrain if retraining_by_sgd else method


def build_context(
    cfg: Config,
    hypers: dict[str, Any],
    mask: Any,
    steps_per_epoch: int,
    scales: Any = None,
) -> methods.BuildContext:
  """The :class:`train.methods.BuildContext` of ``cfg`` (with the modules
  the builders build with, and the batch-norm penalty of ``--scale_lam``).

  ``scales``: :func:`train.selection.scale_penalty` of ``cfg``, made once
  per optimizer and passed to every build (None: made here). The
  regularizer is static in the method's state structure, so the builds of
  one optimizer (``optax.inject_hyperparams`` builds at every update, and
  ASR traces two) must share one penalty and one labels function.
  """
  if scales is None:
    scales = selection.scale_penalty(cfg)
  return methods.BuildContext(
      cfg,
      hypers,
      mask,
      steps_per_epoch,
      optax,
      rda_optax,
      scales,
  )


def create_optimizer(
    cfg: Config, phases: Phases
) -> tuple[optax.GradientTransformation, dict[str, Any]]:
  """The optimizer of a run and the hyper-parameter schedules it uses.

  The method's optimizer is wrapped in ``optax.inject_hyperparams`` (and so
  is ASR's SGD), so the values each update applies are in the state
  (:func:`applied_hypers`).

  Returns:
    ``(tx, hypers)``: ``tx`` an Optax transformation that needs ``params`` in
    ``update``; ``hypers`` maps 'lr' / 'gamma' / 'lam' (or what the
    regularizer's schedule drives: 'target_sparsity', 'nm_n', 'nm_fraction')
    and 'asr_lr' to the float or schedule given to it.
  """
  method = methods.get(cfg.method)
  hypers = hyper_schedules(cfg, phases)
  # The leaves the method regularizes and ASR freezes: --select's, and with
  # --scale_lam the batch-norm scales too (weight decay stays on --select's).
  decay_mask = selection.run_mask(cfg)
  mask = selection.with_scales(decay_mask, cfg) if cfg.scale_lam else decay_mask
  scales = selection.scale_penalty(cfg)

  def build(
      lr=None,
      gamma=None,
      lam=None,
      target_sparsity=None,
      nm_n=None,
      nm_fraction=None,
  ):
    # optax.inject_hyperparams calls this at every update with the values of
    # the schedules at its count (the method's count: it restarts with ASR's
    # --asr_restart), and keeps them in its state, where logging reads them.
    values = dict(
        lr=lr,
        gamma=gamma,
        lam=lam,
        target_sparsity=target_sparsity,
        nm_n=nm_n,
        nm_fraction=nm_fraction,
    )
    return method.build(
        build_context(
            cfg,
            {k: v for k, v in values.items() if v is not None},
            mask,
            phases.steps_per_epoch,
            scales,
        )
    )

  inner = optax.inject_hyperparams(build)(
      **{k: v for k, v in hypers.items() if k != 'asr_lr'}
  )

  def decayed(rate, tx):
    # Decay added to the gradient before ``tx`` (and before gmp's pruning,
    # which must stay last; nothing may rescale RDA's update after it).
    if not rate:
      return tx
    leaves = decay_mask if decay_mask is not None else rda_optax.default_mask
    return optax.chain(optax.add_decayed_weights(rate, leaves), tx)

  inner = decayed(cfg.weight_decay, inner)
  if method.from_run:  # The pruned zeros stay frozen from the first step.
    tx = rda_optax.asr(inner, mask=mask, start_step=0)
  elif cfg.asr_epochs > 0:
    retrain = None
    if cfg.asr_optimizer == 'sgd':
      retrain = optax.inject_hyperparams(optax.sgd)(
          learning_rate=hypers['asr_lr'],
          momentum=cfg.momentum or None,
          nesterov=cfg.nesterov,
      )
      retrain = decayed(cfg.asr_weight_decay, retrain)
    tx = rda_optax.asr(
        inner,
        mask=mask,
        start_step=phases.main_steps,
        restart_inner=cfg.asr_restart,
        retrain=retrain,
    )
  else:
    tx = inner
  return tx, hypers


def kernel_init(cfg: Config):
  """The models' kernel initializer: rda_optax.rda_uniform(s), or None."""
  s = cfg.effective_init_scale
  if not s:
    return None
  return rda_optax.rda_uniform(s)


def prune(cfg: Config, params: Any) -> Any:
  """Han et al.'s one-shot magnitude pruning of ``params`` (methods han,
  han_adamw): to ``--prune_sparsity``, or with ``--nm`` to N:M."""
  if cfg.nm:
    n, m = regularizers.parse_nm(cfg.nm)
    masks = rda_optax.nm_masks(params, n, m, mask=selection.run_mask(cfg))
  else:
    masks = pruning.magnitude_masks(
        params,
        cfg.prune_sparsity,
        scope=cfg.prune_scope,
        mask=selection.run_mask(cfg),
    )
  return pruning.apply_masks(params, masks)

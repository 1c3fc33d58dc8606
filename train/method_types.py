"""What a method of the train job is, and what its builder gets.

:class:`Method`: one entry of the method table (:data:`train.methods.METHODS`):
the options it reads, its schedules, whether it is sparse, its builder.
:class:`BuildContext`: what a method's (and a regularizer's) builder gets:
the config, its hyperparameters, the modules to build with. Light (no JAX,
no Optax at import), as :mod:`train.methods`.
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
        'group_solver',
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

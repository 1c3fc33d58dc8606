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

The table is here; :class:`Method` and :class:`BuildContext` are in
:mod:`train.method_types`, the builders and checks of the regularized
methods in :mod:`train.methods_regularized` and of the pruning methods in
:mod:`train.methods_pruning`.
"""

from __future__ import annotations

from . import regularizers

# The table's entries by family, each in a module of its own; the names of
# method_types are this module's too (train.methods.BuildContext, ...).
# pylint: disable=unused-import
from .method_types import ADAM_B1
from .method_types import ADAM_B2
from .method_types import METHOD_OPTIONS
from .method_types import SCHEDULED
from .method_types import BuildContext
from .method_types import Method
from .methods_pruning import build_gmp
from .methods_pruning import build_gmp_adamw
from .methods_pruning import check_gmp
from .methods_pruning import check_han
from .methods_pruning import gmp_end_epoch
from .methods_regularized import build_prox_adamw
from .methods_regularized import build_prox_sgd
from .methods_regularized import build_ramda
from .methods_regularized import build_rda
from .methods_regularized import build_rmda
from .methods_regularized import build_splitting
from .methods_regularized import check_rate
from .methods_regularized import check_splitting

# pylint: enable=unused-import

# ---------------------------------------------------------------------------
# The dense methods' builders (the others: methods_regularized,
# methods_pruning).
# ---------------------------------------------------------------------------


def _sgd(ctx: BuildContext):
  return ctx.sgd()


def _adamw(ctx: BuildContext):
  return ctx.adamw()


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
            build_prox_sgd,
            sparse=True,
            check=check_rate,
        ),
        Method(
            'rda',
            'regularized dual averaging centred at the initial weights '
            '(He et al.)',
            _REG_OPTIONS
            | _SCALE_OPTIONS
            | {'gamma', 'gamma_schedule', 'init_scale'},
            build_rda,
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
            build_rmda,
            sparse=True,
            init_scale_default=0.0,
            check=check_rate,
        ),
        Method(
            'han',
            'magnitude prune --init_from, then fine-tune with the zeros '
            'frozen (Han et al.)',
            _SGD_OPTIONS | {'prune_sparsity', 'nm'},
            _sgd,
            from_run=True,
            check=check_han,
        ),
        Method(
            'splitting',
            'variable splitting: train W, keep its sparse copy '
            'V = prox(W) of an elementwise penalty, with a group term '
            '(--lam2) on W (Bui et al., paper 001)',
            _SGD_OPTIONS
            | (_REG_OPTIONS - regularizers.NM_OPTIONS)
            | {'split_optimizer', 'beta', 'beta_growth', 'beta_every_epochs'},
            build_splitting,
            sparse=True,
            check=check_splitting,
        ),
        Method(
            'gmp',
            'gradual magnitude pruning (Zhu & Gupta; with --nm, to N:M)',
            _SGD_OPTIONS | _GMP_OPTIONS,
            build_gmp,
            check=check_gmp,
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
            _REG_OPTIONS
            | {'lr', 'lr_schedule', 'momentum', 'restart_epochs'}
            | {'group_solver'},
            build_ramda,
            sparse=True,
            check=check_rate,
        ),
        Method(
            'prox_adamw',
            "proximal AdamW: the prox step in Adam's metric (ProxGen)",
            _REG_OPTIONS | _ADAMW_OPTIONS | {'group_solver'},
            build_prox_adamw,
            sparse=True,
            check=check_rate,
        ),
        Method(
            'gmp_adamw',
            'gradual magnitude pruning with AdamW (with --nm, to N:M)',
            _ADAMW_OPTIONS | _GMP_OPTIONS,
            build_gmp_adamw,
            check=check_gmp,
        ),
        Method(
            'han_adamw',
            'magnitude prune --init_from (with --nm, to N:M), then fine-tune '
            'with AdamW, the zeros frozen',
            _ADAMW_OPTIONS | {'prune_sparsity', 'nm'},
            _adamw,
            from_run=True,
            check=check_han,
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

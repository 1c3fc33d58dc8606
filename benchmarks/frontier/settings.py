"""The frontier's sweeps: per setting (model, dataset, budget), every
method's grid of hyper-parameter variants and strengths, at one epoch
budget (see :mod:`benchmarks.frontier`)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from train.cli import flags as _flags

from .. import sweeps

LEVELS = (0.90, 0.95, 0.97, 0.98, 0.99, 0.995)


class Run(sweeps.Run):
  """One ``python -m train`` run of the sweep: ``Run(method, variant,
  strength, seed, flags, needs=None)``, its point on the curve the strength
  (λ, or the target sparsity of a pruning method)."""

  @property
  def strength(self) -> float:
    return self.point

  @property
  def label(self) -> str:
    return f'{self.point:g}'


@dataclasses.dataclass(frozen=True)
class Setting:
  """A model / dataset / budget and each method's grid."""

  base: dict[str, Any]  # model, dataset, batch size, ...
  epochs: float  # The total budget of every method.
  sparse_epochs: float  # Sparse phase (then ASR) / dense phase of han.
  lams: dict[str, tuple[float, ...]]  # Strength grids of rmda, rda, prox.
  variants: dict[str, dict[str, dict[str, Any]]]
  levels: tuple[float, ...] = LEVELS
  note: str = ''
  plot_depth: float = 15.0  # How far below dense the plot may reach (points).

  def runs(
      self, seeds, methods=None, strengths=None, variants=None
  ) -> list[Run]:
    """The sweep's runs (optionally only some methods, strengths, variants)."""
    out = self._runs(seeds, methods)
    if variants:
      keep_v = lambda r: r.variant in variants or r.variant == 'parent'
      out = [r for r in out if keep_v(r)]
    if strengths:
      keep = lambda r: r.method == 'dense' or any(
          math.isclose(r.strength, s, rel_tol=1e-6) for s in strengths
      )
      needed = {r.needs for r in out if keep(r) and r.needs is not None}
      out = [r for r in out if keep(r) or r in needed]
    return out

  def _runs(self, seeds, methods=None) -> list[Run]:
    out = []
    ft = self.epochs - self.sparse_epochs
    for method, variants in self.variants.items():
      if (
          methods
          and method not in methods
          and not (
              method == 'dense' and any(m.startswith('han') for m in methods)
          )
      ):
        continue
      for vname, v in variants.items():
        for seed in seeds:
          common = {**self.base, 'seed': seed}
          if method == 'dense':
            out.append(
                Run(
                    method,
                    vname,
                    0.0,
                    seed,
                    _flags(
                        {
                            **common,
                            'method': 'sgd',
                            'epochs': self.epochs,
                            'asr_epochs': 0,
                            **v,
                        }
                    ),
                )
            )
          elif method.startswith('han'):
            parent = Run(
                'dense',
                'parent',
                0.0,
                seed,
                _flags(
                    {
                        **common,
                        'method': 'sgd',
                        'epochs': self.sparse_epochs,
                        'asr_epochs': 0,
                        **self.variants['dense']['cosine'],
                    }
                ),
            )
            if parent not in out:
              out.append(parent)
            for level in self.levels:
              out.append(
                  Run(
                      method,
                      vname,
                      level,
                      seed,
                      _flags(
                          {
                              **common,
                              'method': 'han',
                              'epochs': ft,
                              'asr_epochs': 0,
                              'prune_sparsity': level,
                              **v,
                          }
                      ),
                      needs=parent,
                  )
              )
          elif method == 'rmda_target':
            # RMDA whose prox is the projection onto the level (--regularizer
            # sparsity): a pruning-style target, a sparse phase then ASR.
            for level in self.levels:
              out.append(
                  Run(
                      method,
                      vname,
                      level,
                      seed,
                      _flags(
                          {
                              **common,
                              'method': 'rmda',
                              'regularizer': 'sparsity',
                              'epochs': self.sparse_epochs,
                              'asr_epochs': ft,
                              'target_sparsity': level,
                              **_ASR_SAME,
                              **v,
                          }
                      ),
                  )
              )
          elif method == 'gmp':
            for level in self.levels:
              out.append(
                  Run(
                      method,
                      vname,
                      level,
                      seed,
                      _flags(
                          {
                              **common,
                              'method': 'gmp',
                              'epochs': self.epochs,
                              'asr_epochs': 0,
                              'gmp_sparsity': level,
                              **v,
                          }
                      ),
                  )
              )
          else:  # Regularization methods: a λ grid, sparse phase then ASR.
            for lam in self.lams[method]:
              out.append(
                  Run(
                      method,
                      vname,
                      lam,
                      seed,
                      _flags(
                          {
                              **common,
                              'method': method,
                              'epochs': self.sparse_epochs,
                              'asr_epochs': ft,
                              'lam': lam,
                              **_ASR_SAME,
                              **v,
                          }
                      ),
                  )
              )
    return out


# Every run names the options it relies on: the default preset's values
# (e.g. its ASR by SGD) must not leak into another method's runs.
# ASR by SGD as the CIFAR recipe's fine-tuning (lr 0.03, cosine).
_CIFAR_ASR = {
    'asr_optimizer': 'sgd',
    'asr_lr': 0.03,
    'asr_lr_schedule': 'cosine',
}

_ASR_SAME = {'asr_optimizer': 'same', 'asr_restart': True}


def _geom(lo: float, hi: float, n: int) -> tuple[float, ...]:
  return tuple(
      float(f'{lo * (hi / lo) ** (i / (n - 1)):.3g}') for i in range(n)
  )


_DENSE = {'cosine': {'lr': 0.1, 'momentum': 0.9, 'lr_schedule': 'cosine'}}


def _han(lrs, scope):
  return {
      f'lr{lr:g}': {'lr': lr, 'lr_schedule': 'cosine', 'prune_scope': scope}
      for lr in lrs
  }


def _rmda_target(
    lr,
    begin,
    end,
    asr_lr=0.03,
    lr_schedule=None,
    weight_decay=0.0,
    asr_weight_decay=None,
):
  """RMDA projected on the level (global ranking), the ramp from ``begin``
  to ``end`` (epochs), then ASR by SGD at ``asr_lr`` (cosine); with
  ``weight_decay`` in both phases (``asr_weight_decay``: ASR's own)."""
  schedule = {'lr_schedule': lr_schedule} if lr_schedule else {}
  if asr_weight_decay is None:
    asr_weight_decay = weight_decay
  decay = {'weight_decay': weight_decay} if weight_decay else {}
  if asr_weight_decay:
    decay['asr_weight_decay'] = asr_weight_decay
  return {
      'lr': lr,
      **schedule,
      **decay,
      'momentum': 0.9,
      'init_scale': 0.0,
      'prune_scope': 'global',
      'target_begin_epoch': begin,
      'target_end_epoch': end,
      'asr_optimizer': 'sgd',
      'asr_lr': asr_lr,
      'asr_lr_schedule': 'cosine',
  }


def _gmp(ends, lr=0.1, begin=1.0):
  return {
      f'end{e:g}': {
          'lr': lr,
          'lr_schedule': 'cosine',
          'gmp_begin_epoch': begin,
          'gmp_end_epoch': e,
          'prune_scope': 'global',
          'gmp_frequency': 50,
      }
      for e in ends
  }


SETTINGS: dict[str, Setting] = {
    # LeNet-300-100 on MNIST, 12 epochs in all (8 + 4).
    'lenet300': Setting(
        base={'model': 'lenet300_100', 'dataset': 'mnist', 'batch_size': 128},
        epochs=12.0,
        sparse_epochs=8.0,
        plot_depth=4.0,
        # Extra λ fill the widest sparsity gaps of the geometric grid (the
        # comparison takes a point at or above each level).
        lams={
            'rmda': tuple(
                sorted(_geom(1e-4, 2e-3, 12) + (3.4e-4, 4.1e-4, 4.5e-4, 1.5e-3))
            ),
            'rda': _geom(5e-4, 5e-3, 5),
            'prox_sgd': _geom(1e-4, 2e-3, 5),
        },
        variants={
            'dense': _DENSE,
            # benchmarks/tuning/lenet300_rmda_*.txt: He init, η = 0.2,
            # μ = 0.9, then 4 epochs of frozen-zero SGD (0.03, cosine).
            'rmda': {
                'default': {
                    'lr': 0.2,
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    'asr_optimizer': 'sgd',
                    'asr_lr': 0.03,
                    'asr_lr_schedule': 'cosine',
                },
            },
            # RMDA projected on the level (--regularizer sparsity), the ramp
            # over the first 6 of its 8 epochs, then ASR as rmda's.
            'rmda_target': {'default': _rmda_target(0.2, 0.0, 6.0)},
            # Fine-tuning lr 0.003 was worse than 0.01 at every level; the
            # grid goes past the best rate (0.2) at every level.
            'han_global': _han((0.01, 0.03, 0.1, 0.2, 0.4), 'global'),
            'gmp': {
                **_gmp((6.0, 9.0)),
                **{
                    f'{k}_lr0.2': dict(v, lr=0.2)
                    for k, v in _gmp((6.0,)).items()
                },
            },
            # benchmarks/tuning/lenet300_rda_1.txt: γ < 1 diverges; γ = 1,
            # s = 1, with ASR as in the paper (RDA restarted) or by SGD.
            'rda': {
                'paper': {'gamma': 1.0, 'init_scale': 1.0},
                'sgd_asr': {
                    'gamma': 1.0,
                    'init_scale': 1.0,
                    'asr_optimizer': 'sgd',
                    'asr_lr': 0.03,
                    'asr_lr_schedule': 'cosine',
                },
            },
            'prox_sgd': {'momentum': {'lr': 0.1, 'momentum': 0.9}},
            # Per-layer ranking is far behind global at every level (seed 0,
            # lr 0.003-0.03); its best fine-tuning rate there.
            'han_layer': _han((0.1,), 'layer'),
        },
    ),
    # LeNet-5-Caffe on MNIST, 30 epochs in all (20 + 10). This model (no
    # ReLU after its convolutions) diverges with SGD at lr 0.1 and at 0.03
    # (momentum 0.9, step 100): SGD-based runs use Han et al.'s 0.01.
    'lenet5': Setting(
        base={
            'model': 'lenet5',
            'dataset': 'mnist',
            'batch_size': 128,
            'eval_every_epochs': 5,
        },
        epochs=30.0,
        sparse_epochs=20.0,
        lams={
            'rmda': _geom(2e-4, 1.2e-3, 6),
            'rda': _geom(1e-3, 3e-2, 5),
            'prox_sgd': _geom(1e-4, 2e-3, 4),
        },
        variants={
            'dense': {
                'cosine': {'lr': 0.01, 'momentum': 0.9, 'lr_schedule': 'cosine'}
            },
            'rmda': {
                'default': {
                    'lr': 0.05,
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    'asr_optimizer': 'sgd',
                    'asr_lr': 0.01,
                    'asr_lr_schedule': 'cosine',
                },
            },
            # The preset mnist_lenet5_rmda's recipe (ASR at 0.03), the
            # level reached along the ramp from epoch 1 to 15.
            'rmda_target': {'default': _rmda_target(0.05, 1.0, 15.0)},
            'han_global': _han((0.003, 0.01), 'global'),
            'gmp': _gmp((15.0, 22.0), lr=0.01),
            'rda': {'paper': {'gamma': 10.0, 'init_scale': 1.0}},
            'prox_sgd': {'momentum': {'lr': 0.01, 'momentum': 0.9}},
            'han_layer': _han((0.003, 0.01), 'layer'),
        },
    ),
    # CIFAR-10 at CPU scale: the JPEG copy of CIFAR-10 in ../shared/data
    # (cifar10_jpg), He et al.'s ResNet-8 (78k parameters; 30 epochs take
    # about 25 minutes on 2 cores, ResNet-20's take 70), 30 epochs (20 + 10),
    # random crop and flip. Dense SGD and Han's parent use the usual CIFAR
    # recipe (lr 0.1, momentum 0.9, cosine, weight decay 5e-4 on kernels).
    'cifar_resnet8': Setting(
        base={
            'model': 'resnet8',
            'dataset': 'cifar10_jpg',
            'batch_size': 128,
            'eval_every_epochs': 5,
        },
        epochs=30.0,
        sparse_epochs=20.0,
        lams={
            'rmda': _geom(1e-4, 3.2e-3, 6),
            'rda': (),
            'prox_sgd': _geom(2.5e-4, 2e-3, 4),
        },
        levels=(0.90, 0.95, 0.97, 0.98),
        plot_depth=16.0,
        variants={
            'dense': {
                'cosine': {
                    'lr': 0.1,
                    'momentum': 0.9,
                    'lr_schedule': 'cosine',
                    'weight_decay': 5e-4,
                }
            },
            'rmda': {
                'default': {
                    'lr': 0.1,
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    **_CIFAR_ASR,
                },
                # The learning rate annealed through the sparse phase too
                # (cosine over the run), as the dense baseline's is.
                'cosine': {
                    'lr': 0.1,
                    'lr_schedule': 'cosine',
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    **_CIFAR_ASR,
                },
                # η = 1.0, the rate that made the projected RMDA work here
                # (lr1_cosine below; MDA's interpolation does not amplify
                # the step as SGD's momentum does).
                'lr1_cosine': {
                    'lr': 1.0,
                    'lr_schedule': 'cosine',
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    **_CIFAR_ASR,
                },
            },
            # Prox-SGD: the dense recipe's SGD (lr 0.1 cosine, momentum 0.9)
            # with the ℓ1 prox instead of weight decay, then ASR as RMDA's.
            'prox_sgd': {
                'cosine': {
                    'lr': 0.1,
                    'lr_schedule': 'cosine',
                    'momentum': 0.9,
                    **_CIFAR_ASR,
                },
            },
            # RMDA projected on the target sparsity (global ranking), the
            # ramp from epoch 1 to 15 as gmp's, then ASR as above.
            # lr1_cosine: η = lr / (1 − μ) of the dense run's SGD (MDA's
            # interpolation does not amplify the step as SGD's momentum
            # does: η = 0.1 trains like SGD at 0.01), cosine as dense.
            'rmda_target': {
                'default': _rmda_target(0.1, 1.0, 15.0),
                'lr1_cosine': _rmda_target(
                    1.0, 1.0, 15.0, lr_schedule='cosine'
                ),
                # The dense recipe's weight decay (5e-4) in both phases, as
                # gmp and Han have it.
                'lr1_cosine_wd': _rmda_target(
                    1.0, 1.0, 15.0, lr_schedule='cosine', weight_decay=5e-4
                ),
                # ASR as gradual pruning's SGD after its ramp: the rate it
                # has there (0.05 at epoch 15 of its cosine) and its weight
                # decay, in ASR only (RMDA's dual sum does not take it).
                'lr1_cosine_ftgmp': _rmda_target(
                    1.0,
                    1.0,
                    15.0,
                    asr_lr=0.05,
                    lr_schedule='cosine',
                    asr_weight_decay=5e-4,
                ),
            },
            'han_global': {
                k: dict(v, weight_decay=5e-4)
                for k, v in _han((0.01, 0.03), 'global').items()
            },
            'gmp': {
                k: dict(v, weight_decay=5e-4)
                for k, v in _gmp((15.0,), lr=0.1).items()
            },
        },
    ),
}


def _cifar_accelerator(model: str, epochs: int) -> Setting:
  """CIFAR-10 (the JPEG copy) on an accelerator: ``cifar_resnet8``'s recipe
  with its schedules scaled to ``epochs`` (30 there: sparse phase 20 + ASR
  10, pruning ramps from epoch 1 to 15), bfloat16 compute, 90-98%.

  One point per method and level; the ResNet-8 grids chose the variants
  (RMDA projected at η = 1.0, fine-tuning rates 0.01 and 0.03, the ramp
  ending half-way).
  """
  f = epochs / 30
  return Setting(
      base={
          'model': model,
          'dataset': 'cifar10_jpg',
          'batch_size': 128,
          'dtype': 'bfloat16',
          'eval_every_epochs': max(1, epochs // 3),
      },
      epochs=float(epochs),
      sparse_epochs=20 * f,
      lams={'rmda': (), 'rda': (), 'prox_sgd': ()},
      levels=(0.90, 0.95, 0.97, 0.98),
      plot_depth=16.0,
      note=(
          'CIFAR-10 as JPEG (../shared/data, quality 75), not the official '
          'archives; an accelerator-scale budget, one seed unless stated.'
      ),
      variants={
          'dense': SETTINGS['cifar_resnet8'].variants['dense'],
          'rmda_target': {
              'lr1_cosine': _rmda_target(
                  1.0, 1.0 * f, 15.0 * f, lr_schedule='cosine'
              )
          },
          'han_global': SETTINGS['cifar_resnet8'].variants['han_global'],
          'gmp': {
              k: dict(v, weight_decay=5e-4)
              for k, v in _gmp((15.0 * f,), lr=0.1, begin=1.0 * f).items()
          },
      },
  )


# ResNet-18 (11M parameters) at a few budgets, for whatever time an
# accelerator allows: `cifar_resnet18_e<epochs>`.
for _e in (15, 30, 60, 90):
  SETTINGS[f'cifar_resnet18_e{_e}'] = _cifar_accelerator('resnet18', _e)

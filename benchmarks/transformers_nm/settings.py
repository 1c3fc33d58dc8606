"""The sweeps of :mod:`benchmarks.transformers_nm`: per setting (gpt, vit,
lenet5_2_4, resnet8_2_4) the model, dataset and budget, the targets, and
each method's kind and hyper-parameter variants."""

from __future__ import annotations

from train.presets import PRESETS

from .sweep import NM
from .sweep import Setting

# The GPT's budget: 1 epoch of the 4,551,554 training characters (1,111
# steps of 32 windows of 128), evaluated 4 times on the whole validation
# slice (505,728 characters): about 25 minutes a run on the shared 2-core
# machine under load (0.87-1.02 steps per second, an evaluation about a
# minute; docs/guides/transformers_nm.md), about 46 hours for the sweep's
# 132 runs of 3 seeds there.
GPT_EPOCHS = 1.0
GPT_BASE = {
    'model': 'gpt_char',
    'dataset': 'shakespeare_char',
    'batch_size': 32,
    'context': 128,
    'eval_batch_size': 256,
    'eval_every_epochs': 0.25,
    'log_every_steps': 50,
    'asr_epochs': 0,
    # A cosine without warm-up for every method (a warm-up starts the rate at
    # 0, which the proximal methods refuse), as the presets.
    'lr_schedule': 'cosine',
}
# The ramps to the target (sparsity or N:M): from 5% to half of the budget.
_RAMP = {'target_begin_epoch': 0.05, 'target_end_epoch': 0.5}
# The learning rates of the presets (train/presets_transformers.py,
# shakespeare_gpt_*).
_LR = {
    m: PRESETS[f'shakespeare_gpt_{m}']['lr']
    for m in ('adamw', 'ramda', 'rmda', 'prox_adamw')
}
_ADAMW = {'method': 'adamw', 'lr': _LR['adamw']}


def _gmp(ends, lrs):
  return {
      f'end{e:g}_lr{lr:g}': {
          'method': 'gmp_adamw',
          'lr': lr,
          'gmp_begin_epoch': 0.05,
          'gmp_end_epoch': e,
          'gmp_frequency': 20,
          'prune_scope': 'global',
      }
      for e in ends
      for lr in lrs
  }


SETTINGS: dict[str, Setting] = {
    'gpt': Setting(
        base=GPT_BASE,
        epochs=GPT_EPOCHS,
        targets=('0.5', '0.75', '0.9', NM),
        metric='test_loss',
        finetune_epochs=0.25,
        # RAMDA's ℓ1 λ: a geometric grid over the sparsity range.
        lams=(1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4),
        methods={
            'dense': ({'default': _ADAMW}, 'dense'),
            'ramda_l1': (
                {
                    'default': {
                        'method': 'ramda',
                        'lr': _LR['ramda'],
                        'momentum': 0.9,
                        'regularizer': 'l1',
                    }
                },
                'l1',
            ),
            'ramda_target': (
                {
                    'default': {
                        'method': 'ramda',
                        'lr': _LR['ramda'],
                        'momentum': 0.9,
                        'prune_scope': 'global',
                        **_RAMP,
                    }
                },
                'projected',
            ),
            'rmda_target': (
                {
                    'default': {
                        'method': 'rmda',
                        'lr': _LR['rmda'],
                        'momentum': 0.9,
                        'init_scale': 0.0,
                        'prune_scope': 'global',
                        **_RAMP,
                    }
                },
                'projected',
            ),
            'prox_adamw_target': (
                {
                    'default': {
                        'method': 'prox_adamw',
                        'lr': _LR['prox_adamw'],
                        'prune_scope': 'global',
                        **_RAMP,
                    }
                },
                'projected',
            ),
            'gmp_adamw': (
                _gmp((0.5, 0.75), (_LR['adamw'], _LR['adamw'] / 2)),
                'gmp',
            ),
            'han_adamw': (
                {
                    f'lr{lr:g}': {
                        'method': 'han_adamw',
                        'lr': lr,
                        'prune_scope': 'global',
                    }
                    for lr in (1e-3, 3e-4)
                },
                'han',
            ),
        },
        note=(
            'Character-level Shakespeare (the last 10% of the characters '
            'held out); the budget is 1 epoch of the training characters.'
        ),
        smoke_steps_per_epoch=4,
        # The whole validation slice takes about a minute on a CPU: its
        # first 2% (10,114 characters) checks the evaluation.
        smoke_flags={'eval_split': 'test[:2%]', 'eval_batch_size': 32},
    ),
    # The ViT on the CIFAR-10 JPEG copy, an accelerator's budget (30
    # epochs, bfloat16; ../transformers_accelerator.sh). RAMDA at the
    # reference code's ViT rate (1e-2); AdamW 5e-4; cosine, no warm-up.
    'vit': Setting(
        base={
            'model': 'vit_cifar',
            'dataset': 'cifar10_jpg',
            'batch_size': 128,
            'dtype': 'bfloat16',
            'eval_every_epochs': 5,
            'asr_epochs': 0,
            'lr_schedule': 'cosine',
        },
        epochs=30.0,
        targets=('0.5', '0.75', '0.9', NM),
        metric='test_top1',
        finetune_epochs=10.0,
        methods={
            'dense': ({'default': {'method': 'adamw', 'lr': 5e-4}}, 'dense'),
            'ramda_target': (
                {
                    'default': {
                        'method': 'ramda',
                        'lr': 1e-2,
                        'momentum': 0.9,
                        'prune_scope': 'global',
                        'target_begin_epoch': 1.0,
                        'target_end_epoch': 15.0,
                    }
                },
                'projected',
            ),
            'prox_adamw_target': (
                {
                    'default': {
                        'method': 'prox_adamw',
                        'lr': 5e-4,
                        'prune_scope': 'global',
                        'target_begin_epoch': 1.0,
                        'target_end_epoch': 15.0,
                    }
                },
                'projected',
            ),
            'gmp_adamw': (
                {
                    'end15': {
                        'method': 'gmp_adamw',
                        'lr': 5e-4,
                        'gmp_begin_epoch': 1.0,
                        'gmp_end_epoch': 15.0,
                        'gmp_frequency': 50,
                        'prune_scope': 'global',
                    }
                },
                'gmp',
            ),
            'han_adamw': (
                {
                    'lr0.0002': {
                        'method': 'han_adamw',
                        'lr': 2e-4,
                        'prune_scope': 'global',
                    }
                },
                'han',
            ),
        },
        note='CIFAR-10 as JPEG (../shared/data, quality 75); one seed.',
        smoke_steps_per_epoch=1,
    ),
    # LeNet-5 on MNIST, the frontier's lenet5 recipes (30 epochs: 20 + 10).
    'lenet5_2_4': Setting(
        base={
            'model': 'lenet5',
            'dataset': 'mnist',
            'batch_size': 128,
            'eval_every_epochs': 5,
        },
        epochs=30.0,
        targets=(NM,),
        metric='test_top1',
        finetune_epochs=10.0,
        methods={
            'dense': (
                {
                    'default': {
                        'method': 'sgd',
                        'lr': 0.01,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                    }
                },
                'dense',
            ),
            'rmda_nm': (
                {
                    'default': {
                        'method': 'rmda',
                        'lr': 0.05,
                        'momentum': 0.9,
                        'init_scale': 0.0,
                        'epochs': 20.0,
                        'asr_epochs': 10.0,
                        'asr_optimizer': 'sgd',
                        'asr_lr': 0.01,
                        'asr_lr_schedule': 'cosine',
                        'target_begin_epoch': 1.0,
                        'target_end_epoch': 15.0,
                    }
                },
                'projected',
            ),
            'gmp_nm': (
                {
                    'end15': {
                        'method': 'gmp',
                        'lr': 0.01,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                        'gmp_begin_epoch': 1.0,
                        'gmp_end_epoch': 15.0,
                        'gmp_frequency': 50,
                    }
                },
                'gmp',
            ),
            'han_nm': (
                {
                    f'lr{lr:g}': {
                        'method': 'han',
                        'lr': lr,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                    }
                    for lr in (0.003, 0.01)
                },
                'han',
            ),
        },
    ),
    # ResNet-8 on the CIFAR-10 JPEG copy, the frontier's cifar_resnet8
    # recipes (30 epochs: 20 + 10; RMDA at η = 1.0, cosine).
    'resnet8_2_4': Setting(
        base={
            'model': 'resnet8',
            'dataset': 'cifar10_jpg',
            'batch_size': 128,
            'eval_every_epochs': 5,
        },
        epochs=30.0,
        targets=(NM,),
        metric='test_top1',
        finetune_epochs=10.0,
        methods={
            'dense': (
                {
                    'default': {
                        'method': 'sgd',
                        'lr': 0.1,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                        'weight_decay': 5e-4,
                    }
                },
                'dense',
            ),
            'rmda_nm': (
                {
                    'default': {
                        'method': 'rmda',
                        'lr': 1.0,
                        'lr_schedule': 'cosine',
                        'momentum': 0.9,
                        'init_scale': 0.0,
                        'epochs': 20.0,
                        'asr_epochs': 10.0,
                        'asr_optimizer': 'sgd',
                        'asr_lr': 0.03,
                        'asr_lr_schedule': 'cosine',
                        'target_begin_epoch': 1.0,
                        'target_end_epoch': 15.0,
                    }
                },
                'projected',
            ),
            'gmp_nm': (
                {
                    'end15': {
                        'method': 'gmp',
                        'lr': 0.1,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                        'weight_decay': 5e-4,
                        'gmp_begin_epoch': 1.0,
                        'gmp_end_epoch': 15.0,
                        'gmp_frequency': 50,
                    }
                },
                'gmp',
            ),
            'han_nm': (
                {
                    f'lr{lr:g}': {
                        'method': 'han',
                        'lr': lr,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                        'weight_decay': 5e-4,
                    }
                    for lr in (0.01, 0.03)
                },
                'han',
            ),
        },
        note='CIFAR-10 as JPEG (../shared/data, quality 75).',
    ),
}

"""The transformer presets of `python -m train`: the small GPT on the
Shakespeare corpus and the ViT on the CIFAR-10 JPEG copy (issue 28).

:data:`TRANSFORMER_PRESETS` are entries of :data:`train.presets.PRESETS`
(which lists them in this order), each at 75% kernel sparsity or 2:4, with
their dense references; each comment says where the numbers come from.
"""

from __future__ import annotations

from typing import Any

# The small GPT (gpt_char: 4 layers, width 128, 4 heads, context 128;
# 0.83 M parameters) on the Shakespeare corpus, sized for a CPU: 1 epoch of
# the 4,551,554 training characters (1,111 steps of 32 windows of 128),
# evaluated 4 times on the whole validation slice (the last 505,728
# characters). On the shared 2-core machine under load the GPT trained at
# 0.87-1.02 steps per second (3.6-4.2 thousand characters per second; each
# preset kind, 200 steps, 2026-12-07) and one evaluation took about a
# minute: about 25 minutes a run there (docs/guides/transformers_nm.md). The
# kernels are selected (models.kernel_mask: embeddings, positions and norms
# dense); the targets are reached along a ramp from 5% to half of the run.
# Learning rates from 100-step probes (batch 16, constant rates, no warm-up,
# seed 0: training loss 2.59 at AdamW 1e-3, 2.92 at 3e-3; RAMDA 2.58 at
# 3e-3, 3.01 at 1e-2, 2.97 at 3e-2; RMDA 2.63 at 0.3, 2.65 at 1.0), a rate
# a little above the best early one, annealed by a cosine over the run (no
# warm-up: it starts the rate at 0, which the proximal steps refuse; the
# same schedule for every method): not a tuned grid (the sweep,
# python -m benchmarks.transformers_nm gpt, tunes gradual pruning).
_GPT = dict(
    model='gpt_char',
    dataset='shakespeare_char',
    batch_size=32,
    context=128,
    eval_batch_size=256,
    epochs=1.0,
    asr_epochs=0.0,
    eval_every_epochs=0.25,
    log_every_steps=50,
    lr_schedule='cosine',
)
_GPT_RAMP = dict(target_begin_epoch=0.05, target_end_epoch=0.5)
_GPT_ADAMW = dict(_GPT, lr=2e-3)
_GPT_RAMDA = dict(_GPT, method='ramda', lr=5e-3, momentum=0.9)
_GPT_RMDA = dict(_GPT, method='rmda', lr=0.5, momentum=0.9, init_scale=0.0)
_TARGET_75 = dict(
    regularizer='sparsity',
    target_sparsity=0.75,
    prune_scope='global',
    **_GPT_RAMP,
)
_NM_24 = dict(regularizer='nm', nm='2:4', **_GPT_RAMP)
_GPT_GMP = dict(
    _GPT_ADAMW,
    method='gmp_adamw',
    gmp_begin_epoch=0.05,
    gmp_end_epoch=0.5,
    gmp_frequency=20,
    prune_scope='global',
)
# Han's one-shot pruning: fine-tunes --init_from (a dense run, e.g.
# shakespeare_gpt_adamw with --epochs 0.75: the same 1-epoch budget in all)
# for 0.25 epochs, the rate annealed from 1e-3.
_GPT_HAN = dict(
    _GPT, method='han_adamw', epochs=0.25, lr=1e-3, prune_scope='global'
)
# The ViT (vit_cifar: patch 4, width 128, 6 layers; 1.2 M parameters) on the
# CIFAR-10 JPEG copy with its random crop and flip, at a CPU's budget: it
# trained at 30-45 images per second on the shared 2-core machine under load
# (AdamW, batch 128), about 20-28 minutes an epoch there; 2 epochs, the
# rates annealed by a cosine (AdamW 5e-4: no warm-up, as for the GPT). An
# accelerator's 30 epochs: benchmarks/transformers_accelerator.sh.
_VIT = dict(
    model='vit_cifar',
    dataset='cifar10_jpg',
    batch_size=128,
    epochs=2.0,
    asr_epochs=0.0,
    eval_every_epochs=1.0,
    log_every_steps=50,
    lr_schedule='cosine',
)
_VIT_RAMP = dict(target_begin_epoch=0.1, target_end_epoch=1.0)

#: The transformer presets by name (part of :data:`train.presets.PRESETS`).
TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    # Sparse transformers (issue 28): the GPT on Shakespeare at 75% kernel
    # sparsity and at 2:4, and the ViT on CIFAR-10 (see _GPT and _VIT).
    'shakespeare_gpt_adamw': dict(_GPT_ADAMW, method='adamw'),
    # RAMDA with ℓ1: λ estimated for about 75% (the threshold on |w| grows
    # like λ·k·(η)^(2/3) / |g|^(2/3)); the sweep's λ grid measures it.
    'shakespeare_gpt_ramda': dict(_GPT_RAMDA, regularizer='l1', lam=2e-5),
    'shakespeare_gpt_ramda_target': dict(_GPT_RAMDA, **_TARGET_75),
    'shakespeare_gpt_ramda_2_4': dict(_GPT_RAMDA, **_NM_24),
    'shakespeare_gpt_rmda': dict(_GPT_RMDA, **_TARGET_75),
    'shakespeare_gpt_rmda_2_4': dict(_GPT_RMDA, **_NM_24),
    'shakespeare_gpt_prox_adamw': dict(
        _GPT_ADAMW, method='prox_adamw', **_TARGET_75
    ),
    'shakespeare_gpt_prox_adamw_2_4': dict(
        _GPT_ADAMW, method='prox_adamw', **_NM_24
    ),
    'shakespeare_gpt_gmp_adamw': dict(_GPT_GMP, gmp_sparsity=0.75),
    'shakespeare_gpt_gmp_adamw_2_4': dict(_GPT_GMP, nm='2:4'),
    'shakespeare_gpt_han_adamw': dict(_GPT_HAN, prune_sparsity=0.75),
    'shakespeare_gpt_han_adamw_2_4': dict(_GPT_HAN, nm='2:4'),
    'cifar10_vit_adamw': dict(_VIT, method='adamw', lr=5e-4),
    # RAMDA at the reference code's ViT rate (1e-2).
    'cifar10_vit_ramda_target': dict(
        _VIT,
        method='ramda',
        lr=1e-2,
        momentum=0.9,
        regularizer='sparsity',
        target_sparsity=0.75,
        prune_scope='global',
        **_VIT_RAMP,
    ),
    'cifar10_vit_ramda_2_4': dict(
        _VIT,
        method='ramda',
        lr=1e-2,
        momentum=0.9,
        regularizer='nm',
        nm='2:4',
        **_VIT_RAMP,
    ),
    'cifar10_vit_gmp_adamw_2_4': dict(
        _VIT,
        method='gmp_adamw',
        lr=5e-4,
        nm='2:4',
        gmp_begin_epoch=0.1,
        gmp_end_epoch=1.0,
        gmp_frequency=50,
    ),
}

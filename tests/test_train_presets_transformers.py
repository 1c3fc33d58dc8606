"""train/presets_transformers.py: the presets of the GPT on Shakespeare and
the ViT on CIFAR-10."""

import models
from train import config as config_lib
from train import selection


def test_transformer_presets():
  """The GPT's presets share one budget (1 epoch) and reach 75% or 2:4;
  the ViT's train on the CIFAR-10 JPEG copy; both select the weight kernels
  only (embeddings, positions and norms dense)."""
  names = [n for n in config_lib.PRESETS if n.startswith('shakespeare_gpt_')]
  assert {n.removeprefix('shakespeare_gpt_') for n in names} >= {
      'adamw',
      'ramda',
      'ramda_target',
      'rmda',
      'prox_adamw',
      'gmp_adamw',
      'han_adamw',
      'ramda_2_4',
      'rmda_2_4',
      'prox_adamw_2_4',
      'gmp_adamw_2_4',
      'han_adamw_2_4',
  }
  for name in names:
    cfg = config_lib.get_config(name)
    assert (cfg.model, cfg.dataset, cfg.context) == (
        'gpt_char',
        'shakespeare_char',
        128,
    )
    # Han fine-tunes a 0.75-epoch dense run: 1 epoch in all.
    assert cfg.epochs == (0.25 if cfg.method == 'han_adamw' else 1.0), name
    assert cfg.asr_epochs == 0
    if name.endswith('_2_4'):
      assert cfg.nm == '2:4', name
      if cfg.method in ('ramda', 'rmda', 'prox_adamw'):
        assert cfg.regularizer == 'nm', name
    elif cfg.method in ('ramda', 'rmda', 'prox_adamw') and name != (
        'shakespeare_gpt_ramda'
    ):
      assert cfg.target_sparsity == 0.75 and cfg.regularizer == 'sparsity'
  for name in [n for n in config_lib.PRESETS if n.startswith('cifar10_vit_')]:
    cfg = config_lib.get_config(name)
    assert (cfg.model, cfg.dataset) == ('vit_cifar', 'cifar10_jpg'), name
  vit = config_lib.get_config('cifar10_vit_adamw')
  assert selection.run_mask(vit) is models.kernel_mask
  assert selection.run_mask(config_lib.get_config()) is None

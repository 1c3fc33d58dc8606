"""models.flops: per-layer dense and sparse multiply-accumulate counts."""

import jax
import numpy as np
import pytest

import models
from _models_helpers import fake_variables

# --------------------------------------------------------------------------
# FLOP counts.


def test_flops_lenet5_hand_computed():
  model = models.create('lenet5')
  variables = fake_variables(model, (28, 28, 1))
  report = models.flops(model, variables, (28, 28, 1))
  # conv1: 24x24 outputs x 5*5*1*20; conv2: 8x8 x 5*5*20*50; fc1: 800*500.
  expected = {
      'conv1': 24 * 24 * 500,
      'conv2': 8 * 8 * 25_000,
      'fc1': 800 * 500,
      'fc2': 500 * 10,
  }
  assert [l.name for l in report.layers] == list(expected)
  assert {l.name: l.dense_macs for l in report.layers} == expected
  assert report.dense_total == 2_293_000 == report.sparse_total
  assert report['conv2'].output_shape == (8, 8, 50)

  params = jax.tree.map(np.array, variables['params'])
  params['conv1']['kernel'][..., :5] = 0  # 5 of 20 filters: 125 zeros
  params['conv2']['kernel'][0, 0] = 0  # 20*50 = 1000 zeros
  params['fc1']['kernel'][:100] = 0  # 100*500 zeros
  sparse = models.flops(model, params, (28, 28, 1))  # params alone work too
  assert sparse['conv1'].sparse_macs == 576 * 375
  assert sparse['conv2'].sparse_macs == 64 * 24_000
  assert sparse['fc1'].sparse_macs == 700 * 500
  assert sparse['fc2'].sparse_macs == 5_000
  assert sparse.sparse_total == 576 * 375 + 64 * 24_000 + 350_000 + 5_000
  assert sparse.dense_total == 2_293_000
  as_dict = sparse.as_dict()
  assert as_dict['layers'][0]['name'] == 'conv1'
  assert as_dict['sparse_total'] == sparse.sparse_total
  assert '| **total** |' in sparse.table()


def test_flops_resnet18_cifar():
  """0.56 GMACs: the sum of H_out*W_out*k*k*c_in*c_out over the layers."""
  model = models.create('resnet18')
  report = models.flops(model, fake_variables(model, (32, 32, 3)), (32, 32, 3))

  def stage(hw, c_in, c):
    macs = hw * hw * 9 * c_in * c + 3 * hw * hw * 9 * c * c  # 3x3 convs
    if c_in != c:
      macs += hw * hw * c_in * c  # projection
    return macs

  expected = (
      32 * 32 * 9 * 3 * 64
      + stage(32, 64, 64)
      + stage(16, 64, 128)
      + stage(8, 128, 256)
      + stage(4, 256, 512)
      + 512 * 10
  )
  assert report.dense_total == expected == 555_422_720
  assert (
      report['layer2_block0/downsample_conv'].dense_macs == 16 * 16 * 64 * 128
  )
  assert len(report.layers) == 1 + 16 + 3 + 1


def test_flops_rejects_mismatched_variables():
  model = models.create('lenet5')
  variables = fake_variables(model, (28, 28, 1))
  with pytest.raises(ValueError, match='fc1: kernel has shape'):
    models.flops(model, variables, (32, 32, 1))

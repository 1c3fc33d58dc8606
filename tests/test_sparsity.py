"""Tests for rda_optax.sparsity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rda_optax import sparsity as sparsity_lib
from rda_optax.sparsity import LayerSparsity
from rda_optax.sparsity import layer_sparsity
from rda_optax.sparsity import sparsity_summary
from rda_optax.sparsity import sparsity_table


def _small_variables():
  conv = np.ones((2, 2, 3, 4), np.float32)
  conv[..., 1] = 0.0  # output channel 1 is all zero
  conv[..., 3] = 0.0  # output channel 3 is all zero
  conv[:, :, 0, :] = 0.0  # input channel 0 is all zero
  conv[0, 0, 1, 0] = 0.0  # one more isolated zero
  dense = np.arange(1.0, 13.0, dtype=np.float32).reshape(4, 3)
  dense[2, :] = 0.0  # input neuron 2 is all zero
  dense[:, 0] = 0.0  # output neuron 0 is all zero
  return {
      'params': {
          'Conv_0': {
              'kernel': jnp.asarray(conv),
              'bias': jnp.asarray([0.0, 1.0, 0.0, 2.0]),
          },
          'Dense_0': {
              'kernel': jnp.asarray(dense),
              'bias': jnp.zeros(3, jnp.bfloat16),
          },
      },
      'batch_stats': {'mean': jnp.zeros(4)},
  }


# Hand counts for _small_variables().
CONV_NNZ = 2 * 2 * 2 * 2 - 1  # channels 0, 2 x input channels 1, 2, minus one
DENSE_NNZ = 3 * 2  # rows 0, 1, 3 x columns 1, 2


def test_layer_records_hand_computed():
  recs = {r.path: r for r in layer_sparsity(_small_variables())}
  assert sorted(recs) == [
      'Conv_0/bias',
      'Conv_0/kernel',
      'Dense_0/bias',
      'Dense_0/kernel',
  ]
  conv = recs['Conv_0/kernel']
  assert isinstance(conv, LayerSparsity)
  assert conv.shape == (2, 2, 3, 4) and conv.size == 48
  assert conv.nonzeros == CONV_NNZ
  assert conv.sparsity == pytest.approx(1 - CONV_NNZ / 48)
  assert conv.regularized
  assert (conv.channels, conv.zero_channels) == (4, 2)
  assert (conv.input_channels, conv.zero_input_channels) == (3, 1)
  assert conv.channel_sparsity == 0.5
  assert conv.input_channel_sparsity == pytest.approx(1 / 3)
  dense = recs['Dense_0/kernel']
  assert dense.nonzeros == DENSE_NNZ
  assert (dense.zero_channels, dense.zero_input_channels) == (1, 1)
  bias = recs['Conv_0/bias']
  assert not bias.regularized and bias.nonzeros == 2
  assert bias.channels is None and bias.channel_sparsity is None
  assert recs['Dense_0/bias'].sparsity == 1.0


def test_summary_hand_computed():
  s = sparsity_summary(_small_variables())
  assert s['layer/Conv_0/kernel/nonzeros'] == CONV_NNZ
  assert s['layer/Conv_0/kernel/size'] == 48
  assert s['layer/Conv_0/kernel/sparsity'] == pytest.approx(1 - CONV_NNZ / 48)
  assert s['layer/Conv_0/kernel/channel_sparsity'] == 0.5
  assert s['layer/Conv_0/kernel/input_channel_sparsity'] == pytest.approx(1 / 3)
  assert s['layer/Dense_0/kernel/channel_sparsity'] == pytest.approx(1 / 3)
  assert s['layer/Dense_0/kernel/input_channel_sparsity'] == 0.25
  assert s['layer/Conv_0/bias/sparsity'] == 0.5
  assert 'layer/Conv_0/bias/channel_sparsity' not in s
  # Only 'params' is measured: no batch_stats keys.
  assert not any('batch_stats' in k or 'mean' in k for k in s)
  # Regularized = the two kernels.
  assert s['regularized/size'] == 48 + 12
  assert s['regularized/nonzeros'] == CONV_NNZ + DENSE_NNZ
  assert s['regularized/sparsity'] == pytest.approx(
      1 - (CONV_NNZ + DENSE_NNZ) / 60
  )
  assert s['regularized/channels'] == 4 + 3
  assert s['regularized/zero_channels'] == 2 + 1
  assert s['regularized/channel_sparsity'] == pytest.approx(3 / 7)
  assert s['regularized/input_channel_sparsity'] == pytest.approx(2 / 7)
  # Totals over all leaves (biases: 2 nonzeros of 4, 0 of 3).
  assert s['total/size'] == 48 + 4 + 12 + 3
  assert s['total/nonzeros'] == CONV_NNZ + DENSE_NNZ + 2
  assert s['total/sparsity'] == pytest.approx(
      1 - (CONV_NNZ + DENSE_NNZ + 2) / 67
  )
  for k, v in s.items():
    assert isinstance(k, str)
    assert type(v) in (int, float), (k, type(v))


def test_summary_keys_are_stable():
  a = sparsity_summary(_small_variables())
  b = sparsity_summary(jax.tree.map(jnp.zeros_like, _small_variables()))
  assert list(a) == list(b)
  assert b['total/sparsity'] == 1.0 and b['regularized/channel_sparsity'] == 1.0


def test_custom_masks():
  variables = _small_variables()
  only_conv = {'Conv_0': True, 'Dense_0': False}
  s = sparsity_summary(variables, only_conv)
  assert s['regularized/size'] == 48 + 4
  assert s['regularized/nonzeros'] == CONV_NNZ + 2
  assert s['regularized/channels'] == 4  # the bias has no channels
  # A mask for the whole variables dict and a callable also work.
  s2 = sparsity_summary(variables, {'params': only_conv, 'batch_stats': False})
  assert s2 == s
  s3 = sparsity_summary(
      variables, lambda p: jax.tree.map(lambda x: x.ndim == 4, p)
  )
  assert s3['regularized/size'] == 48
  with pytest.raises(ValueError, match='mask'):
    sparsity_summary(variables, {'nope': True})


def test_plain_tree_and_empty_selection():
  params = [jnp.array([[1.0, 0.0]]), {'b': jnp.array(0.0)}]
  s = sparsity_summary(params)
  assert s['layer/0/nonzeros'] == 1
  assert s['layer/1/b/sparsity'] == 1.0
  s = sparsity_summary({'b': jnp.ones(3)})
  assert s['regularized/size'] == 0
  assert s['regularized/sparsity'] == 0.0
  assert s['regularized/channel_sparsity'] == 0.0


def test_table_rows_and_totals():
  variables = _small_variables()
  records = layer_sparsity(variables)
  table = sparsity_table(variables)
  assert table == sparsity_table(None, records=records)
  lines = table.splitlines()
  assert lines[0].split()[:2] == ['layer', 'shape']
  assert len(lines) == 1 + 4 + 2
  conv_line = next(l for l in lines if l.startswith('Conv_0/kernel*'))
  assert '(2, 2, 3, 4)' in conv_line
  assert conv_line.split()[-5:] == [
      '48',
      str(CONV_NNZ),
      f'{100 * (1 - CONV_NNZ / 48):.2f}',
      '50.00',
      '33.33',
  ]
  assert lines[-2].startswith('regularized')
  assert lines[-2].split()[-5:-3] == ['60', str(CONV_NNZ + DENSE_NNZ)]
  assert lines[-1].startswith('total') and ' 67 ' in lines[-1]
  # Columns are aligned: every row has the same width up to the last column.
  assert len({len(l) for l in lines if not l.startswith('total')}) <= 2


def test_summary_reuses_records():
  variables = _small_variables()
  records = layer_sparsity(variables)
  assert sparsity_summary(None, records=records) == sparsity_summary(variables)


def _resnet18_shapes():
  shapes = [(3, 3, 3, 64)]
  widths = [64, 128, 256, 512]
  cin = 64
  for i, w in enumerate(widths):
    for b in range(2):
      shapes += [(3, 3, cin, w), (3, 3, w, w)]
      if b == 0 and i > 0:
        shapes.append((1, 1, cin, w))
      cin = w
  shapes.append((512, 10))
  return shapes


def test_one_compilation_on_resnet18_sized_tree():
  rng = np.random.default_rng(0)
  params = {}
  for i, shape in enumerate(_resnet18_shapes()):
    w = rng.standard_normal(shape, dtype=np.float32)
    w[np.abs(w) < 1.0] = 0.0
    params[f'layer{i}'] = {
        'kernel': jnp.asarray(w),
        'bias': jnp.zeros(shape[-1]),
        'scale': jnp.ones(shape[-1]),
    }
  params = jax.block_until_ready(params)
  n = sum(x.size for x in jax.tree.leaves(params))
  assert n > 11_000_000
  compiled = sparsity_lib._tree_counts._cache_size()
  s = sparsity_summary(params)
  assert sparsity_lib._tree_counts._cache_size() == compiled + 1
  s = sparsity_summary(params)  # The same shapes: no second compilation.
  assert sparsity_lib._tree_counts._cache_size() == compiled + 1
  assert s['total/size'] == n
  assert s['regularized/sparsity'] == pytest.approx(0.6827, abs=0.002)


def test_docstring_examples():
  import doctest
  from rda_optax import sparsity

  result = doctest.testmod(sparsity, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.failed == 0 and result.attempted > 0

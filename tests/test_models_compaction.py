"""models.compact: removing all-zero channels, outputs unchanged."""

import jax
import numpy as np
import pytest
import flax

import models
from _models_helpers import _count, fake_variables, _node, zero_random_channels, assert_compaction_exact

# --------------------------------------------------------------------------
# Channel compaction.


@pytest.mark.parametrize('conv_relu', [False, True])
def test_compact_lenet5_folds_constant_channels(conv_relu):
  model = models.LeNet5(conv_relu=conv_relu)
  variables = jax.tree.map(np.array, fake_variables(model, (28, 28, 1)))
  p = variables['params']
  p['conv1']['kernel'][..., [1, 5, 6]] = 0
  p['conv1']['bias'][[1, 5, 6]] = [0.7, -0.3, 0.0]  # nonzero constants
  p['conv2']['kernel'][..., [0, 3, 7, 8]] = 0
  p['fc1']['kernel'][:, :200] = 0
  result = assert_compaction_exact(model, variables, (28, 28, 1))
  # VALID convs and dense layers fold any constant: everything zero goes.
  assert result.model.features == (17, 46, 300)
  assert result['conv1'].removed == (1, 5, 6)
  assert _count(result.variables['params']) < _count(variables['params'])
  assert result.removed_channels == 3 + 4 + 200


def test_compact_lenet5_width_multiple_pads_with_zero_channels():
  model = models.LeNet5()
  variables = jax.tree.map(np.array, fake_variables(model, (28, 28, 1)))
  p = variables['params']
  p['conv1']['kernel'][..., [1, 5, 6]] = 0  # 17 left: padded to 20 (all)
  p['conv2']['kernel'][..., 14:] = 0  # 14 left: padded to 16
  p['fc1']['kernel'][:, 38:] = 0  # 38 left: padded to 40
  result = assert_compaction_exact(
      model, variables, (28, 28, 1), width_multiple=8
  )
  assert result.model.features == (20, 16, 40)
  assert result['conv1'].kept_padding == (1, 5, 6)
  assert result['conv1'].removed == ()
  assert result['conv2'].kept_padding == (14, 15)
  assert result['conv2'].removed == tuple(range(16, 50))
  assert result['fc1'].kept_padding == (38, 39)
  # Unchanged widths are not padded; multiples already are.
  plain = models.compact(model, variables)
  assert plain.model.features == (17, 14, 38)
  assert all(l.kept_padding == () for l in plain.layers)
  assert models.compact(model, variables, width_multiple=2).model.features == (
      18,
      14,
      38,
  )


@pytest.mark.parametrize('bad', [0, -8, 2.0, True, '8'])
def test_compact_rejects_a_bad_width_multiple(bad):
  model = models.LeNet5()
  variables = fake_variables(model, (28, 28, 1))
  with pytest.raises(ValueError, match='width_multiple must be a positive int'):
    models.compact(model, variables, width_multiple=bad)


def test_compact_resnet_width_multiple_keeps_streams_exact():
  model = models.ResNet(stage_sizes=(2, 2), num_filters=8)
  shape = (16, 16, 3)
  variables = zero_random_channels(
      fake_variables(model, shape), np.random.default_rng(1), frac=0.5
  )
  result = assert_compaction_exact(model, variables, shape, width_multiple=4)
  for layer in result.layers:
    assert layer.kept % 4 == 0 or layer.kept == layer.channels, layer
  assert any(l.kept_padding for l in result.layers)


def test_compact_lenet300_100():
  model = models.LeNet300100()
  variables = zero_random_channels(
      fake_variables(model, (28, 28, 1)),
      np.random.default_rng(0),
      skip=('fc3',),
  )
  result = assert_compaction_exact(model, variables, (28, 28, 1))
  assert result.model.features[0] < 300 and result.model.features[1] < 100


@pytest.mark.parametrize(
    'variant,conv_bias', [('cifar', True), ('imagenet', False)]
)
def test_compact_vgg_random_channels(variant, conv_bias):
  model = models.VGG(
      cfg=(8, 'M', 8, 16, 'M', 16),
      variant=variant,
      hidden=(12, 12),
      conv_bias=conv_bias,
  )
  variables = zero_random_channels(
      fake_variables(model, (16, 16, 3)), np.random.default_rng(3)
  )
  result = assert_compaction_exact(model, variables, (16, 16, 3))
  assert sum(len(l.removed) for l in result.layers) > 0
  assert sum(len(l.kept_constant) for l in result.layers) > 0
  assert len(result.model.cfg) == len(model.cfg)
  assert result.model.cfg[1] == 'M'


def test_compact_vgg_padding_rule():
  """A zero channel read by a padded conv goes only if its constant is 0."""
  model = models.VGG(cfg=(4, 'M', 4))
  variables = jax.tree.map(np.array, fake_variables(model, (8, 8, 3)))
  p, s = variables['params'], variables['batch_stats']
  p['conv1']['kernel'][..., [0, 1]] = 0
  p['conv1']['bias'][[0, 1]] = 0.0
  s['bn1']['mean'][[0, 1]] = 0.0
  p['bn1']['bias'][[0, 1]] = [1.0, -1.0]  # relu -> 1 (kept), 0 (removed)
  p['conv2']['kernel'][..., [2]] = 0
  p['bn2']['bias'][2] = 2.0  # read by the classifier: folded
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  assert result['conv1'].zero == (0, 1)
  assert result['conv1'].removed == (1,)
  assert result['conv1'].kept_constant == (0,)
  assert result['conv2'].removed == (2,)
  assert result.model.cfg == (3, 'M', 3)


def test_compact_keeps_one_channel():
  model = models.VGG(cfg=(4, 'M', 4))
  variables = jax.tree.map(np.array, fake_variables(model, (8, 8, 3)))
  variables['params']['conv2']['kernel'][:] = 0
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  assert result['conv2'].kept == 1 and result['conv2'].kept_minimum == (0,)


@pytest.mark.parametrize('stem', ['cifar', 'imagenet'])
def test_compact_resnet_basic_random_channels(stem):
  model = models.ResNet(stage_sizes=(2, 2), num_filters=4, stem=stem)
  shape = (16, 16, 3)
  variables = zero_random_channels(
      fake_variables(model, shape), np.random.default_rng(1), frac=0.5
  )
  result = assert_compaction_exact(model, variables, shape)
  assert result.model.projections == (False, True)
  # Layers writing one residual stream share their channels.
  stream = [l for l in result.layers if l.space == 'stream:stem+layer1']
  assert [l.name for l in stream] == [
      'conv1',
      'layer1_block0/conv2',
      'layer1_block1/conv2',
  ]
  assert len({l.kept for l in stream}) == 1
  assert sum(len(l.kept_residual) for l in result.layers) > 0


def test_compact_resnet_residual_stream():
  """Stream channels go only when zero in every writer (stem, each block)."""
  model = models.ResNet(stage_sizes=(2, 1), num_filters=4)
  variables = jax.tree.map(np.array, fake_variables(model, (8, 8, 3)))
  p = variables['params']
  writers = [
      ('conv1', 'bn1'),
      ('layer1_block0/conv2', 'layer1_block0/bn2'),
      ('layer1_block1/conv2', 'layer1_block1/bn2'),
  ]
  for conv, bn in writers:
    _node(p, conv)['kernel'][..., [0, 1]] = 0
    _node(p, bn)['bias'][[0, 1]] = -5.0  # relu(constant) = 0 everywhere
  _node(p, 'layer1_block1/conv2')['kernel'][..., 2] = 0  # zero in one writer
  p['layer2_block0']['conv2']['kernel'][..., 3] = 0
  p['layer2_block0']['downsample_conv']['kernel'][..., 3] = 0
  p['layer2_block0']['bn2']['bias'][3] = 0.8  # constant read only by fc
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  for conv, _ in writers:
    assert result[conv].removed == (0, 1)
  assert result['layer1_block1/conv2'].kept_residual == (2,)
  assert result['layer2_block0/downsample_conv'].removed == (3,)
  assert result.model.stem_width == 2
  assert result.model.stage_widths == (2, 7)


def test_compact_removes_channels_of_zero_batch_norm_scale():
  """A zero BN scale makes its channel the constant shift whatever the
  kernel (network slimming): such channels go like zero-kernel ones, in a
  block and across a residual stream (zero scale in one writer, zero kernel
  in the others), and a nonzero kernel alone keeps its channel."""
  model = models.ResNet(stage_sizes=(2, 1), num_filters=4)
  variables = jax.tree.map(np.array, fake_variables(model, (8, 8, 3)))
  p = variables['params']
  # Block-internal channels 1 and 3: scale 0, kernel untouched; the shift
  # is positive, read by a padded 3x3 conv, so only a zero one can go.
  p['layer1_block0']['bn1']['scale'][[1, 3]] = 0.0
  p['layer1_block0']['bn1']['bias'][[1, 3]] = [-0.5, 0.7]
  # Stream channel 2: scale 0 in the stem, kernel 0 in both blocks.
  p['bn1']['scale'][2] = 0.0
  for block in ('layer1_block0', 'layer1_block1'):
    p[block]['conv2']['kernel'][..., 2] = 0
  for bn in ('bn1', 'layer1_block0/bn2', 'layer1_block1/bn2'):
    _node(p, bn)['bias'][2] = -3.0
  # Stage 2 channel 0: scale 0 in conv2's BN, read only by the classifier
  # (a constant folds there), but the projection shortcut still writes it.
  p['layer2_block0']['bn2']['scale'][0] = 0.0
  assert np.all(p['layer1_block0']['conv1']['kernel'][..., [1, 3]] != 0)
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  assert result['layer1_block0/conv1'].zero == (1, 3)
  assert result['layer1_block0/conv1'].removed == (1,)
  assert result['layer1_block0/conv1'].kept_constant == (3,)
  assert result['conv1'].zero == (2,)
  assert result['conv1'].removed == (2,)
  assert result['layer2_block0/conv2'].kept_residual == (0,)
  assert result.model.stem_width == 3


def test_coupled_scales_name_each_spaces_writers_and_empty_a_stream():
  """models.coupled_scales: every path is a batch-norm scale of the model,
  each in one set; a stream's set under rda_optax.coupled_group_lasso
  silences a stream channel in all its writers at once, and compaction then
  removes it from the stream."""
  import jax.numpy as jnp

  import rda_optax

  model = models.ResNet(stage_sizes=(2, 1), num_filters=4)
  variables = jax.tree.map(np.array, fake_variables(model, (8, 8, 3)))
  sets = models.coupled_scales(model)
  flat = flax.traverse_util.flatten_dict(variables['params'], sep='/')
  paths = [p for s in sets for p in s]
  assert len(paths) == len(set(paths))
  assert set(paths) == {p for p in flat if p.endswith('/scale')}
  stream = next(s for s in sets if 'bn1/scale' in s)
  assert stream == (
      'bn1/scale',
      'layer1_block0/bn2/scale',
      'layer1_block1/bn2/scale',
  )
  p = variables['params']
  for path in stream:
    _node(p, path.rsplit('/', 1)[0])['scale'][:] = 1.0
    _node(p, path.rsplit('/', 1)[0])['scale'][1] = 0.01  # weak in all three
    # A non-positive shift: relu(constant) = 0, so the padded 3x3 convs that
    # read the stream lose nothing when the channel goes.
    _node(p, path.rsplit('/', 1)[0])['bias'][1] = -3.0
  selected = jax.tree_util.tree_map_with_path(
      lambda path, _: path[-1].key == 'scale', p
  )
  reg = rda_optax.coupled_group_lasso(0.1, sets)
  out = reg.prox_tree(jax.tree.map(jnp.asarray, p), selected, 1.0)
  variables['params'] = jax.tree.map(np.array, out)
  for path in stream:
    scale = _node(variables['params'], path.rsplit('/', 1)[0])['scale']
    assert scale[1] == 0 and np.all(scale[[0, 2, 3]] != 0)
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  assert result['conv1'].removed == (1,)
  assert result.model.stem_width == 3


def test_compact_resnet_bottleneck_folds_through_1x1():
  model = models.ResNet(
      stage_sizes=(1, 2),
      num_filters=4,
      block_cls=models.BottleneckBlock,
      stem='imagenet',
  )
  shape = (16, 16, 3)
  variables = zero_random_channels(
      fake_variables(model, shape), np.random.default_rng(2), frac=0.5
  )
  p = variables['params']
  # conv2 -> conv3 is 1x1: a positive constant is folded, not kept.
  p['layer2_block1']['conv2']['kernel'][..., 0] = 0
  p['layer2_block1']['bn2']['bias'][0] = 1.5
  result = assert_compaction_exact(model, variables, shape)
  assert 0 in result['layer2_block1/conv2'].removed
  assert result['layer2_block1/conv2'].kept_constant == ()
  # The stem stream is read only by 1x1 convs: every zero channel goes.
  assert result['conv1'].removed == result['conv1'].zero
  assert result.model.projections == (True, True)


def test_compact_wide_resnet_inner_channels():
  model = models.WideResNet(depth=10, widen_factor=2, dropout_rate=0.3)
  variables = zero_random_channels(
      fake_variables(model, (8, 8, 3)), np.random.default_rng(4), frac=0.5
  )
  p = variables['params']
  p['group2_block0']['conv1']['kernel'][..., :3] = 0
  p['group2_block0']['bn2']['bias'][:3] = [-3.0, -3.0, 3.0]
  p['group2_block0']['bn2']['scale'][:3] = 0.1
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  layer = result['group2_block0/conv1']
  assert {0, 1} <= set(layer.removed) and 2 in layer.kept_constant
  assert result.model.block_widths[1][0] == layer.kept
  assert [l.name for l in result.layers if l.space == l.name] == [
      f'group{g}_block0/conv1' for g in (1, 2, 3)
  ]


def test_compact_wide_resnet_residual_streams():
  """Pre-activation streams: a channel zero in every writer goes when each
  reader's relu(bn(0)) is 0 or foldable; the batch norms in front go too."""
  model = models.WideResNet(depth=16, widen_factor=2)  # 2 blocks a group
  variables = jax.tree.map(np.array, fake_variables(model, (8, 8, 3)))
  p = variables['params']
  # Stem stream: channels 0, 1 silent after g1b0's bn1 (removed); channel 2
  # reads as a positive constant into the padded conv1 (kept).
  p['conv1']['kernel'][..., [0, 1, 2]] = 0
  p['group1_block0']['bn1']['scale'][[0, 1, 2]] = 0.1
  p['group1_block0']['bn1']['bias'][[0, 1, 2]] = [-5.0, -5.0, 3.0]
  # Group-2 stream: channel 3 zero in the projection block's conv2 and
  # shortcut and in block 1's conv2, silent after block 1's bn1 and the bn1
  # of group 3's first block (removed); channel 4 zero in the first two
  # writers only (kept: block 1 writes it).
  for conv in (
      'group2_block0/conv2',
      'group2_block0/shortcut_conv',
      'group2_block1/conv2',
  ):
    _node(p, conv)['kernel'][..., 3] = 0
  for conv in ('group2_block0/conv2', 'group2_block0/shortcut_conv'):
    _node(p, conv)['kernel'][..., 4] = 0
  for bn in ('group2_block1/bn1', 'group3_block0/bn1'):
    _node(p, bn)['scale'][3] = 0.1
    _node(p, bn)['bias'][3] = -5.0
  # Group-3 stream, channel 5: silent after block 1's bn1; the head reads
  # it through bn -> relu -> mean -> fc as a positive constant, folded into
  # fc's bias.
  for conv in (
      'group3_block0/conv2',
      'group3_block0/shortcut_conv',
      'group3_block1/conv2',
  ):
    _node(p, conv)['kernel'][..., 5] = 0
  p['group3_block1']['bn1']['scale'][5] = 0.1
  p['group3_block1']['bn1']['bias'][5] = -5.0
  p['bn']['bias'][5] = 2.0
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  assert result['conv1'].removed == (0, 1)
  assert result['conv1'].kept_constant == (2,)
  assert result['group2_block0/conv2'].removed == (3,)
  assert result['group2_block0/conv2'].kept_residual == (4,)
  assert result['group3_block1/conv2'].removed == (5,)
  assert result.model.widths == (14, 32, 63, 127)
  assert result.model.projections == (True, True, True)
  new = result.variables
  assert new['params']['group1_block0']['bn1']['scale'].shape == (14,)
  assert new['batch_stats']['bn']['mean'].shape == (127,)


def test_compact_unsupported_model():
  with pytest.raises(NotImplementedError, match='LeNet5, LeNet300100'):
    models.compact(flax.linen.Dense(3), {'params': {}})

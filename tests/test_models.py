"""Tests of the Flax models, the registry, FLOP counts and channel compaction.

Kept fast for a shared 2-core machine: parameter counts of the full-size
networks come from ``jax.eval_shape`` (no computation), and most forward tests
use narrow variants with variables filled by numpy instead of ``model.init``
(whose random-number code takes seconds to compile on CPU).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import flax
from flax import traverse_util

import models

# --------------------------------------------------------------------------
# Helpers.


def _abstract_variables(model, input_shape):
  x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32)
  return jax.eval_shape(functools.partial(model.init, train=False),
                        jax.random.key(0), x)


def _count(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def fake_variables(model, input_shape, seed=0):
  """Variables with ``model.init``'s structure, filled by numpy.

  Kernels are He-normal, biases and BN shifts N(0, 0.5), BN scales in
  [0.5, 1.5], running means N(0, 0.5) and variances in [0.5, 2] so that batch
  norm is far from the identity.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    shape, dtype = leaf.shape, leaf.dtype
    if name == 'kernel':
      value = rng.normal(size=shape) * math.sqrt(2 / math.prod(shape[:-1]))
    elif name in ('scale',):
      value = rng.uniform(0.5, 1.5, shape)
    elif name == 'var':
      value = rng.uniform(0.5, 2.0, shape)
    else:
      value = rng.normal(size=shape) * 0.5
    return np.asarray(value, dtype)

  return jax.tree_util.tree_map_with_path(
      fill, _abstract_variables(model, input_shape))


def _node(tree, path):
  for key in path.split('/'):
    tree = tree[key]
  return tree


def _kernel_paths(params):
  flat = traverse_util.flatten_dict(params, sep='/')
  return [k.rsplit('/', 1)[0] for k in flat if k.endswith('/kernel')]


def zero_random_channels(variables, rng, frac=0.4, skip=('fc', 'fc2', 'fc3')):
  """Zeroes a random subset of the output channels of every kernel."""
  variables = jax.tree.map(np.array, variables)
  for path in _kernel_paths(variables['params']):
    if path in skip:
      continue
    kernel = _node(variables['params'], path)['kernel']
    kernel[..., rng.random(kernel.shape[-1]) < frac] = 0
  return variables


def _forward(model, variables, x):
  return np.asarray(jax.jit(functools.partial(model.apply, train=False))(
      variables, x))


def assert_compaction_exact(model, variables, input_shape, seed=1):
  """Compacts and checks eval-mode equality; returns the result."""
  result = models.compact(model, variables)
  x = jax.random.normal(jax.random.key(seed), (3,) + tuple(input_shape))
  before = _forward(model, variables, x)
  after = _forward(result.model, result.variables, x)
  np.testing.assert_allclose(after, before, rtol=1e-4,
                             atol=1e-4 * np.abs(before).max())
  assert type(result.model) is type(model)
  # The report is consistent with the variables.
  for layer in result.layers:
    kernel = _node(result.variables['params'], layer.name)['kernel']
    assert kernel.shape[-1] == layer.kept
    assert set(layer.removed) <= set(layer.zero)
    assert layer.channels - len(layer.removed) == layer.kept
    assert not set(layer.removed) & set(layer.kept_residual)
    assert not set(layer.removed) & set(layer.kept_constant)
  return result


# --------------------------------------------------------------------------
# Parameter counts (reference figures) and registry.

PARAMETER_COUNTS = [
    # name, create kwargs, expected trainable parameters.
    ('lenet5', {}, 431_080),
    ('lenet300_100', {}, 266_610),
    ('resnet18', {}, 11_173_962),                      # CIFAR stem, 10 classes
    ('resnet8', {}, 78_042),                            # He et al.'s 6n+2, n=1
    ('resnet20', {}, 272_474),                          # He et al.'s 0.27M
    ('resnet56', {}, 855_770),                          # He et al.'s 0.85M
    ('resnet18', {'stem': 'imagenet'}, 11_689_512),    # torchvision resnet18
    ('resnet34_imagenet', {}, 21_797_672),             # torchvision resnet34
    ('resnet50_imagenet', {}, 25_557_032),             # torchvision resnet50
    ('vgg16', {}, 14_728_266),                         # CIFAR VGG-16bn
    ('vgg11', {'variant': 'imagenet'}, 132_868_840),   # torchvision vgg11_bn
    ('vgg13_imagenet', {}, 133_053_736),               # torchvision vgg13_bn
    ('vgg16_imagenet', {}, 138_365_992),               # torchvision vgg16_bn
    ('vgg19_imagenet', {}, 143_678_248),               # torchvision vgg19_bn
    ('wrn28_10', {}, 36_479_194),                      # Zagoruyko's WRN-28-10
    # CIFAR forms of the other depths (kuangliu/pytorch-cifar layouts).
    ('resnet34', {}, 21_282_122),
    ('resnet50', {}, 23_520_842),
    ('vgg11', {}, 9_231_114),
    ('vgg13', {}, 9_416_010),
    ('vgg19', {}, 20_040_522),
]


@pytest.mark.parametrize('name,kwargs,expected', PARAMETER_COUNTS)
def test_parameter_counts(name, kwargs, expected):
  model = models.create(name, **kwargs)
  variables = _abstract_variables(model,
                                  models.default_input_shape(name, **kwargs))
  assert _count(variables['params']) == expected


def test_wrn_count_breakdown():
  # 36,479,194 = conv kernels 36,454,832 + BN 17,952 + fc 6,410.
  variables = _abstract_variables(models.create('wrn28_10'), (32, 32, 3))
  flat = traverse_util.flatten_dict(variables['params'], sep='/')
  conv = sum(math.prod(v.shape) for k, v in flat.items()
             if k.endswith('kernel') and not k.startswith('fc'))
  bn = sum(math.prod(v.shape) for k, v in flat.items()
           if k.rsplit('/', 2)[-2].startswith('bn'))
  assert (conv, bn) == (36_454_832, 17_952)
  assert 'batch_stats' in variables and _count(variables['batch_stats']) == bn


def test_vgg16_cifar_layout():
  variables = _abstract_variables(models.create('vgg16'), (32, 32, 3))
  params = variables['params']
  assert sorted(k for k in params if k.startswith('conv')) == sorted(
      f'conv{k}' for k in range(1, 14))
  assert len([k for k in params if k.startswith('bn')]) == 13
  assert params['fc']['kernel'].shape == (512, 10)


def test_registry_docstring_examples():
  import doctest  # pylint: disable=import-outside-toplevel
  from models import registry  # pylint: disable=import-outside-toplevel
  result = doctest.testmod(registry, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0


def test_default_input_shapes():
  assert models.default_input_shape('lenet5') == (28, 28, 1)
  assert models.default_input_shape('lenet300_100') == (28, 28, 1)
  assert models.default_input_shape('resnet18') == (32, 32, 3)
  assert models.default_input_shape('resnet18', stem='imagenet') == (224, 224, 3)
  assert models.default_input_shape('resnet50_imagenet') == (224, 224, 3)
  assert models.default_input_shape('vgg16', variant='imagenet') == (224, 224,
                                                                     3)
  assert models.default_input_shape('wrn28_10') == (32, 32, 3)
  assert models.default_input_shape('resnet18', dataset='mnist') == (28, 28, 1)
  assert models.default_input_shape('resnet18', 'CIFAR-100') == (32, 32, 3)


def test_registry_names_and_num_classes():
  for name in ('lenet5', 'lenet300_100', 'resnet18', 'resnet34', 'resnet50',
               'vgg11', 'vgg13', 'vgg16', 'vgg19', 'wrn28_10'):
    assert name in models.names() and name in models.REGISTRY
  assert models.create('resnet18').num_classes == 10
  assert models.create('resnet18_imagenet').num_classes == 1000
  assert models.create('resnet18', stem='imagenet').num_classes == 1000
  assert models.create('vgg16', num_classes=100).num_classes == 100


def test_registry_errors():
  with pytest.raises(ValueError, match='Valid names: lenet5, lenet300_100'):
    models.create('resnet19')
  with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
    models.create('resnet_18')
  with pytest.raises(TypeError, match=r"unexpected argument 'dropout'.*"
                     r"Accepted: num_classes, stem"):
    models.create('resnet18', dropout=0.5)
  with pytest.raises(TypeError, match='fixes stage_sizes'):
    models.create('resnet18', stage_sizes=(1, 1))
  with pytest.raises(ValueError, match="stem must be one of"):
    models.create('resnet18', stem='mnist')
  with pytest.raises(ValueError, match="variant must be one of"):
    models.create('vgg16', variant='tiny')
  with pytest.raises(ValueError, match='Unknown dataset hint'):
    models.default_input_shape('resnet18', dataset='svhn')
  with pytest.raises(ValueError, match='Valid names'):
    models.default_input_shape('alexnet')


# --------------------------------------------------------------------------
# Forward passes and the calling convention.


@pytest.mark.parametrize('name,kwargs', [
    ('lenet5', {}), ('lenet300_100', {}), ('resnet18', {}), ('resnet34', {}),
    ('resnet50', {}), ('resnet50_imagenet', {}), ('vgg11', {}), ('vgg19', {}),
    ('vgg16_imagenet', {}), ('wrn28_10', {'dropout_rate': 0.3}),
])
def test_forward_shapes_full_size(name, kwargs):
  """Shapes of the full networks at their usual input size (traced only)."""
  model = models.create(name, num_classes=7, **kwargs)
  shape = models.default_input_shape(name, **kwargs)
  variables = _abstract_variables(model, shape)
  x = jax.ShapeDtypeStruct((2,) + shape, jnp.float32)
  logits, updates = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats'],
                               rngs={'dropout': jax.random.key(0)}),
      variables, x)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert set(updates) == ({'batch_stats'} if 'batch_stats' in variables
                          else set())


def test_lenet_init_apply_and_kernel_init():
  """Real init with the RDA initialization (variance s / fan_in, uniform)."""
  s = 10.0
  init = jax.nn.initializers.variance_scaling(s, 'fan_in', 'uniform')
  model = models.create('lenet5', kernel_init=init)
  x = jnp.ones((2, 28, 28, 1))
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), x)
  assert set(variables) == {'params'}
  assert list(variables['params']) == ['conv1', 'conv2', 'fc1', 'fc2']
  fc1 = np.asarray(variables['params']['fc1']['kernel'])
  bound = math.sqrt(3 * s / 800)
  assert np.abs(fc1).max() <= bound and np.abs(fc1).max() > 0.9 * bound
  assert abs(fc1.std() - math.sqrt(s / 800)) < 0.05 * math.sqrt(s / 800)
  assert _forward(model, variables, x).shape == (2, 10)
  mlp = models.create('lenet300_100')
  mlp_vars = fake_variables(mlp, (28, 28, 1))
  flat = jnp.reshape(x, (2, 784))
  np.testing.assert_allclose(_forward(mlp, mlp_vars, x),
                             _forward(mlp, mlp_vars, flat), rtol=1e-6)


def test_default_kernel_init_is_he():
  for name in ('lenet5', 'lenet300_100', 'resnet18', 'vgg16', 'wrn28_10'):
    assert models.create(name).kernel_init is models.default_kernel_init
  kernel = models.default_kernel_init(jax.random.key(0), (3, 3, 64, 128))
  np.testing.assert_allclose(kernel.std(), math.sqrt(2 / (9 * 64)), rtol=0.02)
  abstract = _abstract_variables(models.create('resnet18'), (32, 32, 3))
  assert set(abstract['params']['conv1']) == {'kernel'}   # no conv bias
  assert set(abstract['params']['fc']) == {'kernel', 'bias'}
  assert abstract['batch_stats']['bn1']['mean'].shape == (64,)


def test_resnet_train_step_updates_batch_stats():
  model = models.ResNet(stage_sizes=(1, 1), num_filters=4)
  variables = fake_variables(model, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  logits, updates = jax.jit(functools.partial(
      model.apply, train=True, mutable=['batch_stats']))(variables, x)
  assert logits.shape == (4, 10)
  old = variables['batch_stats']['layer2_block0']['downsample_bn']['mean']
  new = updates['batch_stats']['layer2_block0']['downsample_bn']['mean']
  assert old.shape == new.shape and not np.allclose(old, new)


def _rbg(seed):
  # Cheaper to compile than the default threefry keys; dropout takes any.
  return jax.random.key(seed, impl='rbg')


def test_dropout_uses_dropout_rng():
  model = models.VGG(cfg=(4, 'M', 4), variant='imagenet', hidden=(16, 16),
                     num_classes=3)
  variables = fake_variables(model, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  train = jax.jit(lambda key: model.apply(variables, x, train=True,
                                          mutable=['batch_stats'],
                                          rngs={'dropout': key})[0])
  assert not np.allclose(train(_rbg(1)), train(_rbg(2)))
  np.testing.assert_array_equal(_forward(model, variables, x),
                                _forward(model, variables, x))


def test_wrn_dropout_option():
  assert models.create('wrn28_10').dropout_rate == 0.0
  wrn = models.WideResNet(depth=10, widen_factor=1, dropout_rate=0.5)
  variables = fake_variables(wrn, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  out = jax.jit(lambda key: wrn.apply(
      variables, x, train=True, mutable=['batch_stats'],
      rngs={'dropout': key})[0])
  assert not np.allclose(out(_rbg(1)), out(_rbg(2)))


def test_adaptive_avg_pool():
  x = jnp.arange(2 * 14 * 14 * 3, dtype=jnp.float32).reshape(2, 14, 14, 3)
  expected = x.reshape(2, 7, 2, 7, 2, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(models.adaptive_avg_pool(x, (7, 7)), expected)
  one = jnp.ones((1, 1, 1, 2))
  assert models.adaptive_avg_pool(one, (7, 7)).shape == (1, 7, 7, 2)
  # torch: 5 -> 3 averages rows [0:2], [1:4], [3:5].
  y = jnp.arange(5.0).reshape(1, 5, 1, 1) * jnp.ones((1, 5, 3, 1))
  pooled = models.adaptive_avg_pool(y, (3, 3))[0, :, 0, 0]
  np.testing.assert_allclose(pooled, [0.5, 2.0, 3.5])


# --------------------------------------------------------------------------
# Batch norm across devices and half precision.


@pytest.mark.parametrize('make', [
    lambda **kw: models.ResNet(stage_sizes=(1, 1), num_filters=4, **kw),
    lambda **kw: models.VGG(cfg=(4, 'M', 8), **kw),
    lambda **kw: models.WideResNet(depth=10, widen_factor=1, **kw),
])
def test_axis_name_batch_norm_under_vmap(make):
  """Per-shard BN with axis_name equals BN over the whole batch."""
  model, synced = make(), make(axis_name='batch')
  variables = fake_variables(model, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (8, 8, 8, 3))
  full, full_upd = jax.jit(functools.partial(
      model.apply, train=True, mutable=['batch_stats']))(variables, x)
  shards, shard_upd = jax.jit(jax.vmap(
      lambda xs: synced.apply(variables, xs, train=True,
                              mutable=['batch_stats']),
      axis_name='batch'))(x.reshape(2, 4, 8, 8, 3))
  np.testing.assert_allclose(shards.reshape(8, -1), full, rtol=1e-4, atol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a[0], b, rtol=1e-4,
                                                       atol=1e-5),
               shard_upd, full_upd)
  jax.tree.map(lambda a: np.testing.assert_allclose(a[0], a[1]), shard_upd)


def test_bfloat16_compute_keeps_float32_params():
  assert models.create('resnet18', dtype=jnp.bfloat16).dtype == jnp.bfloat16
  model = models.ResNet(stage_sizes=(1, 1), num_filters=4, dtype=jnp.bfloat16)
  abstract = _abstract_variables(model, (8, 8, 3))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(abstract))
  variables = fake_variables(model, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  logits, updates = jax.jit(functools.partial(
      model.apply, train=True, mutable=['batch_stats', 'intermediates'],
      capture_intermediates=True))(variables, x)
  inter = updates['intermediates']
  assert inter['conv1']['__call__'][0].dtype == jnp.bfloat16
  assert inter['layer1_block0']['conv2']['__call__'][0].dtype == jnp.bfloat16
  assert logits.dtype == jnp.float32
  assert all(leaf.dtype == jnp.float32
             for leaf in jax.tree.leaves(updates['batch_stats']))
  reference = model.clone(dtype=jnp.float32)
  np.testing.assert_allclose(_forward(model, variables, x),
                             _forward(reference, variables, x),
                             rtol=0.1, atol=0.1)


# --------------------------------------------------------------------------
# FLOP counts.


def test_flops_lenet5_hand_computed():
  model = models.create('lenet5')
  variables = fake_variables(model, (28, 28, 1))
  report = models.flops(model, variables, (28, 28, 1))
  # conv1: 24x24 outputs x 5*5*1*20; conv2: 8x8 x 5*5*20*50; fc1: 800*500.
  expected = {'conv1': 24 * 24 * 500, 'conv2': 8 * 8 * 25_000,
              'fc1': 800 * 500, 'fc2': 500 * 10}
  assert [l.name for l in report.layers] == list(expected)
  assert {l.name: l.dense_macs for l in report.layers} == expected
  assert report.dense_total == 2_293_000 == report.sparse_total
  assert report['conv2'].output_shape == (8, 8, 50)

  params = jax.tree.map(np.array, variables['params'])
  params['conv1']['kernel'][..., :5] = 0          # 5 of 20 filters: 125 zeros
  params['conv2']['kernel'][0, 0] = 0             # 20*50 = 1000 zeros
  params['fc1']['kernel'][:100] = 0               # 100*500 zeros
  sparse = models.flops(model, params, (28, 28, 1))   # params alone work too
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
    macs = hw * hw * 9 * c_in * c + 3 * hw * hw * 9 * c * c   # 3x3 convs
    if c_in != c:
      macs += hw * hw * c_in * c                              # projection
    return macs

  expected = (32 * 32 * 9 * 3 * 64 + stage(32, 64, 64) + stage(16, 64, 128)
              + stage(8, 128, 256) + stage(4, 256, 512) + 512 * 10)
  assert report.dense_total == expected == 555_422_720
  assert report['layer2_block0/downsample_conv'].dense_macs == 16 * 16 * 64 * 128
  assert len(report.layers) == 1 + 16 + 3 + 1


def test_flops_rejects_mismatched_variables():
  model = models.create('lenet5')
  variables = fake_variables(model, (28, 28, 1))
  with pytest.raises(ValueError, match='fc1: kernel has shape'):
    models.flops(model, variables, (32, 32, 1))


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


def test_compact_lenet300_100():
  model = models.LeNet300100()
  variables = zero_random_channels(fake_variables(model, (28, 28, 1)),
                                   np.random.default_rng(0), skip=('fc3',))
  result = assert_compaction_exact(model, variables, (28, 28, 1))
  assert result.model.features[0] < 300 and result.model.features[1] < 100


@pytest.mark.parametrize('variant,conv_bias', [('cifar', True),
                                               ('imagenet', False)])
def test_compact_vgg_random_channels(variant, conv_bias):
  model = models.VGG(cfg=(8, 'M', 8, 16, 'M', 16), variant=variant,
                     hidden=(12, 12), conv_bias=conv_bias)
  variables = zero_random_channels(fake_variables(model, (16, 16, 3)),
                                   np.random.default_rng(3))
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
  p['bn1']['bias'][[0, 1]] = [1.0, -1.0]   # relu -> 1 (kept), 0 (removed)
  p['conv2']['kernel'][..., [2]] = 0
  p['bn2']['bias'][2] = 2.0                # read by the classifier: folded
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
  variables = zero_random_channels(fake_variables(model, shape),
                                   np.random.default_rng(1), frac=0.5)
  result = assert_compaction_exact(model, variables, shape)
  assert result.model.projections == (False, True)
  # Layers writing one residual stream share their channels.
  stream = [l for l in result.layers if l.space == 'stream:stem+layer1']
  assert [l.name for l in stream] == [
      'conv1', 'layer1_block0/conv2', 'layer1_block1/conv2']
  assert len({l.kept for l in stream}) == 1
  assert sum(len(l.kept_residual) for l in result.layers) > 0


def test_compact_resnet_residual_stream():
  """Stream channels go only when zero in every writer (stem, each block)."""
  model = models.ResNet(stage_sizes=(2, 1), num_filters=4)
  variables = jax.tree.map(np.array, fake_variables(model, (8, 8, 3)))
  p = variables['params']
  writers = [('conv1', 'bn1'), ('layer1_block0/conv2', 'layer1_block0/bn2'),
             ('layer1_block1/conv2', 'layer1_block1/bn2')]
  for conv, bn in writers:
    _node(p, conv)['kernel'][..., [0, 1]] = 0
    _node(p, bn)['bias'][[0, 1]] = -5.0       # relu(constant) = 0 everywhere
  _node(p, 'layer1_block1/conv2')['kernel'][..., 2] = 0   # zero in one writer
  p['layer2_block0']['conv2']['kernel'][..., 3] = 0
  p['layer2_block0']['downsample_conv']['kernel'][..., 3] = 0
  p['layer2_block0']['bn2']['bias'][3] = 0.8   # constant read only by fc
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  for conv, _ in writers:
    assert result[conv].removed == (0, 1)
  assert result['layer1_block1/conv2'].kept_residual == (2,)
  assert result['layer2_block0/downsample_conv'].removed == (3,)
  assert result.model.stem_width == 2
  assert result.model.stage_widths == (2, 7)


def test_compact_resnet_bottleneck_folds_through_1x1():
  model = models.ResNet(stage_sizes=(1, 2), num_filters=4,
                        block_cls=models.BottleneckBlock, stem='imagenet')
  shape = (16, 16, 3)
  variables = zero_random_channels(fake_variables(model, shape),
                                   np.random.default_rng(2), frac=0.5)
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
  variables = zero_random_channels(fake_variables(model, (8, 8, 3)),
                                   np.random.default_rng(4), frac=0.5)
  p = variables['params']
  p['group2_block0']['conv1']['kernel'][..., :3] = 0
  p['group2_block0']['bn2']['bias'][:3] = [-3.0, -3.0, 3.0]
  p['group2_block0']['bn2']['scale'][:3] = 0.1
  result = assert_compaction_exact(model, variables, (8, 8, 3))
  layer = result['group2_block0/conv1']
  assert {0, 1} <= set(layer.removed) and 2 in layer.kept_constant
  assert result.model.block_widths[1][0] == layer.kept
  assert [l.name for l in result.layers] == [
      f'group{g}_block0/conv1' for g in (1, 2, 3)]


def test_compact_unsupported_model():
  with pytest.raises(NotImplementedError, match='LeNet5, LeNet300100'):
    models.compact(flax.linen.Dense(3), {'params': {}})

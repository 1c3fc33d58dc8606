"""The networks: forward passes, the calling convention, batch norm across
devices and half precision (models/lenet.py, resnet.py, vgg.py,
wide_resnet.py, layers.py)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import models
from _models_helpers import _abstract_variables, fake_variables, _forward

# --------------------------------------------------------------------------
# Forward passes and the calling convention.


@pytest.mark.parametrize(
    'name,kwargs',
    [
        ('lenet5', {}),
        ('lenet300_100', {}),
        ('resnet18', {}),
        ('resnet34', {}),
        ('resnet50', {}),
        ('resnet50_imagenet', {}),
        ('vgg11', {}),
        ('vgg19', {}),
        ('vgg16_imagenet', {}),
        ('wrn28_10', {'dropout_rate': 0.3}),
    ],
)
def test_forward_shapes_full_size(name, kwargs):
  """Shapes of the full networks at their usual input size (traced only)."""
  model = models.create(name, num_classes=7, **kwargs)
  shape = models.default_input_shape(name, **kwargs)
  variables = _abstract_variables(model, shape)
  x = jax.ShapeDtypeStruct((2,) + shape, jnp.float32)
  logits, updates = jax.eval_shape(
      lambda v, x: model.apply(
          v,
          x,
          train=True,
          mutable=['batch_stats'],
          rngs={'dropout': jax.random.key(0)},
      ),
      variables,
      x,
  )
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert set(updates) == (
      {'batch_stats'} if 'batch_stats' in variables else set()
  )


def test_lenet_init_apply_and_kernel_init():
  """Real init with the RDA initialization (variance s / fan_in, uniform)."""
  s = 10.0
  init = jax.nn.initializers.variance_scaling(s, 'fan_in', 'uniform')
  model = models.create('lenet5', kernel_init=init)
  x = jnp.ones((2, 28, 28, 1))
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), x
  )
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
  np.testing.assert_allclose(
      _forward(mlp, mlp_vars, x), _forward(mlp, mlp_vars, flat), rtol=1e-6
  )


def test_default_kernel_init_is_he():
  for name in ('lenet5', 'lenet300_100', 'resnet18', 'vgg16', 'wrn28_10'):
    assert models.create(name).kernel_init is models.default_kernel_init
  kernel = models.default_kernel_init(jax.random.key(0), (3, 3, 64, 128))
  np.testing.assert_allclose(kernel.std(), math.sqrt(2 / (9 * 64)), rtol=0.02)
  abstract = _abstract_variables(models.create('resnet18'), (32, 32, 3))
  assert set(abstract['params']['conv1']) == {'kernel'}  # no conv bias
  assert set(abstract['params']['fc']) == {'kernel', 'bias'}
  assert abstract['batch_stats']['bn1']['mean'].shape == (64,)


def test_resnet_train_step_updates_batch_stats():
  model = models.ResNet(stage_sizes=(1, 1), num_filters=4)
  variables = fake_variables(model, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  logits, updates = jax.jit(
      functools.partial(model.apply, train=True, mutable=['batch_stats'])
  )(variables, x)
  assert logits.shape == (4, 10)
  old = variables['batch_stats']['layer2_block0']['downsample_bn']['mean']
  new = updates['batch_stats']['layer2_block0']['downsample_bn']['mean']
  assert old.shape == new.shape and not np.allclose(old, new)


def _rbg(seed):
  # Cheaper to compile than the default threefry keys; dropout takes any.
  return jax.random.key(seed, impl='rbg')


def test_dropout_uses_dropout_rng():
  model = models.VGG(
      cfg=(4, 'M', 4), variant='imagenet', hidden=(16, 16), num_classes=3
  )
  variables = fake_variables(model, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  train = jax.jit(
      lambda key: model.apply(
          variables,
          x,
          train=True,
          mutable=['batch_stats'],
          rngs={'dropout': key},
      )[0]
  )
  assert not np.allclose(train(_rbg(1)), train(_rbg(2)))
  np.testing.assert_array_equal(
      _forward(model, variables, x), _forward(model, variables, x)
  )


def test_wrn_dropout_option():
  assert models.create('wrn28_10').dropout_rate == 0.0
  wrn = models.WideResNet(depth=10, widen_factor=1, dropout_rate=0.5)
  variables = fake_variables(wrn, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  out = jax.jit(
      lambda key: wrn.apply(
          variables,
          x,
          train=True,
          mutable=['batch_stats'],
          rngs={'dropout': key},
      )[0]
  )
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


@pytest.mark.parametrize(
    'make',
    [
        lambda **kw: models.ResNet(stage_sizes=(1, 1), num_filters=4, **kw),
        lambda **kw: models.VGG(cfg=(4, 'M', 8), **kw),
        lambda **kw: models.WideResNet(depth=10, widen_factor=1, **kw),
    ],
)
def test_axis_name_batch_norm_under_vmap(make):
  """Per-shard BN with axis_name equals BN over the whole batch."""
  model, synced = make(), make(axis_name='batch')
  variables = fake_variables(model, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (8, 8, 8, 3))
  full, full_upd = jax.jit(
      functools.partial(model.apply, train=True, mutable=['batch_stats'])
  )(variables, x)
  shards, shard_upd = jax.jit(
      jax.vmap(
          lambda xs: synced.apply(
              variables, xs, train=True, mutable=['batch_stats']
          ),
          axis_name='batch',
      )
  )(x.reshape(2, 4, 8, 8, 3))
  np.testing.assert_allclose(shards.reshape(8, -1), full, rtol=1e-4, atol=1e-4)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a[0], b, rtol=1e-4, atol=1e-5),
      shard_upd,
      full_upd,
  )
  jax.tree.map(lambda a: np.testing.assert_allclose(a[0], a[1]), shard_upd)


def test_bfloat16_compute_keeps_float32_params():
  assert models.create('resnet18', dtype=jnp.bfloat16).dtype == jnp.bfloat16
  model = models.ResNet(stage_sizes=(1, 1), num_filters=4, dtype=jnp.bfloat16)
  abstract = _abstract_variables(model, (8, 8, 3))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(abstract))
  variables = fake_variables(model, (8, 8, 3))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  logits, updates = jax.jit(
      functools.partial(
          model.apply,
          train=True,
          mutable=['batch_stats', 'intermediates'],
          capture_intermediates=True,
      )
  )(variables, x)
  inter = updates['intermediates']
  assert inter['conv1']['__call__'][0].dtype == jnp.bfloat16
  assert inter['layer1_block0']['conv2']['__call__'][0].dtype == jnp.bfloat16
  assert logits.dtype == jnp.float32
  assert all(
      leaf.dtype == jnp.float32
      for leaf in jax.tree.leaves(updates['batch_stats'])
  )
  reference = model.clone(dtype=jnp.float32)
  np.testing.assert_allclose(
      _forward(model, variables, x),
      _forward(reference, variables, x),
      rtol=0.1,
      atol=0.1,
  )

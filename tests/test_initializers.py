"""Tests for rda_optax.initializers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rda_optax.initializers import rda_uniform


@pytest.mark.parametrize(
    'shape, fan_in',
    [((3, 3, 16, 32), 144), ((256, 10), 256), ((5, 5, 1, 6), 25)],
)
@pytest.mark.parametrize('scale', [1.0, 10.0])
def test_bounds_are_exactly_sqrt_3s_over_fan_in(shape, fan_in, scale):
  w = np.asarray(rda_uniform(scale)(jax.random.key(0), shape))
  bound = math.sqrt(3.0 * scale / fan_in)
  assert np.all(np.abs(w) <= bound)
  # Enough samples that both ends of the interval are approached.
  assert w.max() > 0.95 * bound and w.min() < -0.95 * bound


def test_matches_variance_scaling_exactly():
  key = jax.random.key(3)
  ours = rda_uniform(7.0)(key, (3, 3, 8, 4))
  ref = jax.nn.initializers.variance_scaling(7.0, 'fan_in', 'uniform')(
      key, (3, 3, 8, 4)
  )
  np.testing.assert_array_equal(ours, ref)


def test_empirical_variance_is_scale_over_fan_in():
  scale, fan_in = 5.0, 512
  w = np.asarray(
      rda_uniform(scale)(jax.random.key(1), (fan_in, 2048)), np.float64
  )
  assert abs(w.mean()) < 0.01 * math.sqrt(scale / fan_in)
  np.testing.assert_allclose(w.var(), scale / fan_in, rtol=0.02)


def test_dtype():
  key = jax.random.key(0)
  assert rda_uniform()(key, (4, 3)).dtype == jnp.float32
  assert rda_uniform(dtype=jnp.bfloat16)(key, (4, 3)).dtype == jnp.bfloat16
  assert rda_uniform()(key, (4, 3), jnp.bfloat16).dtype == jnp.bfloat16


def test_custom_axes():
  # A kernel stored (out, in): fan-in is axis 1.
  w = rda_uniform(3.0, in_axis=1, out_axis=0)(jax.random.key(0), (10, 300))
  assert float(jnp.max(jnp.abs(w))) <= math.sqrt(3 * 3.0 / 300)


@pytest.mark.parametrize(
    'scale', [0.0, -1.0, float('nan'), float('inf'), 'big', None]
)
def test_invalid_scale(scale):
  with pytest.raises(ValueError, match='scale'):
    rda_uniform(scale)


def test_flax_dense_and_conv():
  nn = pytest.importorskip('flax.linen')
  scale = 10.0
  dense = nn.Dense(8, kernel_init=rda_uniform(scale))
  k = dense.init(jax.random.key(0), jnp.ones((1, 50)))['params']['kernel']
  assert k.shape == (50, 8)
  assert float(jnp.max(jnp.abs(k))) <= math.sqrt(3 * scale / 50)
  conv = nn.Conv(6, (3, 3), kernel_init=rda_uniform(scale))
  k = conv.init(jax.random.key(0), jnp.ones((1, 8, 8, 5)))['params']['kernel']
  assert k.shape == (3, 3, 5, 6)
  bound = math.sqrt(3 * scale / 45)
  assert float(jnp.max(jnp.abs(k))) <= bound
  assert float(jnp.max(jnp.abs(k))) > 0.8 * bound


def test_docstring_examples():
  import doctest
  from rda_optax import initializers

  result = doctest.testmod(initializers)
  assert result.failed == 0 and result.attempted > 0

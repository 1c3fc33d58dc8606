"""Arrays and trees for the tests of the sparse file format (test_sparse_io,
test_sparse_format, test_sparse_codes, test_nm_layout)."""

import jax.numpy as jnp
import numpy as np

import rda_optax


def sparse_array(shape, density, dtype=np.float32, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=shape).astype(dtype)
  x[rng.random(shape) >= density] = 0
  return x


def same_bits(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return (
      a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
  )


def mlp(density, seed=0):
  return {
      'fc1': {
          'kernel': sparse_array((784, 300), density, seed=seed),
          'bias': sparse_array((300,), 1.0, seed=seed + 1),
      },
      'fc2': {
          'kernel': sparse_array((300, 100), density, seed=seed + 2),
          'bias': np.zeros(100, np.float32),
      },
  }


def nm_array(shape, n, m, dtype=np.float32, seed=0):
  """A random array projected to N:M along axis -2, with -0.0, a NaN and
  groups holding fewer than N nonzeros."""
  x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
  x = np.asarray(rda_optax.nm_constraint(n, m).prox(jnp.asarray(x), 1.0))
  x = x.astype(dtype)
  kept = np.flatnonzero(x)
  x.reshape(-1)[kept[:3]] = 0  # Groups with fewer nonzeros.
  x.reshape(-1)[kept[5]] = -0.0  # A value to keep, not a zero.
  if np.issubdtype(dtype, np.floating) or dtype == jnp.bfloat16:
    x.reshape(-1)[kept[7]] = np.nan
  return x

"""Shared helpers of the model tests (test_models_*.py).

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
from flax import traverse_util

import models


def _abstract_variables(model, input_shape):
  x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32)
  return jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), x
  )


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
      fill, _abstract_variables(model, input_shape)
  )


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
  return np.asarray(
      jax.jit(functools.partial(model.apply, train=False))(variables, x)
  )


def assert_compaction_exact(model, variables, input_shape, seed=1, **kwargs):
  """Compacts and checks eval-mode equality; returns the result."""
  result = models.compact(model, variables, **kwargs)
  x = jax.random.normal(jax.random.key(seed), (3,) + tuple(input_shape))
  before = _forward(model, variables, x)
  after = _forward(result.model, result.variables, x)
  np.testing.assert_allclose(
      after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max()
  )
  assert type(result.model) is type(model)
  # The report is consistent with the variables.
  for layer in result.layers:
    kernel = _node(result.variables['params'], layer.name)['kernel']
    assert kernel.shape[-1] == layer.kept
    assert set(layer.removed) <= set(layer.zero)
    assert layer.channels - len(layer.removed) == layer.kept
    assert not set(layer.removed) & set(layer.kept_residual)
    assert not set(layer.removed) & set(layer.kept_constant)
    assert not set(layer.removed) & set(layer.kept_padding)
  return result

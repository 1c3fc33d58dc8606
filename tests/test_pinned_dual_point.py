"""The dual point recomputed, never stored: ``rda.pin`` and
``rda.pinned_dual_point``, ``kth_smallest(compute=...)`` and
``SparsityConstraint.prox_computed``, as ``rmda(sparsity_constraint)``
uses them: the same zeros as the cold exact search on the values written
out, ties and bfloat16 included."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from rda_optax import threshold
from rda_optax.rda import pin
from rda_optax.rda import pinned_dual_point
from rda_optax.rda import opaque_zero

# Bit-for-bit identities across programs, which only XLA's optimizing
# backend could break: compiled at its default level (tests/conftest.py).
pytestmark = pytest.mark.xla_default

SHAPES = [(3, 3, 4, 8), (40, 10), (7,), (2, 600)]  # 2,783 entries: passes


def _operands(seed, dtype=jnp.float32, ties=False):
  rng = np.random.default_rng(seed)
  ops = []
  for shape in SHAPES:
    w0 = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    if ties:  # Many entries of one magnitude, and exact zeros.
      w0 = np.where(rng.random(shape) < 0.3, 0.5, w0).astype(np.float32)
      g = np.where(w0 == 0.5, 0.0, g).astype(np.float32)
      w0[..., :1] = 0.0
      g[..., :1] = 0.0
    ops.append((jnp.asarray(w0, dtype), jnp.asarray(g)))
  return ops


def _numpy_dual_point(w0, g, inv_beta):
  """``w0 − G·(1/β)``, each operation rounded on its own (numpy does not
  contract into fused multiply-adds)."""
  w0 = np.asarray(w0, np.float32)
  prod = (np.asarray(g, np.float32) * np.float32(inv_beta)).astype(np.float32)
  return (w0 - prod).astype(np.float32)


def _cold_zeros(values, k):
  """The k smallest magnitudes, ties by position: a stable argsort."""
  flat = np.concatenate([np.abs(v).ravel() for v in values])
  flat = np.where(flat < np.finfo(np.float32).tiny, 0.0, flat)
  mask = np.zeros(flat.size, bool)
  mask[np.argsort(flat, kind='stable')[:k]] = True
  return mask


def test_pin_is_the_identity():
  x = jnp.asarray([1.5, -0.0, np.inf, 3e-39], jnp.float32)
  zero = opaque_zero(jnp.int32(5))
  assert zero.dtype == jnp.uint32 and int(zero) == 0
  got = jax.jit(lambda x, c: pin(x, opaque_zero(c)))(x, jnp.int32(5))
  np.testing.assert_array_equal(
      np.asarray(got).view(np.uint32), np.asarray(x).view(np.uint32)
  )
  assert pin(jnp.ones(2, jnp.bfloat16), zero).dtype == jnp.bfloat16


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('ties', [False, True])
def test_the_search_on_computed_values_is_the_cold_exact_search(dtype, ties):
  """kth_smallest(compute=pinned_dual_point) on (w0, G) finds the split of
  the values written out (numpy's, rounded op by op): the masks, computed
  again in another loop, zero exactly those of a stable argsort."""
  ops = _operands(0, dtype, ties)
  inv_beta = np.float32(1 / np.sqrt(7.0))
  want_values = [_numpy_dual_point(w0, g, inv_beta) for w0, g in ops]
  n = sum(v.size for v in want_values)

  @jax.jit
  def project(ops, k, state, count):
    args = (jnp.float32(inv_beta),)
    zero = opaque_zero(count)
    split, state = threshold.kth_smallest(
        ops,
        k,
        state=state,
        magnitude=True,
        compute=pinned_dual_point,
        args=args,
        zero=zero,
        gather=256,
    )
    values = [pinned_dual_point(o, args, zero) for o in ops]
    masks = threshold.smallest_masks(values, split, magnitude=True)
    return values, masks, state

  state = threshold.threshold_state()
  for k in (round(0.9 * n), round(0.9 * n) + 3, 1, n):
    values, masks, state = project(ops, k, state, jnp.int32(k))
    for got, want in zip(values, want_values):
      np.testing.assert_array_equal(np.asarray(got), want)
    got = np.concatenate([np.asarray(m).ravel() for m in masks])
    assert got.sum() == k
    np.testing.assert_array_equal(got, _cold_zeros(want_values, k))


@pytest.mark.parametrize('scope', ['global', 'layer'])
def test_rmda_zeros_the_k_smallest_of_the_dual_point(scope):
  """rmda(sparsity_constraint, momentum=0): the parameters are the
  projection of ``w0 − G/β``; G and the dual point, recomputed in numpy op
  by op from the step's inputs, give exactly the zeros of the cold exact
  search; sparse_params recomputes the same zeros."""
  params = {f'w{i}': w0 for i, (w0, _) in enumerate(_operands(1))}
  opt = rda_optax.rmda(
      0.1,
      rda_optax.sparsity_constraint(0.8, scope=scope),
      momentum=jnp.float32(0.0),
      mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
  )
  state = opt.init(params)
  step = jax.jit(opt.update)
  gsum = {k: np.zeros(v.shape, np.float32) for k, v in params.items()}
  rng = np.random.default_rng(2)
  for t in range(3):
    grads = {
        k: rng.normal(size=v.shape).astype(np.float32)
        for k, v in params.items()
    }
    updates, state = step(grads, state, params)
    params = optax.apply_updates(params, updates)
    s = np.float32(np.float32(0.1) * np.sqrt(np.float32(t + 1)))
    inv_beta = np.float32(1) / np.sqrt(np.float32(t + 1))
    names = [k for k in params if params[k].ndim > 1]
    for k in params:
      gsum[k] = (gsum[k] + (s * grads[k]).astype(np.float32)).astype(np.float32)
      np.testing.assert_array_equal(np.asarray(state.grad_sum[k]), gsum[k])
    w0 = state.init_params
    values = [_numpy_dual_point(w0[k], gsum[k], inv_beta) for k in names]
    if scope == 'global':
      want = _cold_zeros(values, round(0.8 * sum(v.size for v in values)))
    else:
      want = np.concatenate(
          [_cold_zeros([v], round(0.8 * v.size)) for v in values]
      )
    got = np.concatenate([np.asarray(params[k]).ravel() == 0 for k in names])
    np.testing.assert_array_equal(got, want)
    sparse = rda_optax.sparse_params(state, params)
    again = np.concatenate([np.asarray(sparse[k]).ravel() == 0 for k in names])
    np.testing.assert_array_equal(again, want)


def test_a_computed_search_needs_an_opaque_zero():
  with pytest.raises(ValueError, match='zero='):
    threshold.kth_smallest(
        _operands(0), 5, compute=pinned_dual_point, args=(jnp.float32(1),)
    )

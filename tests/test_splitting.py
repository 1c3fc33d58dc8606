"""ℓ0 / TL1 by variable splitting (paper 001)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax


def test_matches_numpy_transcription():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
  params = {'k': jnp.asarray(w), 'b': jnp.zeros(4)}
  lr, lam, lam_g = 0.05, 0.02, 0.01
  beta = optax.exponential_decay(2.0, 5, 1.25, staircase=True)
  opt = rda_optax.variable_splitting(
      optax.sgd(lr), rda_optax.l0(lam), beta=beta, group_strength=lam_g
  )
  state = opt.init(params)
  grads = [rng.normal(size=w.shape).astype(np.float32) for _ in range(12)]
  hard = lambda x, b: np.where(np.abs(x) > math.sqrt(2 * lam / b), x, 0)
  W = w.astype(np.float64)
  V = hard(W, float(beta(0)))
  for n, g in enumerate(grads):
    b = float(beta(n))
    norms = np.sqrt((W**2).sum(axis=(0, 1, 2), keepdims=True))
    group_grad = lam_g * math.sqrt(18) * W / norms
    W = W - lr * (g + b * (W - V) + group_grad)
    V = hard(W, b)
    updates, state = jax.jit(opt.update)(
        {'k': jnp.asarray(g), 'b': jnp.ones(4)}, state, params
    )
    params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params['k'], W, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(
        rda_optax.sparse_params(state)['k'], V, rtol=2e-5, atol=2e-6
    )
  # Biases are not split: plain SGD.
  np.testing.assert_allclose(params['b'], -lr * 12 * np.ones(4), rtol=1e-6)


def test_known_fixed_point_on_a_quadratic():
  """L(W) = ½‖W − T‖²: the fixed point is W = (T + βV)/(1 + β), V = H(W)."""
  target = jnp.array([[2.0, 0.05], [-0.03, -1.5]])
  lam, beta = 0.1, 1.0
  opt = rda_optax.variable_splitting(
      optax.sgd(0.2), rda_optax.l0(lam), beta=beta
  )
  params = {'w': jnp.zeros((2, 2))}
  state = opt.init(params)
  step = jax.jit(
      lambda p, s: opt.update(jax.tree.map(lambda w: w - target, p), s, p)
  )
  for _ in range(300):
    updates, state = step(params, state)
    params = optax.apply_updates(params, updates)
  v = rda_optax.sparse_params(state)['w']
  np.testing.assert_array_equal(
      np.asarray(v) != 0, [[True, False], [False, True]]
  )
  want_w = (target + beta * v) / (1 + beta)
  np.testing.assert_allclose(params['w'], want_w, atol=1e-5)
  np.testing.assert_allclose(v, jnp.where(v != 0, target, 0), atol=1e-5)


def test_tl1_variant_and_optax_compat():
  params = {'w': jnp.ones((4, 3)) * 0.2}
  opt = optax.inject_hyperparams(
      rda_optax.variable_splitting, static_args=('inner', 'regularizer')
  )(inner=optax.adam(1e-2), regularizer=rda_optax.transformed_l1(0.1), beta=2.5)
  state = opt.init(params)
  updates, state = jax.jit(opt.update)(params, state, params)
  assert rda_optax.sparse_params(state)['w'].shape == (4, 3)
  assert float(state.hyperparams['beta']) == 2.5


def test_errors():
  with pytest.raises(ValueError, match='beta > 0'):
    rda_optax.variable_splitting(optax.sgd(0.1), rda_optax.l0(0.1), beta=0.0)
  with pytest.raises(TypeError, match='Regularizer'):
    rda_optax.variable_splitting(optax.sgd(0.1), 0.1, beta=1.0)
  with pytest.raises(ValueError, match='group axis'):
    rda_optax.variable_splitting(
        optax.sgd(0.1), rda_optax.l0(0.1), beta=1.0, groups='rows'
    )
  opt = rda_optax.variable_splitting(optax.sgd(0.1), rda_optax.l0(0.1), 1.0)
  state = opt.init({'w': jnp.ones((2, 2))})
  with pytest.raises(ValueError, match='needs the current parameters'):
    opt.update({'w': jnp.ones((2, 2))}, state)
  with pytest.raises(ValueError, match='keeps no sparse point'):
    rda_optax.sparse_params(optax.sgd(0.1).init({'w': jnp.ones(2)}))

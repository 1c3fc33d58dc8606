"""Convex correctness: ℓ1-regularized logistic regression on real data.

Objective: mean softmax cross-entropy over scikit-learn's digits (1797 real
8×8 images, pixels scaled to [0, 1], 10 classes) plus ``λ‖W‖₁`` (the
intercept is not penalised). scikit-learn's SAGA solver, run to 1e-10,
gives the reference optimum: its ``C`` equals ``1 / (λ·n)``.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from _session_cache import cached_arrays

LAM = 2e-3
OBJECTIVE_TOL = 1e-5  # Absolute, on an objective of about 0.51.


def _saga_optimum():
  from sklearn.datasets import load_digits
  from sklearn.linear_model import LogisticRegression

  x, y = load_digits(return_X_y=True)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    clf = LogisticRegression(
        penalty='l1',
        C=1 / (LAM * len(y)),
        solver='saga',
        tol=1e-10,
        max_iter=20000,
    )
    clf.fit(x / 16.0, y)
  return {'w': clf.coef_.T, 'b': clf.intercept_}


@functools.lru_cache(maxsize=None)
def problem():
  sklearn = pytest.importorskip('sklearn')
  del sklearn
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = x / 16.0
  # SAGA to 1e-10 takes ~10 s: solved once per session.
  ref = cached_arrays(f'digits_l1_optimum_{LAM}', _saga_optimum)
  ref = {k: jnp.asarray(v, jnp.float32) for k, v in ref.items()}
  return jnp.asarray(x, jnp.float32), jax.nn.one_hot(y, 10), ref


def loss(params, x, y):
  return optax.softmax_cross_entropy(x @ params['w'] + params['b'], y).mean()


def objective(params, x, y):
  return float(loss(params, x, y) + LAM * jnp.abs(params['w']).sum())


def full_batch(opt, params, x, y, steps):
  def body(carry, _):
    p, s = carry
    g = jax.grad(loss)(p, x, y)
    u, s = opt.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  run = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps)[0])
  return run((params, opt.init(params)))[0]


def init_params(seed=0):
  return {
      'w': 0.01 * jax.random.normal(jax.random.PRNGKey(seed), (64, 10)),
      'b': jnp.zeros(10),
  }


def assert_optimal(params, x, y, ref):
  gap = objective(params, x, y) - objective(ref, x, y)
  assert abs(gap) < OBJECTIVE_TOL, gap
  support = np.asarray(params['w']) != 0
  ref_support = np.asarray(ref['w']) != 0
  assert 0 < ref_support.sum() < ref_support.size  # A sparse optimum.
  np.testing.assert_array_equal(support, ref_support)


def test_prox_sgd_reaches_the_optimum():
  x, y, ref = problem()
  params = full_batch(
      rda_optax.prox_sgd(learning_rate=1.0, regularizer=rda_optax.l1(LAM)),
      init_params(),
      x,
      y,
      steps=20000,
  )
  assert_optimal(params, x, y, ref)


def test_rda_reaches_the_optimum():
  """Dual averaging with a constant β (γ_n = β/√n, so β_n = γ_n√n = β).

  On a deterministic smooth problem this is the fast regime; the paper's
  β_n = γ√n converges at O(1/√n) and is checked below with a looser bound.
  """
  x, y, ref = problem()
  gamma = lambda count: 0.5 / jnp.sqrt(count + 1.0)
  params = full_batch(
      rda_optax.rda(gamma=gamma, regularizer=rda_optax.l1(LAM)),
      init_params(),
      x,
      y,
      steps=10000,
  )
  assert_optimal(params, x, y, ref)


def test_rda_paper_schedule_converges():
  x, y, ref = problem()
  opt = rda_optax.rda(gamma=0.05, regularizer=rda_optax.l1(LAM))
  gaps = []
  for steps in (2000, 20000):
    params = full_batch(opt, init_params(), x, y, steps)
    gaps.append(objective(params, x, y) - objective(ref, x, y))
  assert gaps[1] < gaps[0] / 2  # O(1/√n): ten times the steps, ~1/3 the gap.
  assert 0 <= gaps[1] < 5e-3, gaps

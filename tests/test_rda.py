"""RDA against a NumPy transcription of its update, schedules and exact zeros."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax

from _optim_helpers import (
    np_soft,
    random_grads,
    random_params,
    regularizer_and_numpy_prox,
    run,
    SHAPES,
)


@pytest.mark.parametrize('gamma', [0.5, 3.0])
@pytest.mark.parametrize('kind', ['l1', 'group', 'none'])
def test_rda_matches_numpy_transcription(gamma, kind):
  lam = 0.02
  reg, prox = regularizer_and_numpy_prox(kind, lam)
  params = random_params()
  grads = random_grads(60)
  traj, state = run(rda_optax.rda(gamma=gamma, regularizer=reg), params, grads)
  w0 = jax.tree.map(np.asarray, params)
  G = {k: np.zeros(s) for k, s in SHAPES.items()}
  for n, g in enumerate(grads, start=1):
    beta = gamma * math.sqrt(n)
    for k in SHAPES:
      G[k] += g[k]
      v = w0[k] - G[k] / beta
      want = prox(v, n * lam / beta) if k != 'bias' else v  # λ = 0 on biases
      np.testing.assert_allclose(traj[n - 1][k], want, rtol=1e-5, atol=1e-6)
  assert int(state.count) == 60
  np.testing.assert_allclose(state.grad_sum['dense'], G['dense'], rtol=1e-5)
  if kind == 'l1':
    assert (traj[-1]['conv'] == 0).sum() > 0  # Exact zeros appear.


def test_rda_threshold_grows_like_sqrt_n():
  """With zero gradients, the ℓ1 threshold λ√n/γ eventually zeroes w0."""
  params = {'w': jnp.array([[0.5, -0.2], [0.05, 1.0]])}
  zero = [{'w': np.zeros((2, 2), np.float32)}] * 400
  traj, _ = run(
      rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(0.01)), params, zero
  )
  for n in (1, 100, 400):
    want = np_soft(np.asarray(params['w']), 0.01 * math.sqrt(n))
    np.testing.assert_allclose(traj[n - 1]['w'], want, rtol=1e-5, atol=1e-7)
  assert np.all(traj[-1]['w'][np.abs(params['w']) < 0.2] == 0)


def test_rda_schedules_for_gamma_and_lambda():
  gamma = optax.piecewise_constant_schedule(1.0, {3: 2.0})
  lam = optax.piecewise_constant_schedule(0.01, {4: 3.0})
  params = random_params()
  grads = random_grads(8)
  traj, _ = run(
      rda_optax.rda(gamma=gamma, regularizer=rda_optax.l1(lam)), params, grads
  )
  G = sum(g['dense'] for g in grads)
  n = 8
  beta = float(gamma(n - 1)) * math.sqrt(n)
  want = np_soft(
      np.asarray(params['dense']) - G / beta, n * float(lam(n - 1)) / beta
  )
  np.testing.assert_allclose(traj[-1]['dense'], want, rtol=1e-5, atol=1e-6)


def test_rda_updates_land_exactly_on_zero():
  params = random_params()
  traj, _ = run(
      rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(0.3)),
      params,
      random_grads(5),
  )
  # Soft-thresholded entries are exactly 0.0, not 1e-9.
  for w in traj:
    small = np.abs(w['conv']) < 1e-6
    assert np.all(w['conv'][small] == 0)
    assert small.sum() > 0

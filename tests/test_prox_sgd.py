"""Prox-SGD against a NumPy transcription and against optax.sgd."""

import jax
import numpy as np
import optax
import pytest

import rda_optax

from _optim_helpers import SHAPES, random_params, random_grads, run, np_soft
from _optim_helpers import np_momentum


@pytest.mark.parametrize(
    'momentum, nesterov', [(None, False), (0.9, False), (0.9, True)]
)
def test_prox_sgd_matches_numpy_transcription(momentum, nesterov):
  lam, sched = 0.05, optax.cosine_decay_schedule(0.1, 40)
  params = random_params()
  grads = random_grads(40)
  traj, _ = run(
      rda_optax.prox_sgd(
          learning_rate=sched,
          regularizer=rda_optax.l1(lam),
          momentum=momentum,
          nesterov=nesterov,
      ),
      params,
      grads,
  )
  w = jax.tree.map(np.asarray, params)
  d = {k: np.zeros(s) for k, s in SHAPES.items()}
  for n, g in enumerate(grads):
    lr = float(sched(n))
    for k in SHAPES:
      d[k], u = np_momentum(d[k], g[k], momentum, nesterov)
      v = w[k] - lr * u
      w[k] = np_soft(v, lr * lam) if k != 'bias' else v
      np.testing.assert_allclose(traj[n][k], w[k], rtol=1e-5, atol=1e-6)


def test_prox_sgd_without_regularizer_equals_optax_sgd():
  params = random_params()
  grads = random_grads(10)
  a, _ = run(rda_optax.prox_sgd(learning_rate=0.1, momentum=0.9), params, grads)
  b, _ = run(optax.sgd(0.1, momentum=0.9), params, grads)
  for x, y in zip(a, b):
    for k in SHAPES:
      np.testing.assert_allclose(x[k], y[k], rtol=1e-5, atol=1e-6)

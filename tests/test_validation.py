"""Clear errors for bad hyper-parameters, trees, masks and values."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax

from _optim_helpers import random_params


@pytest.mark.parametrize(
    'make, match',
    [
        (lambda: rda_optax.rda(gamma=0.0), 'gamma > 0'),
        (lambda: rda_optax.rda(gamma=-1.0), 'gamma > 0'),
        (lambda: rda_optax.rda(gamma=1.0, regularizer=0.1), 'Regularizer'),
        (lambda: rda_optax.prox_sgd(learning_rate=0.0), 'learning_rate'),
        (lambda: rda_optax.prox_sgd(0.1, momentum=1.5), 'momentum'),
        (lambda: rda_optax.prox_sgd(0.1, nesterov=True), 'nesterov'),
        (lambda: rda_optax.asr(optax.sgd(0.1), start_step=-1), 'start_step'),
        (lambda: rda_optax.asr('sgd'), 'GradientTransformation'),
        (lambda: rda_optax.rda(gamma=float('inf')), 'finite gamma'),
        (lambda: rda_optax.rda(gamma=float('nan')), 'finite gamma'),
        (lambda: rda_optax.rda(gamma='1.0'), 'number or an optax schedule'),
        (lambda: rda_optax.prox_sgd(learning_rate=float('inf')), 'finite'),
    ],
)
def test_invalid_hyperparameters(make, match):
  with pytest.raises((ValueError, TypeError), match=match):
    make()


@pytest.mark.parametrize(
    'opt',
    [
        rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(0.1)),
        rda_optax.prox_sgd(0.1, rda_optax.l1(0.1)),
        rda_optax.asr(optax.sgd(0.1)),
    ],
    ids=['rda', 'prox_sgd', 'asr'],
)
def test_missing_params_and_mismatched_trees(opt):
  params = random_params()
  state = opt.init(params)
  grads = jax.tree.map(jnp.zeros_like, params)
  with pytest.raises(ValueError, match='needs the current parameters'):
    opt.update(grads, state)
  with pytest.raises(ValueError, match='tree structure|does not match'):
    opt.update({'conv': grads['conv']}, state, params)


def test_mask_selection_errors_are_clear():
  opt = rda_optax.rda(
      gamma=1.0, regularizer=rda_optax.l1(0.1), mask={'nope': True}
  )
  params = random_params()
  state = opt.init(params)
  with pytest.raises(ValueError, match='mask does not match'):
    opt.update(params, state, params)


def test_bad_values_reported_by_the_library():
  """Each gets a clear error (or, for a prox of integers, a float result)."""
  prox = rda_optax.l1(0.5).prox(jnp.array([[3, -1], [0, 2]]), 1.0, 0)
  np.testing.assert_array_equal(prox, [[2.5, -0.5], [0.0, 1.5]])
  assert jnp.issubdtype(prox.dtype, jnp.floating)
  rda_optax.asr(optax.sgd(0.1), start_step=np.int64(5))  # Accepted.
  with pytest.raises(ValueError, match='start_step'):
    rda_optax.asr(optax.sgd(0.1), start_step=2**40)
  with pytest.raises(ValueError, match='value at step 0 is 0.0'):
    rda_optax.rda(gamma=optax.linear_schedule(0.0, 1.0, 10))
  params = {'w': jnp.ones((2, 3))}
  for opt in (
      rda_optax.rda(1.0, rda_optax.l1(0.1)),
      rda_optax.rmda(0.1, rda_optax.l1(0.1)),
      rda_optax.gradual_magnitude_pruning(
          0.5, begin_step=0, end_step=10, frequency=1
      ),
  ):
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"gradient of \['w'\] has shape"):
      opt.update({'w': jnp.ones((3, 2))}, state, params)
    with pytest.raises(ValueError, match='tree structure'):
      opt.update({'v': jnp.ones((2, 3))}, state, params)
  ints = {'w': jnp.ones((2, 3), jnp.int32)}
  opt = rda_optax.prox_sgd(0.1, rda_optax.l1(0.1))
  with pytest.raises(TypeError, match='integer type'):
    opt.update(ints, opt.init(ints), ints)

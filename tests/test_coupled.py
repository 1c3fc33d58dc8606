"""rda_optax.coupled_group_lasso: output-channel groups spanning leaves."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from _optim_helpers import multistart_min, normal_like, run

RNG = np.random.default_rng(0)


def _tree():
  return {
      'a': {'kernel': RNG.normal(size=(2, 3))},
      'b': {'scale': RNG.normal(size=3)},
      'c': {'kernel': RNG.normal(size=(2, 2))},
  }


SEL = {'a': True, 'b': True, 'c': True}
REG = rda_optax.coupled_group_lasso(0.4, coupled=[('a/kernel', 'b/scale')])


@pytest.mark.parametrize('t', [0.3, 1.0, 2.5])
def test_prox_vs_brute_force(t):
  """The prox minimises ``½‖y − v‖² + t·R(y)`` over all three leaves."""
  v = _tree()
  shapes = [(2, 3), (3,), (2, 2)]
  sizes = [int(np.prod(s)) for s in shapes]

  def unflat(flat):
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return {
        'a': {'kernel': parts[0].reshape(2, 3)},
        'b': {'scale': parts[1]},
        'c': {'kernel': parts[2].reshape(2, 2)},
    }

  vflat = np.concatenate(
      [v['a']['kernel'].ravel(), v['b']['scale'], v['c']['kernel'].ravel()]
  )

  def penalty(y):  # NumPy transcription of R (checked against value_tree)
    a, b, c = y['a']['kernel'], y['b']['scale'], y['c']['kernel']
    coupled = np.sqrt(3) * np.sum(np.sqrt((a**2).sum(0) + b**2))
    alone = np.sqrt(2) * np.sum(np.sqrt((c**2).sum(0)))
    return 0.4 * (coupled + alone)

  def objective(flat):
    return 0.5 * np.sum((flat - vflat) ** 2) + t * penalty(unflat(flat))

  np.testing.assert_allclose(
      float(REG.value_tree(jax.tree.map(jnp.asarray, v), SEL)),
      penalty(v),
      rtol=1e-5,
  )

  got = REG.prox_tree(jax.tree.map(jnp.asarray, v), SEL, t)
  got_flat = np.concatenate(
      [
          np.asarray(x, np.float64).ravel()
          for x in (got['a']['kernel'], got['b']['scale'], got['c']['kernel'])
      ]
  )
  best = multistart_min(
      objective,
      [vflat, np.zeros_like(vflat)]
      + [RNG.normal(size=vflat.size) for _ in range(3)],
  )
  assert objective(got_flat) <= best + 1e-4


def test_closed_form_and_all_or_nothing():
  """Channel c of the set: the members' slices scale by one factor
  ``max(0, 1 − tλ√n/‖group‖)`` (n = 2 + 1 weights); uncoupled leaves get
  the one-leaf group lasso."""
  v = jax.tree.map(jnp.asarray, _tree())
  v['b']['scale'] = v['b']['scale'].at[1].set(0.0)
  v['a']['kernel'] = v['a']['kernel'].at[:, 1].set(jnp.array([0.1, -0.1]))
  t = 1.0
  out = REG.prox_tree(v, SEL, t)
  a, b = np.asarray(v['a']['kernel'], np.float64), np.asarray(
      v['b']['scale'], np.float64
  )
  norms = np.sqrt((a**2).sum(0) + b**2)
  factor = np.maximum(0, 1 - t * 0.4 * np.sqrt(3) / norms)
  np.testing.assert_allclose(
      out['a']['kernel'], a * factor, rtol=1e-5, atol=1e-7
  )
  np.testing.assert_allclose(
      out['b']['scale'], b * factor, rtol=1e-5, atol=1e-7
  )
  assert factor[1] == 0 and not np.any(np.asarray(out['a']['kernel'])[:, 1])
  np.testing.assert_array_equal(
      out['c']['kernel'], rda_optax.group_lasso(0.4).prox(v['c']['kernel'], t)
  )


def test_without_sets_it_is_group_lasso_and_unselected_leaves_stay():
  v = jax.tree.map(jnp.asarray, _tree())
  plain = rda_optax.coupled_group_lasso(0.4, coupled=[])
  sel = {'a': True, 'b': False, 'c': True}
  out = plain.prox_tree(v, sel, 0.7)
  gl = rda_optax.group_lasso(0.4)
  np.testing.assert_array_equal(
      out['a']['kernel'], gl.prox(v['a']['kernel'], 0.7)
  )
  np.testing.assert_array_equal(out['b']['scale'], v['b']['scale'])
  np.testing.assert_allclose(
      plain.value_tree(v, sel),
      gl.value(v['a']['kernel']) + gl.value(v['c']['kernel']),
      rtol=1e-6,
  )
  # An unselected member leaves the set: the others are coupled alone.
  out = REG.prox_tree(v, {'a': True, 'b': False, 'c': True}, 0.7)
  np.testing.assert_array_equal(out['b']['scale'], v['b']['scale'])
  np.testing.assert_allclose(
      out['a']['kernel'], gl.prox(v['a']['kernel'], 0.7), rtol=1e-6
  )


def test_in_rmda_under_jit_with_a_schedule_and_bf16():
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), _tree())
  reg = rda_optax.coupled_group_lasso(
      optax.linear_schedule(0.0, 0.5, 4), coupled=[('a/kernel', 'b/scale')]
  )
  opt = rda_optax.rmda(
      0.1, reg, momentum=0.0, mask=lambda p: jax.tree.map(lambda _: True, p)
  )
  traj, _ = run(opt, params, [normal_like(params, i) for i in range(6)])
  params = traj[-1]
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
  zero_a = np.all(np.asarray(params['a']['kernel'], np.float32) == 0, axis=0)
  zero_b = np.asarray(params['b']['scale'], np.float32) == 0
  np.testing.assert_array_equal(zero_a, zero_b)  # Channels die together.


def test_errors_name_the_fix():
  v = jax.tree.map(jnp.asarray, _tree())
  with pytest.raises(ValueError, match="no leaf 'x/scale'"):
    rda_optax.coupled_group_lasso(0.1, [('x/scale',)]).prox_tree(v, SEL, 1.0)
  with pytest.raises(ValueError, match='share their last axis'):
    rda_optax.coupled_group_lasso(0.1, [('a/kernel', 'c/kernel')]).prox_tree(
        v, SEL, 1.0
    )
  with pytest.raises(ValueError, match='two coupled sets'):
    rda_optax.coupled_group_lasso(0.1, [('a/kernel',), ('a/kernel', 'b/scale')])
  with pytest.raises(TypeError, match='sequence of sets'):
    rda_optax.coupled_group_lasso(0.1, 'a/kernel')
  with pytest.raises(ValueError, match='strength'):
    rda_optax.coupled_group_lasso(-1.0, [])

"""ASR: frozen zeros stay zero, its state, its start and its retraining."""

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax

from _optim_helpers import SHAPES, random_params, random_grads, run, np_soft, np_group_out


@pytest.mark.parametrize(
    'inner',
    [
        lambda: optax.sgd(0.05),
        lambda: optax.sgd(0.05, momentum=0.9),
        lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
        lambda: optax.adam(1e-2),
        lambda: rda_optax.prox_sgd(0.05, rda_optax.l1(0.01), momentum=0.9),
        lambda: rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(0.01)),
    ],
    ids=['sgd', 'momentum', 'nesterov', 'adam', 'prox_sgd', 'rda'],
)
def test_asr_frozen_weights_stay_zero(inner):
  params = random_params()
  params['conv'] = params['conv'] * (np.abs(params['conv']) > 0.2)
  params['dense'] = params['dense'] * (np.abs(params['dense']) > 0.2)
  zero0 = {k: np.asarray(params[k]) == 0 for k in ('conv', 'dense')}
  assert zero0['conv'].sum() > 0
  traj, _ = run(rda_optax.asr(inner()), params, random_grads(200))
  for k in ('conv', 'dense'):
    was_zero = zero0[k]
    for w in traj:
      assert np.all(w[k][was_zero] == 0), k
      # Sticky: a weight that became zero stays zero.
      was_zero = was_zero | (w[k] == 0)
    assert np.any(traj[-1][k][~zero0[k]] != 0)
  # Biases are not selected: they start at nonzero and keep moving.
  assert not np.allclose(traj[-1]['bias'], params['bias'])


def test_asr_is_sticky_and_zeroes_momentum():
  params = {'w': jnp.array([[1.0, 0.5], [0.2, 0.3]])}
  opt = rda_optax.asr(optax.sgd(0.1, momentum=0.9))
  state = opt.init(params)
  # First step drives w[1, 0] to exactly zero: 0.2 - 0.1 * 2.0.
  g = {'w': jnp.array([[0.0, 0.0], [2.0, 0.0]])}
  u, state = opt.update(g, state, params)
  params = optax.apply_updates(params, u)
  assert float(params['w'][1, 0]) == 0.0
  # Its momentum (which would have carried it to −0.18) is gone.
  g = {'w': jnp.zeros((2, 2))}
  for _ in range(5):
    u, state = opt.update(g, state, params)
    params = optax.apply_updates(params, u)
  assert float(params['w'][1, 0]) == 0.0
  assert float(state.inner_state[0].trace['w'][1, 0]) == 0.0


def _asr_by_hand(inner, params, grads, start_step):
  """ASR written out: zero the inner state at frozen entries, then step."""
  asr_lib = importlib.import_module(
      'rda_optax.asr'
  )  # (rda_optax.asr is the function)
  state, keep, traj = inner.init(params), None, []
  for n, g in enumerate(grads):
    g = jax.tree.map(jnp.asarray, g)
    if n == start_step:
      keep = {k: (v != 0) if v.ndim > 1 else True for k, v in params.items()}
    if keep is not None:
      state = asr_lib.zero_frozen_moments(state, keep, params)
      g = {
          k: v if keep[k] is True else jnp.where(keep[k], v, 0)
          for k, v in g.items()
      }
    u, state = inner.update(g, state, params)
    if keep is not None:
      u = {
          k: v if keep[k] is True else jnp.where(keep[k], v, 0)
          for k, v in u.items()
      }
    params = optax.apply_updates(params, u)
    if keep is not None:
      keep = {
          k: True if m is True else m & (params[k] != 0)
          for k, m in keep.items()
      }
    traj.append(jax.tree.map(np.asarray, params))
  return traj


@pytest.mark.xla_default
@pytest.mark.parametrize('inner', ['sparse_group_lasso', 'rmda'])
def test_asr_zeroes_what_the_inner_sees(inner):
  # A group's norm and RMDA's sparse point read every entry of the centre: a
  # frozen entry must count as zero at every step, as when the whole state is
  # zeroed before each step (written out by hand here).
  grads = random_grads(30)
  params = random_params()
  make = {
      'sparse_group_lasso': lambda: rda_optax.rda(
          gamma=1.0, regularizer=rda_optax.sparse_group_lasso(0.05, 0.05)
      ),
      'rmda': lambda: rda_optax.rmda(0.1, rda_optax.l1(0.2), momentum=0.0),
  }[inner]
  opt = rda_optax.asr(make(), start_step=10, restart_inner=False)
  traj, state = run(opt, params, grads, jit=False)
  want = _asr_by_hand(make(), params, grads, start_step=10)
  assert (traj[9]['conv'] == 0).any() and (traj[9]['conv'] != 0).any()
  for got, ref in zip(traj, want):
    for k in SHAPES:
      np.testing.assert_array_equal(got[k] == 0, ref[k] == 0)
      np.testing.assert_allclose(got[k], ref[k], rtol=1e-6, atol=1e-7)
  if inner == 'rmda':
    point = state.sparse_point(jax.tree.map(jnp.asarray, traj[-1]))
    for k in ('conv', 'dense'):
      np.testing.assert_array_equal(np.asarray(point[k]), traj[-1][k])


def test_asr_sparse_point_is_zero_where_frozen():
  # RMDA with momentum keeps its sparse point apart from the parameters; under
  # asr every frozen entry of it is zero, whatever the stored centre holds.
  opt = rda_optax.asr(
      rda_optax.rmda(0.1, rda_optax.l1(0.2), momentum=0.9),
      start_step=10,
      restart_inner=False,
  )
  traj, state = run(opt, random_params(), random_grads(30))
  with pytest.raises(ValueError, match='pass the parameters'):
    rda_optax.sparse_params(state)
  point = rda_optax.sparse_params(state, jax.tree.map(jnp.asarray, traj[-1]))
  for k in ('conv', 'dense'):
    frozen = traj[-1][k] == 0
    assert frozen.any() and not frozen.all()
    assert np.all(np.asarray(point[k])[frozen] == 0)
    assert np.all(traj[-1][k][frozen] == 0)


@pytest.mark.parametrize('restart', [False, True])
def test_asr_start_step_with_rda(restart):
  grads = random_grads(30)
  params = random_params()
  reg = rda_optax.l1(0.05)
  opt = rda_optax.asr(
      rda_optax.rda(gamma=1.0, regularizer=reg),
      start_step=10,
      restart_inner=restart,
  )
  traj, state = run(opt, params, grads)
  plain, _ = run(rda_optax.rda(gamma=1.0, regularizer=reg), params, grads)
  # Before start_step: exactly plain RDA.
  for n in range(10):
    for k in SHAPES:
      np.testing.assert_array_equal(traj[n][k], plain[n][k])
  zero_at_start = traj[9]['conv'] == 0
  assert zero_at_start.sum() > 0
  for w in traj[10:]:
    assert np.all(w['conv'][zero_at_start] == 0)
  inner = state.inner_state
  frozen = traj[-1]['conv'] == 0
  # RDA's gradient sum is zero wherever a weight is frozen. (Its centre,
  # which RDA passes through unchanged, is stored as it is and zeroed in the
  # view each step takes of it: test_asr_zeroes_what_the_inner_sees.)
  assert frozen.sum() >= zero_at_start.sum()
  assert np.all(np.asarray(inner.grad_sum['conv'])[frozen] == 0)
  live = ~frozen
  if restart:  # The centre is the sparse weights at step 10; 20 steps since.
    assert int(inner.count) == 20
    np.testing.assert_array_equal(
        np.asarray(inner.init_params['conv'])[live], traj[9]['conv'][live]
    )
  else:
    assert int(inner.count) == 30
    np.testing.assert_array_equal(
        np.asarray(inner.init_params['conv'])[live],
        np.asarray(params['conv'])[live],
    )


def test_asr_rda_group_prox_sees_frozen_weights_as_zero():
  """Retraining solves RDA's subproblem with the frozen coordinates at 0.

  With a sparse group lasso, a weight can be frozen (soft-thresholded to 0)
  while its group lives on; its centre w0 is not zero, and the free weights
  of its group must be shrunk by the group norm in which it counts as zero.
  """
  lam1, lam2, gamma = 0.05, 0.02, 1.0
  w0 = np.array([[0.5, 0.8], [0.4, 0.6], [0.5, 0.3]], np.float32)
  params = {'w': jnp.asarray(w0)}
  opt = rda_optax.asr(
      rda_optax.rda(
          gamma=gamma, regularizer=rda_optax.sparse_group_lasso(lam1, lam2)
      )
  )
  state = opt.init(params)
  g1 = np.zeros((3, 2), np.float32)
  g1[0, 0] = 0.5  # w0 − G/β = 0 at step 1: frozen from then on.
  grads = [g1] + [np.full((3, 2), 0.05, np.float32)] * 3
  G = np.zeros((3, 2))
  frozen = np.zeros((3, 2), bool)
  for n, g in enumerate(grads, start=1):
    updates, state = opt.update({'w': jnp.asarray(g)}, state, params)
    params = optax.apply_updates(params, updates)
    G = np.where(frozen, 0, G + g)
    beta = gamma * math.sqrt(n)
    v = np.where(frozen, 0, w0 - G / beta)
    want = np_group_out(np_soft(v, n * lam1 / beta), n * lam2 / beta)
    np.testing.assert_allclose(params['w'], want, rtol=1e-6, atol=1e-7)
    frozen |= np.asarray(params['w']) == 0
  assert frozen[0, 0] and frozen.sum() == 1  # One frozen, its group alive.


def test_freeze_zeros_with_optax_masked():
  params = {'k': jnp.array([0.0, 1.0]), 'b': jnp.array([0.0, 1.0])}
  opt = optax.chain(
      optax.sgd(1.0),
      optax.masked(rda_optax.freeze_zeros(), {'k': True, 'b': False}),
  )
  state = opt.init(params)
  u, state = opt.update({'k': jnp.ones(2), 'b': jnp.ones(2)}, state, params)
  new = optax.apply_updates(params, u)
  np.testing.assert_array_equal(new['k'], [0.0, 0.0])
  np.testing.assert_array_equal(new['b'], [-1.0, 0.0])


@pytest.mark.parametrize('k', [2, 3])
def test_start_step_under_multisteps(k):
  """Where retraining starts, counted in calls of ``update`` (the loop's
  steps): ``asr(optax.MultiSteps(inner, k), start_step=n)`` at call ``n``;
  ``optax.MultiSteps(asr(inner, start_step=s), k)`` counts applied updates,
  so at call ``(s + 1)·k − 1`` (the call that applies update ``s``)."""
  inner = lambda: rda_optax.rmda(0.1, rda_optax.l1(0.3), momentum=0.9)
  n, s = 6, 2
  orders = {
      'asr outside': (
          rda_optax.asr(optax.MultiSteps(inner(), k), start_step=n),
          n,
      ),
      'asr inside': (
          optax.MultiSteps(rda_optax.asr(inner(), start_step=s), k),
          (s + 1) * k - 1,
      ),
  }
  for name, (opt, want) in orders.items():
    traj, state = run(opt, random_params(), random_grads(12))
    # RMDA's iterates have no exact zeros before the jump to the sparse point.
    jumps = [t for t, w in enumerate(traj) if (w['conv'] == 0).any()]
    assert jumps and jumps[0] == want, (name, jumps)
    # Later, the frozen zeros stay.
    for w in traj[want:]:
      assert (w['conv'][traj[want]['conv'] == 0] == 0).all(), name
    sparse = rda_optax.sparse_params(state, jax.tree.map(jnp.asarray, traj[-1]))
    assert (np.asarray(sparse['conv'])[traj[-1]['conv'] == 0] == 0).all()

"""RDA, Prox-SGD and ASR against direct NumPy transcriptions of the formulas."""

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax

RNG = np.random.default_rng(42)
SHAPES = {'conv': (3, 3, 2, 4), 'dense': (6, 5), 'bias': (5,)}


def random_params(seed=0):
  rng = np.random.default_rng(seed)
  return {
      k: jnp.asarray(rng.normal(scale=0.3, size=s), jnp.float32)
      for k, s in SHAPES.items()
  }


def random_grads(steps, seed=1):
  rng = np.random.default_rng(seed)
  return [
      {
          k: rng.normal(scale=0.5, size=s).astype(np.float32)
          for k, s in SHAPES.items()
      }
      for _ in range(steps)
  ]


def run(opt, params, grads, jit=True):
  state = opt.init(params)
  update = jax.jit(opt.update) if jit else opt.update
  traj = []
  for g in grads:
    updates, state = update(jax.tree.map(jnp.asarray, g), state, params)
    params = optax.apply_updates(params, updates)
    traj.append(jax.tree.map(np.asarray, params))
  return traj, state


def np_soft(v, thr):
  return np.sign(v) * np.maximum(np.abs(v) - thr, 0)


def np_group_out(v, thr):
  axes = tuple(range(v.ndim - 1))
  norms = np.sqrt((v**2).sum(axis=axes, keepdims=True))
  n_g = math.prod(v.shape[:-1])
  return v * np.maximum(0, 1 - thr * math.sqrt(n_g) / np.maximum(norms, 1e-30))


# --------------------------------------------------------------------- RDA


@pytest.mark.parametrize('gamma', [0.5, 3.0])
@pytest.mark.parametrize('kind', ['l1', 'group', 'none'])
def test_rda_matches_numpy_transcription(gamma, kind):
  lam = 0.02
  reg = {
      'l1': rda_optax.l1(lam),
      'group': rda_optax.group_lasso(lam),
      'none': None,
  }[kind]
  prox = {'l1': np_soft, 'group': np_group_out, 'none': lambda v, t: v}[kind]
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


# ---------------------------------------------------------------- Prox-SGD


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
      if momentum is None:
        u = g[k]
      else:
        d[k] = momentum * d[k] + g[k]
        u = g[k] + momentum * d[k] if nesterov else d[k]
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


# --------------------------------------------------------------------- ASR


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
  traj, state = run(rda_optax.asr(inner()), params, random_grads(200))
  last_keep = state.freeze.inner_state.keep
  for k in ('conv', 'dense'):
    was_zero = zero0[k]
    for w in traj:
      assert np.all(w[k][was_zero] == 0), k
      became_zero = w[k] == 0
      assert np.all(~np.asarray(last_keep[k])[became_zero])
    assert np.any(traj[-1][k][~was_zero] != 0)
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
  assert not bool(state.freeze.inner_state.keep['w'][1, 0])
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
      keep = {k: (v != 0) if v.ndim > 1 else None for k, v in params.items()}
    if keep is not None:
      state = asr_lib.zero_frozen_moments(inner, state, keep)
      g = {
          k: v if keep[k] is None else jnp.where(keep[k], v, 0)
          for k, v in g.items()
      }
    u, state = inner.update(g, state, params)
    if keep is not None:
      u = {
          k: v if keep[k] is None else jnp.where(keep[k], v, 0)
          for k, v in u.items()
      }
    params = optax.apply_updates(params, u)
    if keep is not None:
      keep = {
          k: None if m is None else m & (params[k] != 0)
          for k, m in keep.items()
      }
    traj.append(jax.tree.map(np.asarray, params))
  return traj


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
  point = state.sparse_point()
  for k in ('conv', 'dense'):
    frozen = ~np.asarray(state.freeze.inner_state.keep[k])
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
  frozen = ~np.asarray(state.freeze.inner_state.keep['conv'])
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


# ------------------------------------------------------------------ errors


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

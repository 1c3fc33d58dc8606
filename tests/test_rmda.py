"""RMDA against a NumPy transcription of its formulas, its sparse point, and
its use under ASR (restart, retraining with another optimizer)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from test_convex import full_batch, init_params, objective, problem, LAM
from _optim_helpers import (
    np_soft,
    random_grads,
    random_params,
    regularizer_and_numpy_prox,
    run,
    SHAPES,
)


def np_rmda(params, grads, lr, mom, prox, lam, restarts=()):
  """Huang & Lee's Algorithm 1, line by line (λ = 0 on the biases)."""
  w = {k: np.asarray(v, np.float64) for k, v in params.items()}
  w0 = dict(w)
  G = {k: np.zeros(s) for k, s in SHAPES.items()}
  alpha, k_ = 0.0, 0
  traj, tilde = [], []
  for n, g in enumerate(grads):
    if n in restarts:
      w0, G, alpha, k_ = (
          dict(w),
          {k: np.zeros(s) for k, s in SHAPES.items()},
          0.0,
          0,
      )
    k_ += 1
    eta = lr(n) if callable(lr) else lr
    c = 1 - (mom(n) if callable(mom) else mom)
    s = eta * math.sqrt(k_)
    alpha += s
    beta = math.sqrt(k_)
    wt = {}
    for k in SHAPES:
      G[k] = G[k] + s * g[k]
      v = w0[k] - G[k] / beta
      wt[k] = prox(v, lam * alpha / beta) if k != 'bias' else v
      w[k] = (1 - c) * w[k] + c * wt[k]
    traj.append(dict(w))
    tilde.append(wt)
  return traj, tilde


@pytest.mark.parametrize('kind', ['l1', 'group', 'none'])
@pytest.mark.parametrize('momentum', [0.0, 0.9, 'schedule'])
def test_rmda_matches_numpy_transcription(kind, momentum):
  lam = 0.2 if kind == 'group' else 0.05
  reg, prox = regularizer_and_numpy_prox(kind, lam)
  mom = (
      optax.linear_schedule(0.5, 0.9, 30)
      if momentum == 'schedule'
      else momentum
  )
  lr = optax.cosine_decay_schedule(0.1, 60)
  params = random_params()
  grads = random_grads(60)
  traj, state = run(rda_optax.rmda(lr, reg, momentum=mom), params, grads)
  want, tilde = np_rmda(
      params,
      grads,
      lambda n: float(lr(n)),
      (lambda n: float(mom(n))) if callable(mom) else mom,
      prox,
      lam,
  )
  for got, ref in zip(traj, want):
    for k in SHAPES:
      np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)
  sparse = rda_optax.sparse_params(state, traj[-1])
  for k in SHAPES:
    np.testing.assert_allclose(sparse[k], tilde[-1][k], rtol=1e-5, atol=1e-6)
  assert int(state.count) == 60 and int(state.k) == 60
  if kind != 'none':
    # The prox point is exactly sparse; with momentum the iterate is not.
    assert (np.asarray(sparse['conv']) == 0).sum() > 0
    if momentum == 0.0:
      np.testing.assert_array_equal(sparse['conv'], traj[-1]['conv'])
      assert state.prox is None  # The parameters are the prox point.
    else:
      assert (traj[-1]['conv'] == 0).sum() < (
          np.asarray(sparse['conv']) == 0
      ).sum()


def test_rmda_restarts_recentre_and_reset_the_sums():
  params, grads = random_params(), random_grads(40)
  opt = rda_optax.rmda(
      0.05, rda_optax.l1(0.05), momentum=0.5, restart_steps=(15, 30)
  )
  traj, state = run(opt, params, grads)
  want, _ = np_rmda(params, grads, 0.05, 0.5, np_soft, 0.05, restarts=(15, 30))
  for got, ref in zip(traj, want):
    for k in SHAPES:
      np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)
  assert int(state.count) == 40 and int(state.k) == 10
  np.testing.assert_allclose(
      state.init_params['dense'], traj[29]['dense'], rtol=1e-6
  )


def test_newest_gradient_moves_the_prox_point_by_the_learning_rate():
  """Unlike RDA's 1/(γ√n): s_k / β_k = η."""
  params = {'w': jnp.zeros((1, 1))}
  opt = rda_optax.rmda(0.1, None, momentum=0.0)
  state = opt.init(params)
  g = {'w': jnp.ones((1, 1))}
  zero = {'w': jnp.zeros((1, 1))}
  for _ in range(99):
    _, state = opt.update(zero, state, params)
  before = rda_optax.sparse_params(state, params)['w']
  u, state = opt.update(g, state, params)
  moved = float((params['w'] + u['w'])[0, 0] - before[0, 0])
  assert moved == pytest.approx(-0.1, rel=1e-5)


def test_l1_threshold_grows_linearly():
  """λ α_k / β_k = λ η Σ√i / √k ≈ (2/3) η λ k."""
  params = {'w': jnp.full((1, 4), 10.0)}
  opt = rda_optax.rmda(0.01, rda_optax.l1(1.0), momentum=0.0)
  state = opt.init(params)
  zero = {'w': jnp.zeros((1, 4))}
  for k in range(1, 301):
    u, state = opt.update(zero, state, params)
    if k in (100, 300):
      thr = 10.0 - float(params['w'][0, 0] + u['w'][0, 0])
      want = 0.01 * sum(math.sqrt(i) for i in range(1, k + 1)) / math.sqrt(k)
      assert thr == pytest.approx(want, rel=1e-5)
      assert thr == pytest.approx(2 / 3 * 0.01 * k, rel=0.01)


def test_rmda_converges_on_a_convex_problem():
  """ℓ1 logistic regression on digits (full batch, constant η): the gap to
  SAGA's optimum shrinks steadily, and the prox point is exactly sparse.

  (Dual averaging keeps every past gradient in its sum, so on a
  deterministic problem it converges far more slowly than Prox-SGD; what it
  is built for is stochastic training, where that averaging is the point.)
  """
  x, y, ref = problem()
  opt = rda_optax.rmda(
      learning_rate=0.5, regularizer=rda_optax.l1(LAM), momentum=0.0
  )
  gaps = []
  for steps in (2000, 20000):
    params = full_batch(opt, init_params(), x, y, steps)
    gaps.append(objective(params, x, y) - objective(ref, x, y))
  assert 0 <= gaps[1] < gaps[0] / 4, gaps
  assert gaps[1] < 1e-3, gaps
  support = np.asarray(params['w']) != 0
  ref_support = np.asarray(ref['w']) != 0
  assert support[ref_support].all()  # Every weight of the optimum is found,
  assert support.sum() < 1.1 * ref_support.sum()  # and few others.


def test_asr_starts_retraining_from_the_prox_point():
  params, grads = random_params(), random_grads(12)
  inner = rda_optax.rmda(0.05, rda_optax.l1(0.2), momentum=0.9)
  opt = rda_optax.asr(
      inner, start_step=6, retrain=optax.sgd(0.01, momentum=0.9)
  )
  traj, state = run(opt, params, grads)
  # The same RMDA run alone gives the prox point at step 6.
  ref_traj, ref_state = run(inner, params, grads[:6])
  w_tilde = rda_optax.sparse_params(ref_state)
  frozen = np.asarray(w_tilde['conv']) == 0
  assert frozen.any() and not (np.asarray(ref_traj[-1]['conv']) == 0).any()
  np.testing.assert_allclose(traj[5]['conv'], ref_traj[5]['conv'])
  for t in traj[6:]:  # Every step of retraining keeps the prox point's zeros.
    assert (t['conv'][frozen] == 0).all()
  # Step 7 = the prox point plus one masked SGD step.
  want = np.where(
      frozen, 0, np.asarray(w_tilde['conv']) - 0.01 * grads[6]['conv']
  )
  np.testing.assert_allclose(traj[6]['conv'], want, rtol=1e-5, atol=1e-7)
  # After the switch, the sparse model is the parameters.
  np.testing.assert_array_equal(
      rda_optax.sparse_params(state, traj[-1])['conv'], traj[-1]['conv']
  )
  assert bool(state.retraining)


def test_asr_restarted_rmda_keeps_frozen_zeros():
  params, grads = random_params(), random_grads(20)
  opt = rda_optax.asr(
      rda_optax.rmda(0.05, rda_optax.l1(0.2), momentum=0.9), start_step=8
  )
  traj, state = run(opt, params, grads)
  zeros = np.asarray(rda_optax.sparse_params(state, traj[-1])['conv']) == 0
  start_zeros = traj[8]['conv'] == 0
  assert start_zeros.any()
  for t in traj[8:]:
    assert (t['conv'][start_zeros] == 0).all()
  assert zeros[start_zeros].all()


def test_sparse_params_errors():
  with pytest.raises(ValueError, match='keeps no sparse point'):
    rda_optax.sparse_params(optax.sgd(0.1).init({'w': jnp.ones(2)}))
  params = {'w': jnp.ones((2, 2))}
  state = optax.sgd(0.1).init(params)
  assert rda_optax.sparse_params(state, params) is params
  two = (rda_optax.rmda(0.1, momentum=0.5).init(params),) * 2
  with pytest.raises(ValueError, match='both cover'):
    rda_optax.sparse_params(two, params)
  with pytest.raises(ValueError, match='RMDAState.*themselves'):
    rda_optax.sparse_params(rda_optax.rmda(0.1, momentum=0).init(params))


@pytest.mark.parametrize(
    'make, match',
    [
        (lambda: rda_optax.rmda(0.0), 'learning_rate > 0'),
        (lambda: rda_optax.rmda(0.1, momentum=1.0), 'momentum in'),
        (lambda: rda_optax.rmda(0.1, momentum=-0.1), 'momentum in'),
        (lambda: rda_optax.rmda(0.1, regularizer=1e-4), 'Regularizer'),
        (lambda: rda_optax.rmda(0.1, restart_steps=(-1,)), 'restart_steps'),
        (lambda: rda_optax.asr(optax.sgd(0.1), retrain='sgd'), 'retrain'),
    ],
)
def test_invalid_hyperparameters(make, match):
  with pytest.raises((ValueError, TypeError), match=match):
    make()


def test_inject_hyperparams_and_bf16():
  opt = optax.inject_hyperparams(rda_optax.rmda)(
      learning_rate=0.1, regularizer=rda_optax.l1(0.1), momentum=0.9
  )
  ref = rda_optax.rmda(0.1, rda_optax.l1(0.1), momentum=0.9)
  params, grads = random_params(), random_grads(5)
  got, s1 = run(opt, params, grads)
  want, _ = run(ref, params, grads)
  np.testing.assert_allclose(got[-1]['conv'], want[-1]['conv'], rtol=1e-6)
  assert float(s1.hyperparams['momentum']) == pytest.approx(0.9)
  bf = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
  traj, state = run(ref, bf, grads)
  assert traj[-1]['conv'].dtype == jnp.bfloat16
  assert state.grad_sum['conv'].dtype == jnp.float32
  sparse = rda_optax.sparse_params(state, traj[-1])
  assert sparse['conv'].dtype == jnp.bfloat16


@pytest.mark.parametrize(
    'make',
    [
        lambda: rda_optax.rmda(0.1, rda_optax.l1(0.01), momentum=0.9),
        lambda: rda_optax.rda(1.0, rda_optax.l1(0.01)),
    ],
    ids=['rmda', 'rda'],
)
def test_a_nan_gradient_poisons_the_sum_unless_guarded(make):
  params, grads = random_params(), random_grads(3)
  bad = jax.tree.map(lambda g: np.full_like(g, np.nan), grads[1])
  seq = [grads[0], bad, grads[2]]
  traj, _ = run(make(), params, seq)
  assert np.isnan(traj[-1]['dense']).all()  # Poisoned for good.
  guarded = optax.apply_if_finite(make(), max_consecutive_errors=3)
  traj_g, state = run(guarded, params, seq)
  want, _ = run(make(), params, [grads[0], grads[2]])
  np.testing.assert_allclose(traj_g[-1]['dense'], want[-1]['dense'], rtol=1e-6)
  assert int(state.total_notfinite) == 1


@pytest.mark.parametrize(
    'reg, dtype',
    [
        (rda_optax.l1(0.1), jnp.float32),
        (rda_optax.l1(0.1), jnp.bfloat16),
        (rda_optax.group_lasso(1.0), jnp.float32),
        (rda_optax.sparse_group_lasso(0.1, 0.3), jnp.float32),
        (rda_optax.sparsity_constraint(0.6), jnp.bfloat16),
        (
            rda_optax.sparsity_constraint(optax.linear_schedule(0.2, 0.8, 10)),
            jnp.float32,
        ),
        (
            rda_optax.partitioned(
                {'k': rda_optax.l1(0.1), 'b': rda_optax.l1(0.01)},
                {'conv': 'k', 'dense': 'k', 'bias': 'b'},
            ),
            jnp.float32,
        ),
    ],
    ids=[
        'l1',
        'l1-bf16',
        'group',
        'sgl',
        'constraint-bf16',
        'ramp',
        'partitioned',
    ],
)
def test_sparse_point_is_recomputed(reg, dtype):
  """The state holds w0 and G (2 trees, not 3): the prox point is recomputed
  from them as the update computed it. With a momentum passed as an array of
  value 0 the state keeps the point's recipe and the parameters land on the
  point itself (w + (w̃ − w)), so the two agree: the same zeros, the same
  values to a rounding or two (two programs fuse multiply-adds apart)."""
  opt = optax.inject_hyperparams(
      rda_optax.rmda, static_args=('restart_steps', 'mask')
  )(
      learning_rate=optax.cosine_decay_schedule(0.1, 12),
      regularizer=reg,
      momentum=0.0,
      mask=lambda p: jax.tree.map(lambda x: x.ndim > 0, p),
      restart_steps=(6,),
  )
  params = jax.tree.map(lambda p: p.astype(dtype), random_params())
  tol = 2 * float(jnp.finfo(dtype).eps)  # (the weights are O(1))
  state = opt.init(params)
  assert rda_optax.sparse_point.has_sparse_point(state)
  assert rda_optax.sparse_params(state, params) is not params
  step = jax.jit(opt.update)
  zeros = 0
  for g in random_grads(10):
    updates, state = step(jax.tree.map(jnp.asarray, g), state, params)
    params = optax.apply_updates(params, updates)
    sparse = jax.jit(rda_optax.sparse_params)(state, params)
    for k in SHAPES:
      assert sparse[k].dtype == dtype
      got = np.asarray(sparse[k], np.float32)
      want = np.asarray(params[k], np.float32)
      np.testing.assert_array_equal(got == 0, want == 0)
      np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
      zeros += int((got == 0).sum())
  assert zeros > 0
  # Two parameter-sized trees in the state, as SGD with momentum has one;
  # a sparsity constraint too (its dual point is recomputed in each pass,
  # never stored); a partition holding one adds the room its dual point is
  # written into (one array the size of the selected leaves).
  sizes = [x.size for x in jax.tree.leaves(state.inner_state)]
  n = sum(x.size for x in jax.tree.leaves(params))
  buffered = reg.ranks_input and not hasattr(reg, 'prox_computed')
  trees = 3 if buffered else 2
  assert sum(s for s in sizes if s > 1) == trees * n


def test_the_prox_recipe_survives_a_checkpoint_and_a_pickle(tmp_path):
  import pickle  # pylint: disable=import-outside-toplevel

  def build(learning_rate, lam):  # λ as an array, as the train job passes it
    return rda_optax.rmda(learning_rate, rda_optax.l1(lam), momentum=0.9)

  opt = optax.inject_hyperparams(build)(
      learning_rate=0.1, lam=optax.linear_schedule(0.05, 0.2, 5)
  )
  params, grads = random_params(), random_grads(6)
  traj, state = run(opt, params, grads)
  params = jax.tree.map(jnp.asarray, traj[-1])
  want = rda_optax.sparse_params(state, params)
  assert state.inner_state.prox.regularizer.strength.shape == ()
  # Equal structures for equal transforms, whatever λ (traced or not).
  assert jax.tree.structure(opt.init(params)) == jax.tree.structure(state)
  again = pickle.loads(pickle.dumps(jax.device_get(state)))
  assert jax.tree.structure(again) == jax.tree.structure(state)
  got = rda_optax.sparse_params(again, params)
  for k in SHAPES:
    np.testing.assert_array_equal(got[k], want[k])


def test_a_factory_making_new_closures_keeps_one_state_structure():
  """A build function that makes its mask and its labels anew at each call
  (``optax.inject_hyperparams`` calls it at every update, the train job's
  --scale_lam did) gives one state structure: equal closures (same code,
  equal captured values) are one static part. Else every update would
  change the structure (a retrace per step) and ASR's ``lax.cond`` between
  the two branches would fail."""

  def build(learning_rate, lam):
    labels = lambda p: jax.tree.map(lambda x: 'w' if x.ndim > 1 else 'b', p)
    reg = rda_optax.partitioned(
        {'w': rda_optax.l1(lam), 'b': rda_optax.l1(lam / 10)}, labels
    )
    return rda_optax.rmda(
        learning_rate,
        reg,
        momentum=0.9,
        mask=lambda p: jax.tree.map(lambda x: x.ndim > 0, p),
    )

  opt = rda_optax.asr(
      optax.inject_hyperparams(build)(learning_rate=0.1, lam=0.05),
      retrain=optax.sgd(0.01),
      start_step=3,
  )
  params = random_params()
  state = opt.init(params)
  step = jax.jit(opt.update)
  for g in random_grads(5):
    updates, new_state = step(jax.tree.map(jnp.asarray, g), state, params)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    state, params = new_state, optax.apply_updates(params, updates)
  assert step._cache_size() == 1


# ---------------------------------------------------------------------------
# rmda(sparsity_constraint(s)): the threshold search's state in RMDAState.

BIG = {'conv': (3, 3, 16, 32), 'dense': (300, 20), 'bias': (20,)}  # 10,608


def _big(seed, scale=0.3):
  rng = np.random.default_rng(seed)
  return {
      k: jnp.asarray(rng.normal(scale=scale, size=s), jnp.float32)
      for k, s in BIG.items()
  }


def _zeros(tree, keys=('conv', 'dense')):
  return np.concatenate([np.ravel(np.asarray(tree[k]) == 0) for k in keys])


@pytest.mark.xla_default
def test_sparse_params_has_exactly_the_updates_zeros():
  """Over steps where the threshold moves (a ramp, then a restart), each
  update's projection is found warm (one counting pass once the drift is
  known) and sparse_params, which recomputes the point from the state
  (jitted or not), zeroes exactly the entries the update zeroed:
  round(s·n) of the selected ones. (A momentum passed as an array of value
  0: the parameters land on the prox point itself.)"""
  ramp = functools.partial(
      rda_optax.zhu_gupta_sparsity,
      final_sparsity=0.9,
      begin_step=0,
      end_step=3,
  )
  opt = rda_optax.rmda(
      0.05,
      rda_optax.sparsity_constraint(ramp),
      momentum=jnp.float32(0.0),
      restart_steps=(6,),
  )
  params = _big(0)
  n = sum(np.prod(BIG[k]) for k in ('conv', 'dense'))
  state = opt.init(params)
  step = jax.jit(opt.update)
  sparse_jit = jax.jit(rda_optax.sparse_params)
  passes = []
  for t in range(9):
    grads = _big(100 + t, scale=0.5)
    updates, state = step(grads, state, params)
    params = optax.apply_updates(params, updates)
    want = _zeros(params)
    assert want.sum() == round(float(ramp(t)) * n), t
    np.testing.assert_array_equal(_zeros(sparse_jit(state, params)), want)
    if t == 8:  # (Eagerly: slower.)
      eager = rda_optax.sparse_params(state, params)
      np.testing.assert_array_equal(_zeros(eager), want)
    passes.append(int(state.prox_state.passes[0]))
  # Warm: one pass during and after the ramp; the restart at step 6
  # starts cold again, and its first steps move the threshold fast.
  assert passes[:6] == [1] * 6 and max(passes[6:]) <= 3, passes


def test_the_search_state_survives_inject_hyperparams_asr_and_restarts():
  """The train job's and sparse_training's shape: the target sparsity
  injected as an array into a ramp (a functools.partial), the whole under
  optax.inject_hyperparams and asr (whose lax.cond needs one structure in
  both branches), with a restart: one state structure at every step (one
  compilation) and round(s·n) zeros at the sparse point."""

  def build(learning_rate, sparsity):
    ramp = functools.partial(
        rda_optax.zhu_gupta_sparsity,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=3,
    )
    return rda_optax.rmda(
        learning_rate,
        rda_optax.sparsity_constraint(ramp),
        momentum=0.9,
        restart_steps=(4,),
    )

  opt = rda_optax.asr(
      optax.inject_hyperparams(build)(learning_rate=0.05, sparsity=0.8),
      start_step=6,
  )
  params = _big(1)
  state = opt.init(params)
  step = jax.jit(opt.update)
  for t in range(9):
    updates, new_state = step(_big(200 + t, scale=0.5), state, params)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    state, params = new_state, optax.apply_updates(params, updates)
    if t == 5:  # The last step of the sparse phase.
      n = sum(np.prod(BIG[k]) for k in ('conv', 'dense'))
      sparse = rda_optax.sparse_params(state, params)
      assert _zeros(sparse).sum() == round(0.8 * n)
  assert step._cache_size() == 1
  inner = state.inner_state.inner_state
  assert isinstance(inner.prox_state, rda_optax.ThresholdState)
  # Retraining (restarted RMDA from the sparse point): frozen zeros are the
  # k smallest, a tie at zero found from the last value.
  assert _zeros(params).sum() >= round(0.8 * n)


def test_a_checkpoint_of_the_search_state_resumes_the_same_run(tmp_path):
  """flax.serialization, Orbax and pickle round trips of an
  rmda(sparsity_constraint) state (its ThresholdState and its buffer
  included): sparse_params is the same, and training on from the restored
  state (flax, pickle) gives the same weights, bit for bit, as without the
  round trip."""
  import pickle  # pylint: disable=import-outside-toplevel

  serialization = pytest.importorskip('flax.serialization')
  ocp = pytest.importorskip('orbax.checkpoint')
  opt = rda_optax.rmda(0.05, rda_optax.sparsity_constraint(0.9), momentum=0.9)
  step = jax.jit(opt.update)
  params, state = _big(2), opt.init(_big(2))
  for t in range(3):
    updates, state = step(_big(300 + t, scale=0.5), state, params)
    params = optax.apply_updates(params, updates)
  want = jax.jit(rda_optax.sparse_params)(state, params)

  def go_on(state):
    p = params
    for t in range(2):
      updates, state = step(_big(400 + t, scale=0.5), state, p)
      p = optax.apply_updates(p, updates)
    return p

  reference = go_on(state)
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / 'state', state)
  ckpt.wait_until_finished()
  restored = {
      'flax': serialization.from_bytes(
          opt.init(params), serialization.to_bytes(state)
      ),
      'orbax': ckpt.restore(
          tmp_path / 'state', jax.eval_shape(opt.init, params)
      ),
      'pickle': pickle.loads(pickle.dumps(jax.device_get(state))),
  }
  sparse = jax.jit(rda_optax.sparse_params)
  for how, again in restored.items():
    assert jax.tree.structure(again) == jax.tree.structure(state), how
    got = sparse(jax.tree.map(jnp.asarray, again), params)
    for k in BIG:
      np.testing.assert_array_equal(got[k], want[k], err_msg=how)
    if how == 'orbax':  # (Its arrays compile the step anew: time.)
      continue
    resumed = go_on(jax.tree.map(jnp.asarray, again))
    for k in BIG:
      np.testing.assert_array_equal(resumed[k], reference[k], err_msg=how)


def test_a_layer_scope_and_a_partition_keep_one_search_state_each():
  """scope="layer": one search (one state entry) per leaf, each leaf at
  round(s·n_leaf) zeros; inside partitioned, the constraint's leaves only,
  the other label's l1 beside it."""
  layer = rda_optax.rmda(
      0.05,
      rda_optax.sparsity_constraint(0.75, scope='layer'),
      momentum=jnp.float32(0.0),
  )
  part = rda_optax.rmda(
      0.05,
      rda_optax.partitioned(
          {'k': rda_optax.sparsity_constraint(0.6), 'b': rda_optax.l1(5.0)},
          {'conv': 'k', 'dense': 'k', 'bias': 'b'},
      ),
      momentum=jnp.float32(0.0),
      mask=lambda p: jax.tree.map(lambda x: True, p),
  )
  for opt, check in (
      (
          layer,
          lambda p: [
              int((np.asarray(p[k]) == 0).sum()) == round(0.75 * p[k].size)
              for k in ('conv', 'dense')
          ],
      ),
      (
          part,
          lambda p: [
              _zeros(p).sum() == round(0.6 * (_zeros(p).size)),
              int((np.asarray(p['bias']) == 0).sum()) > 0,
          ],
      ),
  ):
    params = _big(3)
    state = opt.init(params)
    step = jax.jit(opt.update)
    for t in range(4):
      updates, state = step(_big(500 + t, scale=0.5), state, params)
      params = optax.apply_updates(params, updates)
      assert all(check(params)), (t, check(params))
    assert step._cache_size() == 1

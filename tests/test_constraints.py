"""The sparsity constraint: its projection against brute force, and each
optimizer with it against a transcription or a known solution."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from _optim_helpers import SHAPES, np_momentum, random_grads, random_params, run
from test_rmda import np_rmda


def brute_force_projection(v, k_zero):
  """argmin ½‖x − v‖² over x with at least ``k_zero`` zeros, by trying every
  support (the minimum is v on the kept entries)."""
  n = v.size
  flat = v.ravel()
  best, best_obj = None, np.inf
  for zeros in itertools.combinations(range(n), k_zero):
    x = flat.copy()
    x[list(zeros)] = 0
    obj = 0.5 * np.sum((x - flat) ** 2)
    if obj < best_obj - 1e-12:
      best, best_obj = x, obj
  return best.reshape(v.shape), best_obj


@pytest.mark.parametrize('sparsity', [0.0, 0.25, 0.5, 0.75])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_projection_vs_brute_force(sparsity, seed):
  v = np.random.default_rng(seed).normal(size=(2, 4)).astype(np.float32)
  got = np.asarray(rda_optax.sparsity_constraint(sparsity).prox(v, t=1.0))
  _, want_obj = brute_force_projection(v, round(sparsity * v.size))
  assert np.sum(got == 0) == round(sparsity * v.size)
  np.testing.assert_allclose(
      0.5 * np.sum((got - v) ** 2), want_obj, rtol=1e-6, atol=1e-7
  )
  kept = got != 0
  np.testing.assert_array_equal(got[kept], v[kept])  # A projection: no shrink.


@pytest.mark.parametrize('scope', ['global', 'layer'])
def test_tree_projection_vs_brute_force(scope):
  rng = np.random.default_rng(3)
  tree = {
      'a': rng.normal(size=(2, 3)).astype(np.float32),
      'b': 3 * rng.normal(size=(3, 2)).astype(np.float32),
      'bias': rng.normal(size=(3,)).astype(np.float32),
  }
  selected = {'a': True, 'b': True, 'bias': False}
  c = rda_optax.sparsity_constraint(0.5, scope=scope)
  got = jax.tree.map(np.asarray, c.prox_tree(tree, selected, t=1.0))
  np.testing.assert_array_equal(got['bias'], tree['bias'])  # Not selected.
  if scope == 'global':  # One support over both leaves (12 entries).
    joint = np.concatenate([tree['a'].ravel(), tree['b'].ravel()])
    want, _ = brute_force_projection(joint, 6)
    np.testing.assert_array_equal(
        np.concatenate([got['a'].ravel(), got['b'].ravel()]), want
    )
  else:
    for k in ('a', 'b'):
      want, _ = brute_force_projection(tree[k], 3)
      np.testing.assert_array_equal(got[k], want)


def test_schedule_dtype_and_jit():
  sched = functools.partial(
      rda_optax.zhu_gupta_sparsity,
      final_sparsity=0.5,
      begin_step=0,
      end_step=10,
  )
  c = rda_optax.sparsity_constraint(sched)
  v = jnp.arange(1.0, 9.0, dtype=jnp.bfloat16).reshape(2, 4)
  out0 = jax.jit(lambda x, n: c.prox(x, 1.0, n))(v, 0)
  out10 = jax.jit(lambda x, n: c.prox(x, 1.0, n))(v, 10)
  assert out10.dtype == jnp.bfloat16
  assert int(jnp.sum(out0 == 0)) == 0 and int(jnp.sum(out10 == 0)) == 4
  np.testing.assert_array_equal(out10.ravel()[4:], v.ravel()[4:])
  assert float(c.value(v)) == 0.0


def test_invalid_hyperparameters():
  with pytest.raises(ValueError, match=r'sparsity in \[0, 1\)'):
    rda_optax.sparsity_constraint(1.0)
  with pytest.raises(ValueError, match='scope must be "global"'):
    rda_optax.sparsity_constraint(0.5, scope='network')


def np_project_global(tree, sparsity):
  """Keep the largest magnitudes of 'conv' and 'dense' together (NumPy,
  float64; the random data has no ties)."""
  keys = [k for k in SHAPES if k != 'bias']
  flat = np.concatenate([tree[k].ravel() for k in keys])
  k_zero = round(sparsity * flat.size)
  order = np.argsort(np.abs(flat), kind='stable')
  flat = flat.copy()
  flat[order[:k_zero]] = 0
  out, offset = dict(tree), 0
  for k in keys:
    out[k] = flat[offset : offset + tree[k].size].reshape(tree[k].shape)
    offset += tree[k].size
  return out


@pytest.mark.xla_default
@pytest.mark.parametrize('momentum', [0.0, 0.9])
def test_rmda_with_the_constraint_matches_numpy(momentum):
  sched = functools.partial(
      rda_optax.zhu_gupta_sparsity,
      final_sparsity=0.8,
      begin_step=0,
      end_step=20,
  )
  lr = 0.1
  params, grads = random_params(), random_grads(40)
  traj, state = run(
      rda_optax.rmda(
          lr, rda_optax.sparsity_constraint(sched), momentum=momentum
      ),
      params,
      grads,
  )

  # np_rmda's prox is per leaf; the global projection couples the leaves, so
  # transcribe the step here (the same formulas as np_rmda, λ unused).
  w = {k: np.asarray(v, np.float64) for k, v in params.items()}
  w0, G, alpha = dict(w), {k: np.zeros(s) for k, s in SHAPES.items()}, 0.0
  for n, g in enumerate(grads):
    k_ = n + 1
    s = lr * np.sqrt(k_)
    alpha += s
    v = {}
    for k in SHAPES:
      G[k] = G[k] + s * g[k]
      v[k] = w0[k] - G[k] / np.sqrt(k_)
    wt = np_project_global(v, float(sched(n)))
    for k in SHAPES:
      w[k] = momentum * w[k] + (1 - momentum) * wt[k]
    for k in SHAPES:
      np.testing.assert_allclose(
          traj[n][k], w[k], rtol=2e-5, atol=2e-6, err_msg=f'step {n}, {k}'
      )
  sparse = rda_optax.sparse_params(state, traj[-1])
  n_sel = sum(np.size(sparse[k]) for k in SHAPES if k != 'bias')
  n_zero = sum(
      int(np.sum(np.asarray(sparse[k]) == 0)) for k in SHAPES if k != 'bias'
  )
  assert n_zero == round(0.8 * n_sel)


def test_np_rmda_agrees_for_a_per_layer_constraint():
  """With scope='layer' the prox is per leaf: the shared transcription
  applies as it is."""

  def np_layer(v, thr, s=0.5):
    del thr
    k_zero = round(s * v.size)
    flat = v.ravel().copy()
    flat[np.argsort(np.abs(flat), kind='stable')[:k_zero]] = 0
    return flat.reshape(v.shape)

  params, grads = random_params(), random_grads(25)
  traj, _ = run(
      rda_optax.rmda(
          0.05, rda_optax.sparsity_constraint(0.5, scope='layer'), momentum=0.9
      ),
      params,
      grads,
  )
  want, _ = np_rmda(params, grads, 0.05, 0.9, np_layer, 1.0)
  for n in (0, 10, 24):
    for k in SHAPES:
      np.testing.assert_allclose(traj[n][k], want[n][k], rtol=2e-5, atol=2e-6)


def test_prox_sgd_with_the_constraint_is_iht_and_recovers_a_sparse_signal():
  """Iterative hard thresholding (Blumensath & Davies) recovers a 5-sparse
  vector from 40 random measurements of 100 unknowns."""
  rng = np.random.default_rng(0)
  n, m, k = 100, 40, 5
  a = rng.normal(size=(m, n)) / np.sqrt(m)
  x_true = np.zeros(n)
  x_true[rng.choice(n, k, replace=False)] = rng.choice([-1.0, 1.0], k) * (
      1 + rng.random(k)
  )
  y = a @ x_true
  a, y = jnp.asarray(a, jnp.float32), jnp.asarray(y, jnp.float32)
  loss = lambda p: 0.5 * jnp.sum((a @ p['x'][:, 0] - y) ** 2)
  opt = rda_optax.prox_sgd(
      0.5,
      rda_optax.sparsity_constraint(1 - k / n),
      momentum=None,
      mask={'x': True},
  )
  params = {'x': jnp.zeros((n, 1))}
  state = opt.init(params)

  @jax.jit
  def step(params, state):
    updates, state = opt.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(300):
    params, state = step(params, state)
  np.testing.assert_allclose(params['x'][:, 0], x_true, atol=1e-4)


@pytest.mark.parametrize(
    'momentum, nesterov', [(None, False), (0.9, False), (0.9, True)]
)
def test_prox_sgd_with_the_constraint_matches_numpy(momentum, nesterov):
  """prox_sgd with a sparsity constraint, on kernels of 7,168 entries
  (beyond the size the search sorts): with heavy-ball momentum or none the
  step's point is projected without being written out (the search and the
  masks recompute it from the parameters and the momentum or gradient),
  with Nesterov's it is written once; either way the trajectory is NumPy's
  float64 one and every step has exactly round(s·n) zeros, along a
  schedule of s."""
  rng = np.random.default_rng(3)
  shapes = {'conv': (3, 3, 16, 32), 'dense': (64, 40), 'bias': (40,)}
  params = {
      k: jnp.asarray(rng.normal(scale=0.3, size=s), jnp.float32)
      for k, s in shapes.items()
  }
  grads = [
      {
          k: rng.normal(scale=0.5, size=s).astype(np.float32)
          for k, s in shapes.items()
      }
      for _ in range(12)
  ]
  sched = lambda count: 0.5 + 0.02 * jnp.minimum(count, 10)
  lr = 0.05
  traj, _ = run(
      rda_optax.prox_sgd(
          lr,
          rda_optax.sparsity_constraint(sched),
          momentum=momentum,
          nesterov=nesterov,
      ),
      params,
      grads,
  )
  keys = ['conv', 'dense']
  n_sel = sum(int(np.prod(shapes[k])) for k in keys)
  w = {k: np.asarray(v, np.float64) for k, v in params.items()}
  d = {k: np.zeros(s) for k, s in shapes.items()}
  for n, g in enumerate(grads):
    s = 0.5 + 0.02 * min(n, 10)
    v = {}
    for k in shapes:
      d[k], direction = np_momentum(d[k], g[k], momentum, nesterov)
      v[k] = w[k] - lr * direction
    flat = np.concatenate([v[k].ravel() for k in keys])
    k_zero = round(s * n_sel)
    flat[np.argsort(np.abs(flat), kind='stable')[:k_zero]] = 0
    w = dict(v, conv=flat[:4608].reshape(shapes['conv']))
    w['dense'] = flat[4608:].reshape(shapes['dense'])
    zeros = sum(int(np.sum(traj[n][k] == 0)) for k in keys)
    assert zeros == k_zero, f'step {n}'
    for k in shapes:
      np.testing.assert_allclose(
          traj[n][k], w[k], rtol=2e-5, atol=2e-6, err_msg=f'step {n}, {k}'
      )


def test_splitting_keeps_the_projection_of_w():
  opt = rda_optax.variable_splitting(
      optax.sgd(0.1), rda_optax.sparsity_constraint(0.75), beta=1.0
  )
  params = {'w': jnp.arange(1.0, 9.0).reshape(2, 4), 'b': jnp.ones(2)}
  state = opt.init(params)
  v = rda_optax.sparse_params(state)
  np.testing.assert_array_equal(v['w'], [[0, 0, 0, 0], [0, 0, 7, 8]])
  np.testing.assert_array_equal(v['b'], [1, 1])


def test_inject_hyperparams_and_multisteps():
  params, grads = random_params(), random_grads(6)
  opt = optax.inject_hyperparams(rda_optax.rmda)(
      learning_rate=0.1,
      momentum=0.0,
      regularizer=rda_optax.sparsity_constraint(0.5),
  )
  traj, _ = run(opt, params, grads)
  ref, _ = run(
      rda_optax.rmda(0.1, rda_optax.sparsity_constraint(0.5), momentum=0.0),
      params,
      grads,
  )
  for k in SHAPES:
    np.testing.assert_allclose(traj[-1][k], ref[-1][k], rtol=1e-6)
  multi = optax.MultiSteps(
      rda_optax.rmda(0.1, rda_optax.sparsity_constraint(0.5), momentum=0.0),
      every_k_schedule=2,
  )
  traj2, _ = run(multi, params, grads)
  sel = sum(np.size(traj2[-1][k]) for k in SHAPES if k != 'bias')
  zeros = sum(
      int(np.sum(np.asarray(traj2[-1][k]) == 0)) for k in SHAPES if k != 'bias'
  )
  assert zeros == round(0.5 * sel)

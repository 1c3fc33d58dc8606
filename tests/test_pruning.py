"""Tests for rda_optax.pruning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rda_optax.pruning import GradualPruningState
from rda_optax.pruning import apply_masks
from rda_optax.pruning import gradual_magnitude_pruning
from rda_optax.pruning import magnitude_masks
from rda_optax.pruning import zhu_gupta_sparsity


def _params(seed=0, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  return {
      'conv': {
          'kernel': jnp.asarray(rng.normal(size=(3, 3, 4, 5)), dtype),
          'bias': jnp.asarray(rng.normal(size=5), dtype),
      },
      'dense': {
          'kernel': jnp.asarray(3.0 * rng.normal(size=(20, 7)), dtype),
          'bias': jnp.asarray(rng.normal(size=7), dtype),
      },
  }


def _n_pruned(m):
  return int(np.sum(~np.asarray(m)))


# --------------------------------------------------------------------------
# magnitude_masks / apply_masks


@pytest.mark.parametrize('sparsity', [0.0, 0.3, 0.5, 0.9, 0.99])
def test_layer_masks_exact_count_and_smallest(sparsity):
  params = _params()
  masks = magnitude_masks(params, sparsity)
  for name in ('conv', 'dense'):
    w = np.abs(np.asarray(params[name]['kernel']))
    m = np.asarray(masks[name]['kernel'])
    assert m.dtype == bool and m.shape == w.shape
    assert _n_pruned(m) == round(sparsity * w.size)
    if 0 < _n_pruned(m) < w.size:
      assert w[~m].max() <= w[m].min()
    # Biases are not selected by default.
    assert np.all(np.asarray(masks[name]['bias']))
    assert masks[name]['bias'].shape == params[name]['bias'].shape


@pytest.mark.parametrize('sparsity', [0.25, 0.8])
def test_global_masks_exact_count_and_single_threshold(sparsity):
  params = _params()
  masks = magnitude_masks(params, sparsity, scope='global')
  kernels = [np.abs(np.asarray(params[n]['kernel'])) for n in ('conv', 'dense')]
  ms = [np.asarray(masks[n]['kernel']) for n in ('conv', 'dense')]
  n = sum(w.size for w in kernels)
  assert sum(_n_pruned(m) for m in ms) == round(sparsity * n)
  pruned = np.concatenate([w[~m] for w, m in zip(kernels, ms)])
  kept = np.concatenate([w[m] for w, m in zip(kernels, ms)])
  assert pruned.max() <= kept.min()
  # The dense kernel has 3x larger weights, so it is pruned less.
  assert _n_pruned(ms[1]) / ms[1].size < _n_pruned(ms[0]) / ms[0].size
  assert np.all(np.asarray(masks['conv']['bias']))


def test_ties_are_broken_by_position():
  w = jnp.ones((2, 5))
  m = np.asarray(magnitude_masks(w, 0.3, mask=True))
  # round(0.3 * 10) = 3 pruned: the first three in row-major order.
  np.testing.assert_array_equal(
      m, [[False, False, False, True, True], [True, True, True, True, True]]
  )
  # Half-way counts round to even: round(0.45 * 10) = round(4.5) = 4.
  assert _n_pruned(magnitude_masks(w, 0.45, mask=True)) == 4
  # Ties at the threshold among other values: only the needed ones go.
  w = jnp.array([3.0, 0.0, 1.0, -1.0, 0.0, 1.0, 2.0, -1.0])
  m = np.asarray(magnitude_masks(w, 0.5, mask=True))
  np.testing.assert_array_equal(
      m, [True, False, False, False, False, True, True, True]
  )
  # Global ties follow jax.tree.leaves order.
  tree = {'a': jnp.ones((2, 2)), 'b': jnp.ones((2, 2))}
  masks = magnitude_masks(tree, 0.5, scope='global')
  assert _n_pruned(masks['a']) == 4 and _n_pruned(masks['b']) == 0


def test_unselected_leaves_untouched_and_custom_mask():
  params = _params()
  masks = magnitude_masks(params, 0.5, mask={'conv': True, 'dense': False})
  assert _n_pruned(masks['conv']['kernel']) == 90
  assert _n_pruned(masks['conv']['bias']) == 2  # round(0.5 * 5) = 2 (even)
  assert np.all(np.asarray(masks['dense']['kernel']))
  masks = magnitude_masks(
      params, 0.5, mask=lambda p: jax.tree.map(lambda x: x.ndim == 2, p)
  )
  assert _n_pruned(masks['dense']['kernel']) == 70
  assert np.all(np.asarray(masks['conv']['kernel']))


def test_per_leaf_sparsity_tree():
  params = _params()
  masks = magnitude_masks(params, {'conv': 0.2, 'dense': 0.6})
  assert _n_pruned(masks['conv']['kernel']) == round(0.2 * 180)
  assert _n_pruned(masks['dense']['kernel']) == round(0.6 * 140)
  with pytest.raises(ValueError, match='layer'):
    magnitude_masks(params, {'conv': 0.2, 'dense': 0.6}, scope='global')
  with pytest.raises(ValueError, match=r'\[0, 1\)'):
    magnitude_masks(params, {'conv': 0.2, 'dense': 1.0})


def test_masks_under_jit_with_traced_sparsity():
  params = _params()
  eager = magnitude_masks(params, 0.7)
  jitted = jax.jit(lambda p, s: magnitude_masks(p, s))(params, 0.7)
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
    np.testing.assert_array_equal(a, b)
  g = jax.jit(lambda p, s: magnitude_masks(p, s, scope='global'))(params, 0.7)
  assert sum(_n_pruned(g[n]['kernel']) for n in ('conv', 'dense')) == 224


def test_apply_masks_exact_zeros_and_dtype():
  params = _params(dtype=jnp.bfloat16)
  masks = magnitude_masks(params, 0.6)
  pruned = apply_masks(params, masks)
  for p, q, m in zip(
      jax.tree.leaves(params), jax.tree.leaves(pruned), jax.tree.leaves(masks)
  ):
    assert q.dtype == jnp.bfloat16
    q, p, m = (
        np.asarray(x.astype(jnp.float32)) if x.dtype != bool else np.asarray(x)
        for x in (q, p, m)
    )
    assert np.all(q[~m] == 0) and np.array_equal(q[m], p[m])
  assert _n_pruned(masks['dense']['kernel']) == int(
      np.sum(np.asarray(pruned['dense']['kernel']) == 0)
  )


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(sparsity=1.0), r'\[0, 1\)'),
        (dict(sparsity=-0.1), r'\[0, 1\)'),
        (dict(sparsity=0.5, scope='per_layer'), 'scope'),
        (dict(sparsity=0.5, mask={'nope': True}), 'mask'),
    ],
)
def test_magnitude_masks_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    magnitude_masks(_params(), **kwargs)


# --------------------------------------------------------------------------
# zhu_gupta_sparsity


def _np_zhu_gupta(t, s_f, t0, t1, s_i=0.0, dt=1):
  """NumPy transcription: s_f + (s_i - s_f)(1 - (tau - t0)/(t1 - t0))^3."""
  if t < t0:
    tau = t0
  elif t >= t1:
    tau = t1
  else:
    tau = t0 + ((t - t0) // dt) * dt
  p = 1.0 if t >= t1 else (tau - t0) / max(t1 - t0, 1)
  return s_f + (s_i - s_f) * (1.0 - p) ** 3


@pytest.mark.parametrize(
    's_i, s_f, t0, t1, dt',
    [
        (0.0, 0.9, 10, 110, 1),
        (0.0, 0.9, 10, 110, 10),
        (0.2, 0.75, 0, 23, 5),  # end not on the grid
        (0.1, 0.5, 7, 7, 3),  # begin == end: a single jump
    ],
)
def test_zhu_gupta_matches_numpy(s_i, s_f, t0, t1, dt):
  kw = dict(
      final_sparsity=s_f,
      begin_step=t0,
      end_step=t1,
      initial_sparsity=s_i,
      frequency=dt,
  )
  steps = np.arange(0, t1 + 20)
  ours = np.asarray(
      jax.jit(jax.vmap(lambda t: zhu_gupta_sparsity(t, **kw)))(steps)
  )
  assert ours.dtype == np.float32
  ref = np.array([_np_zhu_gupta(int(t), s_f, t0, t1, s_i, dt) for t in steps])
  np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
  assert np.all(np.diff(ours) >= 0)  # monotone
  np.testing.assert_allclose(ours[steps <= t0 - 1], s_i, atol=1e-7)
  np.testing.assert_allclose(ours[steps >= t1], s_f, atol=1e-7)
  if t1 > t0:
    assert float(zhu_gupta_sparsity(t0, **kw)) == pytest.approx(s_i)


def test_zhu_gupta_is_cubic():
  kw = dict(final_sparsity=0.8, begin_step=0, end_step=100)
  # (s_f - s_t) / (s_f - s_i) = (1 - p)^3.
  for t in (0, 10, 50, 75, 99):
    gap = 0.8 - float(zhu_gupta_sparsity(t, **kw))
    assert gap / 0.8 == pytest.approx((1 - t / 100) ** 3, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(final_sparsity=1.0), r'\[0, 1\)'),
        (dict(final_sparsity=0.5, initial_sparsity=-0.2), r'\[0, 1\)'),
        (dict(final_sparsity=0.5, initial_sparsity=0.6), 'exceed'),
        (dict(final_sparsity=0.5, begin_step=20, end_step=10), 'begin_step'),
        (dict(final_sparsity=0.5, frequency=0), 'frequency'),
        (dict(final_sparsity=0.5, begin_step=-1), 'begin_step'),
        (dict(final_sparsity=0.5, frequency=2.5), 'integer'),
    ],
)
def test_schedule_errors(kwargs, match):
  full = dict(begin_step=0, end_step=10, frequency=1)
  full.update(kwargs)
  with pytest.raises(ValueError, match=match):
    zhu_gupta_sparsity(0, **full)
  with pytest.raises(ValueError, match=match):
    gradual_magnitude_pruning(**full)


def test_gradual_scope_error():
  with pytest.raises(ValueError, match='scope'):
    gradual_magnitude_pruning(
        0.5, begin_step=0, end_step=1, frequency=1, scope='channel'
    )


# --------------------------------------------------------------------------
# gradual_magnitude_pruning


def _quadratic(params, target):
  return (
      sum(
          jnp.sum((p.astype(jnp.float32) - t) ** 2)
          for p, t in zip(jax.tree.leaves(params), jax.tree.leaves(target))
      )
      / 2
  )


def _run(tx, params, n_steps, target):
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    grads = jax.grad(_quadratic)(params, target)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  history = []
  for _ in range(n_steps):
    params, state = step(params, state)
    history.append(params)
  return params, state, history


T0, T1, DT, S_F = 2, 19, 3, 0.8  # mask updates at 2, 5, ..., 17 and 19


def _pruned_per_step(history, leaf_names=('conv', 'dense')):
  return [
      [int(np.sum(np.asarray(h[n]['kernel']) == 0)) for n in leaf_names]
      for h in history
  ]


def test_gradual_pruning_reaches_exact_sparsity_and_stays_zero():
  params = _params()
  target = _params(seed=1)
  tx = optax.chain(
      optax.sgd(0.1, momentum=0.9),
      gradual_magnitude_pruning(S_F, begin_step=T0, end_step=T1, frequency=DT),
  )
  n_steps = 30
  final, state, history = _run(tx, params, n_steps, target)
  assert isinstance(state[1], GradualPruningState)
  assert int(state[1].count) == n_steps
  sizes = (180, 140)
  for t, zeros in enumerate(_pruned_per_step(history)):
    s_t = float(
        zhu_gupta_sparsity(
            t, final_sparsity=S_F, begin_step=T0, end_step=T1, frequency=DT
        )
    )
    expected = [round(s_t * n) if t >= T0 else 0 for n in sizes]
    assert zeros == expected, t
  # Pruned weights stay exactly zero, and the zeros are the masks.
  for name in ('conv', 'dense'):
    m = np.asarray(state[1].masks[name]['kernel'])
    for h in history[T1:]:
      np.testing.assert_array_equal(np.asarray(h[name]['kernel']) == 0, ~m)
    zero_at_end_of = [np.asarray(h[name]['kernel']) == 0 for h in history]
    for a, b in zip(zero_at_end_of, zero_at_end_of[1:]):
      assert np.all(b[a])  # once zero, always zero
  # Biases are never pruned and keep training.
  assert np.all(np.asarray(state[1].masks['dense']['bias']))
  dist = lambda p: float(
      jnp.linalg.norm(p['dense']['bias'] - target['dense']['bias'])
  )
  assert dist(final) < 0.5 * dist(params)


def test_gradual_pruning_global_scope():
  params = _params()
  target = _params(seed=1)
  tx = optax.chain(
      optax.sgd(0.05),
      gradual_magnitude_pruning(
          0.6, begin_step=0, end_step=6, frequency=2, scope='global'
      ),
  )
  _, state, history = _run(tx, params, 8, target)
  zeros = _pruned_per_step(history)[-1]
  assert sum(zeros) == round(0.6 * 320)
  assert zeros[0] / 180 > zeros[1] / 140  # the small-weight conv loses more


def test_before_begin_nothing_is_pruned():
  params = _params()
  tx = gradual_magnitude_pruning(
      0.5, begin_step=100, end_step=200, frequency=10
  )
  state = tx.init(params)
  updates = jax.tree.map(jnp.ones_like, params)
  new_updates, state = tx.update(updates, state, params)
  for u, v in zip(jax.tree.leaves(updates), jax.tree.leaves(new_updates)):
    np.testing.assert_array_equal(u, v)
  assert int(state.count) == 1


def test_missing_params_error():
  tx = gradual_magnitude_pruning(0.5, begin_step=0, end_step=2, frequency=1)
  params = _params()
  state = tx.init(params)
  with pytest.raises(ValueError, match='params'):
    tx.update(params, state)


def test_bf16_dtype_preserved():
  params = _params(dtype=jnp.bfloat16)
  target = _params(seed=1)
  tx = optax.chain(
      optax.sgd(0.1),
      gradual_magnitude_pruning(0.5, begin_step=0, end_step=4, frequency=2),
  )
  final, state, _ = _run(tx, params, 6, target)
  for p in jax.tree.leaves(final):
    assert p.dtype == jnp.bfloat16
  assert int(jnp.sum(final['conv']['kernel'] == 0)) == 90
  assert int(jnp.sum(final['dense']['kernel'] == 0)) == 70
  assert jax.tree.leaves(state[1].masks)[0].dtype == bool


def test_inject_hyperparams():
  params = _params()
  target = _params(seed=1)
  tx = optax.chain(
      optax.sgd(0.05),
      optax.inject_hyperparams(gradual_magnitude_pruning)(
          final_sparsity=0.5, begin_step=1, end_step=5, frequency=2
      ),
  )
  state = tx.init(params)
  assert float(state[1].hyperparams['final_sparsity']) == 0.5
  # Change the injected final sparsity before any pruning happened.
  hp = dict(state[1].hyperparams, final_sparsity=jnp.asarray(0.75))
  state = (state[0], state[1]._replace(hyperparams=hp))

  @jax.jit
  def step(params, state):
    grads = jax.grad(_quadratic)(params, target)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(7):
    params, state = step(params, state)
  assert _pruned_per_step([params])[0] == [135, 105]


def test_multisteps():
  params = _params()
  target = _params(seed=1)
  inner = optax.chain(
      optax.sgd(0.05),
      gradual_magnitude_pruning(0.5, begin_step=0, end_step=4, frequency=2),
  )
  tx = optax.MultiSteps(inner, every_k_schedule=2)
  final, state, history = _run(tx, params, 12, target)
  assert int(state.inner_opt_state[1].count) == 6
  assert _pruned_per_step(history)[-1] == [90, 70]
  zeros = [np.asarray(h['dense']['kernel']) == 0 for h in history]
  for a, b in zip(zeros, zeros[1:]):
    assert np.all(b[a])


def test_pmap():
  n_dev = jax.local_device_count()
  params = _params()
  target = _params(seed=1)
  tx = optax.chain(
      optax.sgd(0.05),
      gradual_magnitude_pruning(0.5, begin_step=0, end_step=2, frequency=1),
  )
  state = tx.init(params)
  rep = lambda x: jnp.broadcast_to(x, (n_dev,) + x.shape)

  @jax.pmap
  def step(params, state):
    grads = jax.grad(_quadratic)(params, target)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  p, s = jax.tree.map(rep, params), jax.tree.map(rep, state)
  for _ in range(3):
    p, s = step(p, s)
  assert int(jnp.sum(p['conv']['kernel'][0] == 0)) == 90


def test_one_shot_pruning_at_step_zero_then_held():
  params = _params()
  target = _params(seed=1)
  tx = optax.chain(
      optax.sgd(0.05),
      gradual_magnitude_pruning(0.7, begin_step=0, end_step=0, frequency=1),
  )
  _, state, history = _run(tx, params, 4, target)
  first = [np.asarray(history[0][n]['kernel']) == 0 for n in ('conv', 'dense')]
  assert [int(z.sum()) for z in first] == [126, 98]
  for h in history[1:]:
    for z, n in zip(first, ('conv', 'dense')):
      np.testing.assert_array_equal(np.asarray(h[n]['kernel']) == 0, z)


def test_docstring_examples():
  import doctest
  from rda_optax import pruning

  result = doctest.testmod(pruning, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.failed == 0 and result.attempted > 0


def test_masks_match_a_stable_sort_of_the_magnitudes_on_large_inputs():
  """Beyond the sizes that are sorted (the counting search of
  rda_optax.threshold, tested there on every kind of data), with ties
  straddling the threshold or not, over two leaves ranked together:
  exactly the entries a stable argsort of |w| puts first."""
  n = 70_001
  rng = np.random.default_rng(n)
  for v in (
      rng.normal(size=n),
      rng.integers(-50, 50, size=n) * 0.25,  # Ties at every threshold.
      np.where(rng.random(n) < 0.6, 0.0, rng.normal(size=n)),
  ):
    v = v.astype(np.float32)
    tree = {
        'a': jnp.asarray(v[:30_000].reshape(300, 100)),
        'b': jnp.asarray(v[30_000:]),
    }
    for s in (1 / n, 0.5, 0.95, 1 - 1 / n):
      masks = magnitude_masks(tree, s, scope='global', mask=True)
      got = np.concatenate([np.ravel(masks['a']), np.ravel(masks['b'])])
      want = np.ones(n, bool)
      want[np.argsort(np.abs(v), kind='stable')[: round(s * n)]] = False
      np.testing.assert_array_equal(got, want)

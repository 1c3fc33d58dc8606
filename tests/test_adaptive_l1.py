"""rda_optax.adaptive_l1: ℓ1 at the strength that gives a sparsity."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax


def _brute(values, s):
  """Soft threshold at the largest of the round(s·n) smallest magnitudes."""
  flat = np.concatenate([np.abs(v).ravel() for v in values])
  k = int(round(s * flat.size))
  tau = np.sort(flat)[k - 1] if k else 0.0
  order = np.argsort(flat, kind='stable')
  keep = np.ones(flat.size, bool)
  keep[order[:k]] = False
  out, start = [], 0
  for v in values:
    kv = keep[start : start + v.size].reshape(v.shape)
    start += v.size
    out.append(np.where(kv, np.sign(v) * (np.abs(v) - tau), 0.0))
  return out, tau


@pytest.mark.parametrize('s', [0.0, 0.3, 0.9, 0.999])
@pytest.mark.parametrize('scope', ['global', 'layer'])
def test_prox_is_the_soft_threshold_at_the_level(s, scope):
  rng = np.random.default_rng(int(s * 1000))
  tree = {
      'a': rng.normal(size=(7, 5)).astype(np.float32),
      'b': (3 * rng.normal(size=(4, 3, 2))).astype(np.float32),
      'bias': rng.normal(size=5).astype(np.float32),
  }
  selected = {'a': True, 'b': True, 'bias': False}
  reg = rda_optax.adaptive_l1(s, scope=scope)
  out = jax.jit(lambda t: reg.prox_tree(t, selected, 1.0))(tree)
  np.testing.assert_array_equal(out['bias'], tree['bias'])
  if scope == 'global':
    (ea, eb), tau = _brute([tree['a'], tree['b']], s)
    taus = reg.threshold_tree(tree, selected)
    assert taus['bias'] is None and float(taus['a']) == pytest.approx(tau)
  else:
    (ea,), _ = _brute([tree['a']], s)
    (eb,), _ = _brute([tree['b']], s)
  np.testing.assert_allclose(out['a'], ea, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(out['b'], eb, rtol=1e-6, atol=1e-6)
  n = tree['a'].size + tree['b'].size
  zeros = int((out['a'] == 0).sum() + (out['b'] == 0).sum())
  if scope == 'global':
    assert zeros == round(s * n)


def test_single_leaf_prox_and_value():
  reg = rda_optax.adaptive_l1(0.5)
  x = jnp.array([4.0, -1.0, 0.5, 2.0])
  np.testing.assert_allclose(reg.prox(x, 0.3), [3.0, 0.0, 0.0, 1.0])
  assert float(reg.value(x)) == 0.0


@pytest.mark.xla_default
def test_rmda_reaches_the_ramp_exactly_at_every_step():
  ramp = functools.partial(
      rda_optax.zhu_gupta_sparsity, final_sparsity=0.8, begin_step=2, end_step=8
  )
  tx = rda_optax.rmda(0.1, rda_optax.adaptive_l1(ramp), momentum=0.9)
  params = {'w': jax.random.normal(jax.random.key(0), (30, 20))}
  state = tx.init(params)
  loss = lambda p: jnp.sum((p['w'] - 0.2) ** 2)
  update = jax.jit(tx.update)
  for k in range(12):
    updates, state = update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
    zeros = int((rda_optax.sparse_params(state)['w'] == 0).sum())
    assert zeros == round(float(ramp(k)) * 600), k


def test_bad_arguments():
  with pytest.raises(ValueError, match='sparsity in'):
    rda_optax.adaptive_l1(1.0)
  with pytest.raises(ValueError, match='scope'):
    rda_optax.adaptive_l1(0.5, scope='leaf')

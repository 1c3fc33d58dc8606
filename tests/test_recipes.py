"""rda_optax.sparse_training: the sparsity asked for, from SGD's settings."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax

PARAMS = {
    'conv': {
        'kernel': jax.random.normal(jax.random.key(0), (3, 3, 4, 8)),
        'bias': jnp.zeros(8),
    },
    'dense': {
        'kernel': jax.random.normal(jax.random.key(1), (32, 10)),
        'bias': jnp.zeros(10),
    },
}
TARGET = jax.tree.map(lambda p: 0.3 * jnp.ones_like(p) + 0.1 * p, PARAMS)


def _loss(p):
  return sum(
      jnp.sum((a - b) ** 2)
      for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(TARGET))
  )


def _run(tx, n, params=PARAMS):
  state = tx.init(params)
  update = jax.jit(tx.update)
  history = []
  for _ in range(n):
    updates, state = update(jax.grad(_loss)(params), state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  return params, state, history


def _kernel_zeros(tree):
  return sum(int(jnp.sum(tree[k]['kernel'] == 0)) for k in tree)


@pytest.mark.xla_default
def test_is_rmda_projected_then_asr_by_sgd_bit_for_bit():
  """The recipe is exactly the composition it documents."""
  total, s, mu = 24, 0.8, 0.9
  lr = optax.cosine_decay_schedule(0.05, total)
  tx = rda_optax.sparse_training(
      s, learning_rate=lr, total_steps=total, momentum=mu, ramp=(0.25, 0.5)
  )
  sparse_steps = 16  # 24 - round(24 / 3)
  level = functools.partial(
      rda_optax.zhu_gupta_sparsity,
      final_sparsity=s,
      begin_step=4,
      end_step=8,
  )
  by_hand = rda_optax.asr(
      rda_optax.rmda(
          lambda c: lr(c) / (1 - mu),
          rda_optax.sparsity_constraint(level),
          momentum=mu,
      ),
      start_step=sparse_steps,
      retrain=optax.sgd(lambda c: lr(c + sparse_steps), momentum=mu),
  )
  a, state, _ = _run(tx, total)
  b, _, _ = _run(by_hand, total)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  del state


@pytest.mark.xla_default
@pytest.mark.parametrize('sparsity, scope', [(0.9, 'global'), (0.75, 'layer')])
def test_ends_at_exactly_the_sparsity_and_retraining_keeps_the_zeros(
    sparsity, scope
):
  total = 30
  tx = rda_optax.sparse_training(
      sparsity, learning_rate=0.02, total_steps=total, scope=scope
  )
  params, state, history = _run(tx, total)
  n = sum(PARAMS[k]['kernel'].size for k in PARAMS)
  if scope == 'global':
    assert _kernel_zeros(params) == round(sparsity * n)
  else:
    for k in PARAMS:
      assert int(jnp.sum(params[k]['kernel'] == 0)) == round(
          sparsity * PARAMS[k]['kernel'].size
      )
  # Retraining (updates 20-29) starts from the sparse point and moves no
  # zero; the biases are not sparsified.
  zeros = [jax.tree.map(lambda x: x == 0, h) for h in history[20:]]
  for z in zeros[1:]:
    for k in PARAMS:
      np.testing.assert_array_equal(z[k]['kernel'], zeros[0][k]['kernel'])
  assert all(int(jnp.sum(params[k]['bias'] == 0)) == 0 for k in PARAMS)
  sparse = rda_optax.sparse_params(state, params)
  assert jax.tree.structure(sparse) == jax.tree.structure(params)
  for x, y in zip(jax.tree.leaves(sparse), jax.tree.leaves(params)):
    np.testing.assert_array_equal(x, y)
  assert float(_loss(params)) < float(_loss(PARAMS))


def test_without_retraining_it_is_rmda_to_the_end():
  tx = rda_optax.sparse_training(
      0.9, learning_rate=0.02, total_steps=10, retrain_fraction=0.0
  )
  params, state, _ = _run(tx, 10)
  assert isinstance(state, rda_optax.RMDAState)
  n = sum(PARAMS[k]['kernel'].size for k in PARAMS)
  assert _kernel_zeros(rda_optax.sparse_params(state)) == round(0.9 * n)
  del params


def test_retrain_weight_decay_and_a_mask():
  only_dense = {
      'conv': {'kernel': False, 'bias': False},
      'dense': {'kernel': True, 'bias': False},
  }
  tx = rda_optax.sparse_training(
      0.5,
      learning_rate=0.02,
      total_steps=12,
      mask=only_dense,
      retrain_weight_decay=1e-3,
  )
  params, _, _ = _run(tx, 12)
  assert int(jnp.sum(params['dense']['kernel'] == 0)) == 160
  assert int(jnp.sum(params['conv']['kernel'] == 0)) == 0


def test_inject_hyperparams_with_the_structural_arguments_static():
  static = ('total_steps', 'ramp', 'retrain_fraction')
  tx = optax.inject_hyperparams(rda_optax.sparse_training, static_args=static)(
      sparsity=0.5, learning_rate=0.02, total_steps=12
  )
  a, state, _ = _run(tx, 12)
  b, _, _ = _run(
      rda_optax.sparse_training(0.5, learning_rate=0.02, total_steps=12), 12
  )
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    # 1 / (1 - μ) of an array and of a Python float round differently.
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x == 0, y == 0)
  assert float(state.hyperparams['sparsity']) == 0.5
  with pytest.raises(TypeError, match='static_args'):
    optax.inject_hyperparams(rda_optax.sparse_training)(
        sparsity=0.5, learning_rate=0.02, total_steps=12
    ).init(PARAMS)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(sparsity=1.0), 'sparsity in'),
        (dict(sparsity=-0.1), 'sparsity in'),
        (dict(momentum=1.0), 'momentum in'),
        (dict(total_steps=0), 'total_steps'),
        (dict(total_steps=10.5), 'total_steps'),
        (dict(ramp=(0.6, 0.5)), 'ramp'),
        (dict(ramp=(0.1,)), 'ramp'),
        (dict(retrain_fraction=1.0), 'retrain_fraction'),
        (dict(learning_rate=0.0), 'learning_rate'),
        (dict(retrain_weight_decay=-1.0), 'retrain_weight_decay'),
        (dict(total_steps=1, retrain_fraction=0.9), 'no sparse phase'),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, match):
  args = dict(sparsity=0.9, learning_rate=0.1, total_steps=10)
  args.update(kwargs)
  with pytest.raises((ValueError, TypeError), match=match):
    rda_optax.sparse_training(**args)


def test_the_l1_penalty_reaches_the_same_sparsity():
  total = 18
  tx = rda_optax.sparse_training(
      0.9, learning_rate=0.02, total_steps=total, penalty='l1'
  )
  params, _, _ = _run(tx, total)
  n = sum(PARAMS[k]['kernel'].size for k in PARAMS)
  assert _kernel_zeros(params) == round(0.9 * n)
  with pytest.raises(ValueError, match='penalty'):
    rda_optax.sparse_training(
        0.9, learning_rate=0.1, total_steps=10, penalty='l0'
    )

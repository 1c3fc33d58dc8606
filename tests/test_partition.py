"""rda_optax.partitioned: a regularizer per group of leaves."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from _optim_helpers import multistart_min, normal_like, run

RNG = np.random.default_rng(0)


def _params():
  return {
      'conv': {
          'kernel': jnp.asarray(RNG.normal(size=(3, 3, 2, 4)), jnp.float32)
      },
      'bn': {
          'scale': jnp.asarray(RNG.normal(size=4), jnp.float32),
          'bias': jnp.asarray(RNG.normal(size=4), jnp.float32),
      },
      'fc': {'kernel': jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)},
  }


def _labels(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: 'scales' if path[-1].key == 'scale' else 'kernels',
      params,
  )


def _select(params):  # kernels and batch-norm scales, not the bias
  return jax.tree_util.tree_map_with_path(
      lambda path, p: p.ndim > 1 or path[-1].key == 'scale', params
  )


REG = rda_optax.partitioned(
    {
        'kernels': rda_optax.sparse_group_lasso(0.2, 0.3),
        'scales': rda_optax.l1(0.5),
    },
    _labels,
)


def test_prox_is_each_terms_prox_on_its_leaves():
  params = _params()
  selected = rda_optax.selection.resolve_mask(_select, params)
  out = REG.prox_tree(params, selected, 0.7)
  sgl, l1 = REG.regularizers['kernels'], REG.regularizers['scales']
  for name in ('conv', 'fc'):
    np.testing.assert_array_equal(
        out[name]['kernel'], sgl.prox(params[name]['kernel'], 0.7)
    )
  np.testing.assert_array_equal(
      out['bn']['scale'], l1.prox(params['bn']['scale'], 0.7)
  )
  np.testing.assert_array_equal(out['bn']['bias'], params['bn']['bias'])


def test_prox_vs_brute_force():
  """``argmin ½‖y − v‖² + t·(R_k(y_kernel) + R_s(y_scale))`` over both
  leaves at once, by multi-start derivative-free minimisation."""
  reg = rda_optax.partitioned(
      {
          'k': rda_optax.group_lasso(0.4),
          's': rda_optax.transformed_l1(0.3, a=1.0),
      },
      {'w': 'k', 'g': 's'},
  )
  v = {'w': RNG.normal(size=(2, 2)), 'g': RNG.normal(size=3)}
  t = 1.3
  sel = {'w': True, 'g': True}

  # Jitted: the search evaluates it thousands of times.
  penalty = jax.jit(lambda y: reg.value_tree(y, sel))

  def objective(flat):
    y = {'w': flat[:4].reshape(2, 2), 'g': flat[4:]}
    quad = sum(0.5 * np.sum((y[k] - v[k]) ** 2) for k in v)
    pen = float(penalty(jax.tree.map(jnp.asarray, y)))
    return quad + t * pen

  got = reg.prox_tree(jax.tree.map(jnp.asarray, v), sel, t)
  got_flat = np.concatenate(
      [np.asarray(got['w'], np.float64).ravel(), np.asarray(got['g'])]
  )
  starts = [np.concatenate([v['w'].ravel(), v['g']]), np.zeros(7)] + [
      RNG.normal(size=7) for _ in range(6)
  ]
  best = multistart_min(objective, starts)
  assert objective(got_flat) <= best + 1e-4


def test_value_tree_and_penalty_sum_the_terms():
  params = _params()
  got = rda_optax.penalty(params, REG, mask=_select)
  want = (
      REG.regularizers['kernels'].value(params['conv']['kernel'])
      + REG.regularizers['kernels'].value(params['fc']['kernel'])
      + REG.regularizers['scales'].value(params['bn']['scale'])
  )
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_none_label_and_unselected_leaves_are_untouched():
  params = _params()
  reg = rda_optax.partitioned(
      {'kernels': rda_optax.l1(10.0), 'scales': None}, _labels
  )
  out = reg.prox_tree(params, _select(params), 1.0)
  np.testing.assert_array_equal(out['bn']['scale'], params['bn']['scale'])
  assert not np.any(out['fc']['kernel'])
  assert (
      float(
          reg.value_tree(
              params,
              {
                  'conv': False,
                  'bn': {'scale': True, 'bias': False},
                  'fc': False,
              },
          )
      )
      == 0
  )


def test_global_constraint_ranks_only_its_label():
  params = {'a': jnp.array([[5.0, 4.0]]), 'b': jnp.array([0.1, 0.2])}
  reg = rda_optax.partitioned(
      {'k': rda_optax.sparsity_constraint(0.5), 's': None},
      {'a': 'k', 'b': 's'},
  )
  out = reg.prox_tree(params, {'a': True, 'b': True}, 1.0)
  np.testing.assert_array_equal(out['a'], [[5.0, 0.0]])  # half of 'a' only
  np.testing.assert_array_equal(out['b'], params['b'])


def _rda_pair(lam_k, lam_s):
  """RDA with the partition, and the same as two masked RDAs."""
  part = rda_optax.rda(
      gamma=1.0,
      regularizer=rda_optax.partitioned(
          {'kernels': rda_optax.l1(lam_k), 'scales': rda_optax.l1(lam_s)},
          _labels,
      ),
      mask=_select,
  )
  is_scale = lambda p: jax.tree_util.tree_map_with_path(
      lambda path, _: path[-1].key == 'scale', p
  )
  is_kernel = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  two = optax.multi_transform(
      {
          'k': rda_optax.rda(1.0, rda_optax.l1(lam_k)),
          's': rda_optax.rda(
              1.0,
              rda_optax.l1(lam_s),
              mask=lambda p: jax.tree.map(lambda _: True, p),
          ),
          'o': rda_optax.rda(1.0, None),
      },
      lambda p: jax.tree.map(
          lambda k, s: 'k' if k else ('s' if s else 'o'),
          is_kernel(p),
          is_scale(p),
      ),
  )
  return part, two


def test_rda_with_partition_equals_two_masked_rdas():
  params = _params()
  part, two = _rda_pair(0.05, 1.0)
  grads = [normal_like(params, i) for i in range(5)]
  p1, p2 = run(part, params, grads)[0][-1], run(two, params, grads)[0][-1]
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert np.any(np.asarray(p1['bn']['scale']) == 0)


@pytest.mark.parametrize('method', ['rmda', 'prox_sgd'])
def test_schedules_inject_hyperparams_and_asr(method):
  """Schedules inside a partition, inject_hyperparams around the optimizer,
  and ASR freezing the zeros of both labels."""
  reg = rda_optax.partitioned(
      {
          'kernels': rda_optax.l1(optax.linear_schedule(0.0, 0.05, 3)),
          'scales': rda_optax.l1(2.0),
      },
      _labels,
  )
  factory = {
      'rmda': functools.partial(rda_optax.rmda, momentum=0.0),
      'prox_sgd': rda_optax.prox_sgd,
  }[method]
  inner = optax.inject_hyperparams(
      factory, static_args=('regularizer', 'mask', 'momentum')
  )(learning_rate=0.1, regularizer=reg, mask=_select)
  tx = rda_optax.asr(inner, mask=_select, start_step=3)
  params = _params()
  traj, _ = run(tx, params, [normal_like(params, i) for i in range(6)])
  frozen = jax.tree.map(lambda x: x == 0, traj[2])  # ASR starts at step 3.
  assert frozen['bn']['scale'].any()
  for z, x in zip(jax.tree.leaves(frozen), jax.tree.leaves(traj[-1])):
    assert np.all(np.asarray(x)[z] == 0)


def test_errors_name_the_fix():
  with pytest.raises(TypeError, match='non-empty mapping'):
    rda_optax.partitioned({}, _labels)
  with pytest.raises(TypeError, match='rda_optax.Regularizer'):
    rda_optax.partitioned({'k': 'l1'}, _labels)
  with pytest.raises(TypeError, match='nest the labels'):
    rda_optax.partitioned({'k': REG}, _labels)
  with pytest.raises(TypeError, match='acts on trees'):
    REG.prox(jnp.ones(3), 1.0)
  with pytest.raises(TypeError, match='acts on trees'):
    REG.value(jnp.ones(3))
  params = _params()
  with pytest.raises(ValueError, match='have no regularizer'):
    rda_optax.partitioned({'kernels': rda_optax.l1(0.1)}, _labels).prox_tree(
        params, _select(params), 1.0
    )
  with pytest.raises(ValueError, match='labels do not match'):
    rda_optax.partitioned({'k': rda_optax.l1(0.1)}, {'x': 'k'}).prox_tree(
        params, _select(params), 1.0
    )
  with pytest.raises(TypeError, match='fixed'):
    REG.regularizers['x'] = None


def test_hashable_and_dtype_preserved():
  assert hash(REG) == hash(
      rda_optax.partitioned(
          {
              'kernels': rda_optax.sparse_group_lasso(0.2, 0.3),
              'scales': rda_optax.l1(0.5),
          },
          _labels,
      )
  )
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _params())
  out = REG.prox_tree(params, _select(params), 0.5)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(out))

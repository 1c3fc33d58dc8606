"""sparse_params: the sparse model in any optimizer state, never silently wrong."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from rda_optax import sparse_point as sp

_rng = np.random.default_rng(3)
PARAMS = {
    name: {
        'kernel': jnp.asarray(_rng.normal(scale=0.5, size=shape), jnp.float32),
        'bias': jnp.asarray(
            _rng.normal(scale=0.1, size=shape[-1]), jnp.float32
        ),
    }
    for name, shape in (('a', (5, 4)), ('b', (4, 3)))
}
KERNELS = {
    'a': {'kernel': True, 'bias': False},
    'b': {'kernel': True, 'bias': False},
}
BIASES = jax.tree.map(lambda k: not k, KERNELS)


def grads(t):
  r = np.random.default_rng(50 + t)
  return jax.tree.map(
      lambda p: jnp.asarray(r.normal(scale=0.5, size=p.shape) + 0.2, p.dtype),
      PARAMS,
  )


def rmda(**kw):
  return rda_optax.rmda(0.1, rda_optax.l1(0.3), momentum=0.9, **kw)


def train(opt, n=6, params=PARAMS):
  @jax.jit
  def step(params, state, g):
    updates, state = opt.update(g, state, params)
    return optax.apply_updates(params, updates), state

  state = opt.init(params)
  for t in range(n):
    params, state = step(params, state, grads(t))
  return params, state


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_masked_out_leaves_get_the_parameters_values():
  ref_params, ref_state = train(rmda())
  ref = rda_optax.sparse_params(ref_state, ref_params)
  params, state = train(optax.masked(rmda(), KERNELS))
  sparse = rda_optax.sparse_params(state, params)
  assert jax.tree.structure(sparse) == jax.tree.structure(PARAMS)
  for n in PARAMS:  # (l1 and RMDA act leaf by leaf: the same kernels.)
    np.testing.assert_array_equal(sparse[n]['kernel'], ref[n]['kernel'])
    assert (np.asarray(sparse[n]['kernel']) == 0).any()
    assert sparse[n]['bias'] is params[n]['bias']
  # A mask that is a prefix of the tree (a whole layer out), nested masks.
  opt = optax.masked(
      optax.masked(rmda(), lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
      {'a': True, 'b': False},
  )
  params, state = train(opt)
  sparse = rda_optax.sparse_params(state, params)
  assert jax.tree.structure(sparse) == jax.tree.structure(PARAMS)
  np.testing.assert_array_equal(sparse['a']['kernel'], ref['a']['kernel'])
  assert sparse['a']['bias'] is params['a']['bias']
  for x, y in zip(jax.tree.leaves(sparse['b']), jax.tree.leaves(params['b'])):
    assert x is y


def test_under_optax_flatten_the_point_comes_back_as_the_params_tree():
  # optax.flatten hands the inner transform one vector (every leaf raveled
  # and concatenated): l1 and RMDA act entry by entry, so the point is the
  # tree's, split back into its leaves.
  # (mask=True: the default mask, kernels only, would select nothing in one
  # vector, and says so.)
  with pytest.raises(ValueError, match='mask=True for every leaf'):
    optax.flatten(rmda()).init(PARAMS)
  ref_params, ref_state = train(rmda(mask=True))
  ref = rda_optax.sparse_params(ref_state, ref_params)
  params, state = train(optax.flatten(rmda(mask=True)))
  sparse = rda_optax.sparse_params(state, params)
  assert jax.tree.structure(sparse) == jax.tree.structure(PARAMS)
  for x, y in zip(jax.tree.leaves(sparse), jax.tree.leaves(ref)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(x == 0, y == 0)
  assert any((np.asarray(x) == 0).any() for x in jax.tree.leaves(sparse))
  # Without params: the vector the inner transform trains.
  assert rda_optax.sparse_params(state).shape == (
      sum(x.size for x in jax.tree.leaves(PARAMS)),
  )
  # Each leaf keeps its dtype; a tree of another size is still refused.
  mixed = dict(
      PARAMS,
      a={**PARAMS['a'], 'bias': PARAMS['a']['bias'].astype(jnp.bfloat16)},
  )
  opt = optax.flatten(rmda(mask=True))
  point = rda_optax.sparse_params(opt.init(mixed), mixed)
  assert point['a']['bias'].dtype == jnp.bfloat16
  with pytest.raises(ValueError, match='do not match the parameters'):
    rda_optax.sparse_params(state, {'a': PARAMS['a']})


def test_disjoint_states_are_merged_overlapping_ones_rejected():
  # rmda on two labels = one rmda (l1 and RMDA act leaf by leaf).
  ref_params, ref_state = train(rmda())
  labels = {'a': 'first', 'b': 'second'}
  opt = optax.multi_transform({'first': rmda(), 'second': rmda()}, labels)
  params, state = train(opt)
  assert_trees_equal(params, ref_params)
  assert_trees_equal(
      rda_optax.sparse_params(state, params),
      rda_optax.sparse_params(ref_state, ref_params),
  )
  # Two states over the same kernels: which point is the model?
  both = optax.chain(
      optax.masked(rmda(), KERNELS),
      optax.masked(optax.scale(1.0), BIASES),
      optax.masked(
          rda_optax.variable_splitting(optax.sgd(0.1), rda_optax.l0(0.01), 1.0),
          KERNELS,
      ),
  )
  state = both.init(PARAMS)
  with pytest.raises(
      ValueError, match="both cover the parameter \\['a'\\]\\['kernel'\\]"
  ):
    rda_optax.sparse_params(state, PARAMS)


def test_without_params_the_error_says_what_was_found():
  params, state = train(
      rda_optax.asr(optax.sgd(0.1, momentum=0.9), start_step=2)
  )
  with pytest.raises(ValueError) as e:
    rda_optax.sparse_params(state)
  assert '1 such state(s) (ASRState)' in str(e.value)
  assert 'found 0' not in str(e.value)
  assert rda_optax.sparse_params(state, params) is params
  params, state = train(rda_optax.asr(rmda(), start_step=2))
  with pytest.raises(ValueError, match='pass the parameters'):
    rda_optax.sparse_params(state)
  params, state = train(optax.masked(rmda(), KERNELS))
  with pytest.raises(ValueError, match='cover only some of the parameters'):
    rda_optax.sparse_params(state)
  with pytest.raises(ValueError, match='keeps no sparse point.*no rmda'):
    rda_optax.sparse_params(optax.adam(0.1).init(PARAMS))
  params, state = train(rmda())  # One state over every leaf: no params needed.
  assert_trees_equal(
      rda_optax.sparse_params(state), rda_optax.sparse_params(state, params)
  )


def test_params_that_are_not_the_optimizers_name_the_fix():
  params, state = train(rmda())
  with pytest.raises(ValueError, match='not the variables dict'):
    rda_optax.sparse_params(state, {'params': params})


def test_states_restored_without_their_types_are_detected(tmp_path):
  ocp = pytest.importorskip('orbax.checkpoint')
  serialization = pytest.importorskip('flax.serialization')
  tx = rda_optax.asr(
      optax.chain(
          optax.masked(rmda(), KERNELS), optax.masked(optax.sgd(0.1), BIASES)
      ),
      start_step=3,
  )
  params, state = train(tx)
  want = rda_optax.sparse_params(state, params)
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / 'state', state)
  ckpt.wait_until_finished()
  untyped = ckpt.restore(tmp_path / 'state')  # No target: dicts and lists.
  with pytest.raises(TypeError, match='eval_shape.*StandardRestore'):
    rda_optax.sparse_params(untyped, params)
  abstract = jax.eval_shape(tx.init, params)
  restored = ckpt.restore(tmp_path / 'state', abstract)
  assert_trees_equal(rda_optax.sparse_params(restored, params), want)
  # flax.serialization: msgpack_restore gives dicts; from_bytes a target.
  data = serialization.to_bytes(state)
  with pytest.raises(TypeError, match='restored without its types'):
    rda_optax.sparse_params(serialization.msgpack_restore(data), params)
  restored = serialization.from_bytes(tx.init(params), data)
  assert_trees_equal(rda_optax.sparse_params(restored, params), want)


def test_linen_train_state():
  pytest.importorskip('flax')
  from flax.training import train_state  # pylint: disable=import-outside-toplevel

  tx = rda_optax.asr(
      optax.chain(
          optax.masked(rmda(), KERNELS), optax.masked(optax.sgd(0.1), BIASES)
      ),
      start_step=3,
  )
  state = train_state.TrainState.create(
      apply_fn=lambda v, x: x, params=PARAMS, tx=tx
  )
  step = jax.jit(lambda s, t: s.apply_gradients(grads=t))
  for t in range(6):
    state = step(state, grads(t))
  sparse = rda_optax.sparse_params(state.opt_state, state.params)
  assert jax.tree.structure(sparse) == jax.tree.structure(state.params)
  assert (np.asarray(sparse['a']['kernel']) == 0).any()
  evaluated = rda_optax.with_sparse_params(state)
  assert_trees_equal(evaluated.params, sparse)
  assert evaluated.step == state.step and state.params is not evaluated.params
  assert_trees_equal(evaluated.opt_state, state.opt_state)


def test_nnx_optimizer_as_it_comes():
  nnx = pytest.importorskip('flax.nnx')

  class MLP(nnx.Module):

    def __init__(self, rngs):
      self.l1 = nnx.Linear(5, 4, rngs=rngs)
      self.l2 = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
      return self.l2(nnx.relu(self.l1(x)))

  x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 5)), jnp.float32)
  y = jnp.arange(16) % 3
  model = MLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(
      model,
      rda_optax.asr(
          rda_optax.rmda(0.2, rda_optax.l1(0.5), momentum=0.9), start_step=4
      ),
      wrt=nnx.Param,
  )

  @nnx.jit
  def train_step(model, optimizer):
    def loss_fn(model):
      logits = model(x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    optimizer.update(model, nnx.grad(loss_fn)(model))

  for _ in range(8):
    train_step(model, optimizer)
  params = nnx.state(model, nnx.Param)
  sparse = rda_optax.sparse_params(optimizer.opt_state, params)
  # The container of the params given: an nnx.State of Param variables.
  assert type(sparse) is type(params)
  assert jax.tree.structure(sparse) == jax.tree.structure(params)
  kernel = sparse['l1']['kernel']
  assert isinstance(kernel, nnx.Param)
  assert (kernel[...] == 0).any() and (kernel[...] != 0).any()
  # The same with nnx.as_pure inputs (plain arrays out).
  pure = rda_optax.sparse_params(
      nnx.as_pure(optimizer.opt_state), nnx.as_pure(params)
  )
  np.testing.assert_array_equal(pure['l1']['kernel'], kernel[...])
  # Back into a model: a copy to evaluate; the trained model is unchanged.
  before = model.l1.kernel[...]
  sparse_model = rda_optax.with_sparse_params(model, optimizer)
  np.testing.assert_array_equal(sparse_model.l1.kernel[...], kernel[...])
  np.testing.assert_array_equal(model.l1.kernel[...], before)
  assert sparse_model(x).shape == (16, 3)
  clone = nnx.clone(model)
  nnx.update(clone, sparse)
  np.testing.assert_array_equal(clone(x), sparse_model(x))


def test_each_state_point_is_one_compiled_computation():
  """Outside jit a state's point is one compiled call, compiled once for the
  structure: run op by op, a projection's search compiles each operation
  alone at the first call (seconds on a CNN)."""
  opt = rda_optax.rmda(
      0.1, rda_optax.sparsity_constraint(0.5, scope='global'), momentum=0.9
  )
  params, state = train(opt, n=2)
  before = sp._state_point._cache_size()  # pylint: disable=protected-access
  first = rda_optax.sparse_params(state, params)
  params, state = train(opt, n=3)
  second = rda_optax.sparse_params(state, params)
  assert sp._state_point._cache_size() == before + 1  # pylint: disable=protected-access
  for point in (first, second):
    kernels = np.concatenate([np.ravel(point[n]['kernel']) for n in ('a', 'b')])
    assert np.mean(kernels == 0) == 0.5
  # Under the caller's jit it is traced into the caller's computation.
  jitted = jax.jit(rda_optax.sparse_params)(state, params)
  for x, y in zip(jax.tree.leaves(jitted), jax.tree.leaves(second)):
    np.testing.assert_allclose(x, y, rtol=1e-6)
    np.testing.assert_array_equal(x == 0, y == 0)

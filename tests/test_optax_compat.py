"""The transforms inside optax pipelines, under jit/pmap, and from Flax."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax

PARAMS = {
    'dense': {
        'kernel': jnp.asarray(
            np.random.default_rng(0).normal(size=(4, 3)), jnp.float32
        ),
        'bias': jnp.zeros(3),
    }
}
GRADS = jax.tree.map(lambda p: jnp.full_like(p, 0.3), PARAMS)

OPTIMIZERS = {
    'rda': lambda: rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(0.1)),
    'prox_sgd': lambda: rda_optax.prox_sgd(
        0.1, rda_optax.l1(0.1), momentum=0.9
    ),
    'asr_rda': lambda: rda_optax.asr(
        rda_optax.rda(gamma=1.0, regularizer=rda_optax.group_lasso(0.1)),
        start_step=2,
    ),
    'asr_sgd': lambda: rda_optax.asr(optax.sgd(0.1, momentum=0.9)),
    'rmda': lambda: rda_optax.rmda(0.1, rda_optax.l1(0.1), momentum=0.9),
    'rmda_no_momentum': lambda: rda_optax.rmda(
        0.1, rda_optax.l1(0.1), momentum=0.0
    ),
    'asr_rmda_sgd': lambda: rda_optax.asr(
        rda_optax.rmda(0.1, rda_optax.l1(0.1), momentum=0.9),
        start_step=2,
        retrain=optax.sgd(0.1, momentum=0.9),
    ),
    'ramda': lambda: rda_optax.ramda(0.1, rda_optax.l1(0.1), momentum=0.9),
    'ramda_group_lasso': lambda: rda_optax.ramda(
        0.1, rda_optax.group_lasso(0.1), momentum=0.9
    ),
    'prox_adamw': lambda: rda_optax.prox_adamw(
        0.1, rda_optax.l1(0.1), weight_decay=0.01
    ),
    'rmda_nm': lambda: rda_optax.rmda(
        0.1, rda_optax.nm_constraint(2, 4), momentum=0.9
    ),
}


def steps(opt, params=PARAMS, grads=GRADS, n=3, **extra):
  state = opt.init(params)
  for _ in range(n):
    updates, state = jax.jit(opt.update)(grads, state, params, **extra)
    params = optax.apply_updates(params, updates)
  return params, state


@pytest.mark.parametrize('name', OPTIMIZERS)
def test_chain_with_clipping_and_extra_args(name):
  opt = optax.chain(optax.clip_by_global_norm(1.0), OPTIMIZERS[name]())
  params, _ = steps(opt)
  # Extra arguments (as optax.contrib / line searches pass) are accepted.
  opt_x = OPTIMIZERS[name]()
  params_x, _ = steps(
      optax.chain(optax.clip_by_global_norm(1.0), opt_x), value=jnp.asarray(1.0)
  )
  np.testing.assert_allclose(
      params['dense']['kernel'], params_x['dense']['kernel']
  )
  assert isinstance(OPTIMIZERS[name](), optax.GradientTransformationExtraArgs)


def test_inject_hyperparams_rda_and_prox_sgd():
  opt = optax.inject_hyperparams(rda_optax.rda)(
      gamma=1.0, regularizer=rda_optax.l1(0.1)
  )
  params, state = steps(opt)
  ref, _ = steps(rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(0.1)))
  np.testing.assert_allclose(
      params['dense']['kernel'], ref['dense']['kernel'], rtol=1e-6
  )
  state.hyperparams['gamma'] = jnp.asarray(2.0)  # Changed mid-run.
  updates, _ = opt.update(GRADS, state, params)
  assert updates['dense']['kernel'].shape == (4, 3)

  sched = optax.exponential_decay(0.1, 1, 0.5)
  opt = optax.inject_hyperparams(rda_optax.prox_sgd)(
      learning_rate=sched, regularizer=rda_optax.l1(0.1), momentum=0.9
  )
  _, state = steps(opt)  # The value used by the 3rd update: 0.1 · 0.5².
  assert float(state.hyperparams['learning_rate']) == pytest.approx(0.025)
  # A callable leaf-selection mask is not a schedule: mark it static.
  opt = optax.inject_hyperparams(rda_optax.rda, static_args=('mask',))(
      gamma=1.0,
      regularizer=rda_optax.l1(0.1),
      mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
  )
  steps(opt)


@pytest.mark.parametrize(
    'factory', [rda_optax.rda, rda_optax.rmda, rda_optax.ramda]
)
def test_inject_hyperparams_keeps_the_float32_gradient_sum(factory):
  """The dtype of the gradient sum is not a hyper-parameter: under
  inject_hyperparams it stays float32 for bfloat16 params (it used to be a
  callable default, which optax wraps as a schedule), init compiles, and a
  dtype class passed through it gets an error naming the fix."""
  bf16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), PARAMS)
  opt = optax.inject_hyperparams(factory)(1.0, rda_optax.l1(0.1))
  state = jax.jit(opt.init)(bf16)
  assert 'grad_sum_dtype' not in state.hyperparams
  assert state.inner_state.grad_sum['dense']['kernel'].dtype == jnp.float32
  params, _ = steps(opt, params=bf16)
  assert params['dense']['kernel'].dtype == jnp.bfloat16
  bad = optax.inject_hyperparams(factory)(
      1.0, rda_optax.l1(0.1), grad_sum_dtype=jnp.float32
  )
  with pytest.raises(TypeError, match='static_args'):
    bad.init(bf16)
  fine = optax.inject_hyperparams(factory, static_args=('grad_sum_dtype',))(
      1.0, rda_optax.l1(0.1), grad_sum_dtype=jnp.float32
  )
  assert fine.init(bf16).inner_state.grad_sum['dense']['kernel'].dtype == (
      jnp.float32
  )


@pytest.mark.parametrize('name', OPTIMIZERS)
def test_multisteps_accumulates(name):
  k = 3
  opt = optax.MultiSteps(OPTIMIZERS[name](), every_k_schedule=k)
  params, state = steps(opt, n=k - 1)
  np.testing.assert_array_equal(
      params['dense']['kernel'], PARAMS['dense']['kernel']
  )
  params, _ = steps(opt, params=params, n=1)  # (from a fresh state: 1 step)
  multi, _ = steps(opt, n=k)
  single, _ = steps(OPTIMIZERS[name](), n=1)
  np.testing.assert_allclose(
      multi['dense']['kernel'], single['dense']['kernel'], rtol=1e-6
  )


def test_masked_by_optax():
  opt = optax.masked(
      OPTIMIZERS['rda'](), {'dense': {'kernel': True, 'bias': False}}
  )
  params, _ = steps(opt)
  assert (np.asarray(params['dense']['kernel']) == 0).any()


@pytest.mark.parametrize('name', OPTIMIZERS)
def test_explicitly_sharded_params(name):
  # jax.make_mesh's default axis types are Explicit: the sharding is part of
  # the arrays' types and a reshape across it is a type error unless the
  # transform runs its update under auto_axes (one device here; four in
  # tests/test_sharding.py).
  explicit = jax.sharding.AxisType.Explicit
  mesh = jax.make_mesh((1,), ('d',), axis_types=(explicit,))
  spec = lambda x: jax.sharding.PartitionSpec(*([None] * (x.ndim - 1)), 'd')
  shard = lambda t: jax.tree.map(
      lambda x: jax.device_put(x, jax.sharding.NamedSharding(mesh, spec(x))), t
  )
  ref, ref_state = steps(OPTIMIZERS[name]())
  params, state = steps(OPTIMIZERS[name](), shard(PARAMS), shard(GRADS))
  for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(ref)):
    assert jax.typeof(x).sharding.spec == spec(x)
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
  if name == 'rmda':  # Without params, no point: the same error as ever.
    with pytest.raises(ValueError, match='keeps no sparse point'):
      rda_optax.sparse_params(optax.adam(0.1).init(shard(PARAMS)))
  sparse = rda_optax.sparse_params(state, params)
  for x, y in zip(
      jax.tree.leaves(sparse),
      jax.tree.leaves(rda_optax.sparse_params(ref_state, ref)),
  ):
    assert jax.typeof(x).sharding.spec == spec(x)
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('name', OPTIMIZERS)
def test_a_default_mask_that_selects_nothing_is_refused(name):
  # optax.masked over the biases only (or optax.flatten's one vector): the
  # default mask (kernels) would select nothing, so the regularizer (or
  # ASR's freezing) would silently act on nothing.
  biases = {'dense': {'kernel': False, 'bias': True}}
  with pytest.raises(ValueError, match='mask=True for every leaf'):
    optax.masked(OPTIMIZERS[name](), biases).init(PARAMS)
  # Chosen explicitly, the same leaves train.
  if name == 'rmda':
    opt = rda_optax.rmda(0.1, rda_optax.l1(10.0), momentum=0.0, mask=True)
    params, _ = steps(optax.masked(opt, biases))
    assert (np.asarray(params['dense']['bias']) == 0).all()
  # Without a regularizer there is nothing to select: no error.
  rda_optax.rmda(0.1).init({'bias': jnp.zeros(3)})
  # The one-shot masks say so too.
  with pytest.raises(ValueError, match='magnitude_masks: the default mask'):
    rda_optax.magnitude_masks(jnp.ones(8), 0.5)
  with pytest.raises(ValueError, match='nm_masks: the default mask'):
    rda_optax.nm_masks(jnp.ones(8), 2, 4)


@pytest.mark.parametrize('name', OPTIMIZERS)
@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float32])
def test_dtypes_are_preserved(name, dtype):
  params = jax.tree.map(lambda p: p.astype(dtype), PARAMS)
  grads = jax.tree.map(lambda p: p.astype(dtype), GRADS)
  new, state = steps(OPTIMIZERS[name](), params, grads)
  for p in jax.tree.leaves(new):
    assert p.dtype == dtype
  if name == 'rda':  # The gradient sum is float32 for every param dtype.
    assert state.grad_sum['dense']['kernel'].dtype == jnp.float32
    assert state.init_params['dense']['kernel'].dtype == dtype


@pytest.mark.parametrize('name', OPTIMIZERS)
def test_state_structure_stable_under_cond(name):
  opt = OPTIMIZERS[name]()
  state = opt.init(PARAMS)

  @jax.jit
  def maybe_update(pred, state):
    return jax.lax.cond(
        pred, lambda s: opt.update(GRADS, s, PARAMS)[1], lambda s: s, state
    )

  s1 = maybe_update(True, state)
  s0 = maybe_update(False, state)
  assert jax.tree.structure(s1) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(s0), jax.tree.leaves(s1)):
    assert a.dtype == b.dtype and a.shape == b.shape


@pytest.mark.parametrize('name', OPTIMIZERS)
def test_inside_pmap(name):
  n = jax.local_device_count()
  opt = OPTIMIZERS[name]()
  replicate = lambda t: jax.tree.map(lambda x: jnp.stack([x] * n), t)
  params, state = replicate(PARAMS), replicate(opt.init(PARAMS))

  def step(params, state, grads):
    grads = jax.lax.pmean(grads, 'i')
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.pmap(step, axis_name='i')
  new, _ = step(params, state, replicate(GRADS))
  single, _ = steps(opt, n=1)
  np.testing.assert_allclose(
      new['dense']['kernel'][0], single['dense']['kernel'], rtol=1e-6
  )


# ------------------------------------------------------------------- Flax


def digits_batch():
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  return jnp.asarray(x[:512] / 16.0, jnp.float32), jnp.asarray(y[:512])


def test_flax_linen_train_state():
  import flax.linen as nn
  from flax.training import train_state

  class MLP(nn.Module):

    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Dense(64, kernel_init=rda_optax.rda_uniform(2.0))(x))
      return nn.Dense(10)(x)

  x, y = digits_batch()
  model = MLP()
  params = model.init(jax.random.PRNGKey(0), x)['params']
  tx = rda_optax.rda(gamma=0.5, regularizer=rda_optax.l1(3e-3))
  state = train_state.TrainState.create(
      apply_fn=model.apply, params=params, tx=tx
  )

  def accuracy(p):
    return float((model.apply({'params': p}, x).argmax(-1) == y).mean())

  @jax.jit
  def train_step(state):
    def loss_fn(p):
      logits = state.apply_fn({'params': p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))

  acc0 = accuracy(state.params)
  for _ in range(60):
    state = train_step(state)
  kernel = state.params['Dense_0']['kernel']
  assert accuracy(state.params) > max(acc0 + 0.3, 0.8)
  assert int((kernel == 0).sum()) > 0.1 * kernel.size  # Exact zeros.


def test_flax_nnx_optimizer():
  from flax import nnx

  class MLP(nnx.Module):

    def __init__(self, rngs):
      self.l1 = nnx.Linear(64, 64, rngs=rngs)
      self.l2 = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
      return self.l2(nnx.relu(self.l1(x)))

  x, y = digits_batch()
  model = MLP(nnx.Rngs(0))
  opt = nnx.Optimizer(
      model,
      rda_optax.prox_sgd(0.3, rda_optax.l1(5e-3), momentum=0.9),
      wrt=nnx.Param,
  )

  @nnx.jit
  def train_step(model, opt):
    def loss_fn(model):
      return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    grads = nnx.grad(loss_fn)(model)
    opt.update(model, grads)

  acc0 = float((model(x).argmax(-1) == y).mean())
  for _ in range(60):
    train_step(model, opt)
  acc = float((model(x).argmax(-1) == y).mean())
  kernel = model.l1.kernel[...]
  assert acc > max(acc0 + 0.3, 0.8)
  assert int((kernel == 0).sum()) > 0.1 * kernel.size


@pytest.mark.parametrize('name', OPTIMIZERS)
def test_params_and_state_can_be_donated_together(name):
  opt = OPTIMIZERS[name]()
  params = jax.tree.map(jnp.copy, PARAMS)
  state = opt.init(params)

  def step(params, state):
    updates, state = opt.update(GRADS, state, params)
    return optax.apply_updates(params, updates), state

  donated = jax.jit(step, donate_argnums=(0, 1))
  plain = jax.jit(step)
  ref_params = jax.tree.map(jnp.copy, PARAMS)
  ref_state = opt.init(ref_params)
  for _ in range(2):
    params, state = donated(params, state)
    ref_params, ref_state = plain(ref_params, ref_state)
  # Donation (buffers reused in place) changes nothing in the results.
  for a, b in zip(
      jax.tree.leaves((params, state)), jax.tree.leaves((ref_params, ref_state))
  ):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------ ASR under optax's combinators

# Two layers; gradients do not depend on the parameters (so that optax's
# combinators have exact equivalents: MultiSteps over k equal gradients is
# one step) and are the same within a window of WINDOW steps.
_rng = np.random.default_rng(0)
NET = {
    name: {
        'kernel': jnp.asarray(_rng.normal(scale=0.5, size=shape), jnp.float32),
        'bias': jnp.asarray(
            _rng.normal(scale=0.1, size=shape[-1]), jnp.float32
        ),
    }
    for name, shape in (('a', (8, 6)), ('b', (6, 4)))
}
KERNELS = {
    'a': {'kernel': True, 'bias': False},
    'b': {'kernel': True, 'bias': False},
}
BIASES = jax.tree.map(lambda k: not k, KERNELS)
LABELS = jax.tree.map(lambda k: 'kernels' if k else 'biases', KERNELS)
START, N_STEPS = 6, 14


def net_grads(window):
  r = np.random.default_rng(100 + window)
  return jax.tree.map(
      lambda p: jnp.asarray(r.normal(scale=0.5, size=p.shape) + 0.2, p.dtype),
      NET,
  )


def rmda_l1(**kw):
  return rda_optax.rmda(0.1, rda_optax.l1(0.3), momentum=0.9, **kw)


def rmda_plain():  # What rmda does to the leaves its mask leaves out.
  return rda_optax.rmda(0.1, None, momentum=0.9)


def prox_sgd_l1():
  return rda_optax.prox_sgd(0.1, rda_optax.l1(0.5), momentum=0.9)


def sgd():
  return optax.sgd(0.1, momentum=0.9)


def masked_pair(kernels, biases):
  return optax.chain(
      optax.masked(kernels, KERNELS), optax.masked(biases, BIASES)
  )


def labelled(kernels, biases):
  return optax.multi_transform({'kernels': kernels, 'biases': biases}, LABELS)


def asr(inner, start=START, **kw):
  return rda_optax.asr(inner, start_step=start, **kw)


# The same optimizers written without the combinators.
REFERENCES = {
    'asr(rmda)': lambda: asr(rmda_l1()),
    'asr(prox_sgd)': lambda: asr(prox_sgd_l1()),
    'asr(multi_transform(rmda, sgd))': lambda: asr(labelled(rmda_l1(), sgd())),
    'asr(chain(masked(rmda), masked(sgd)))': lambda: asr(
        masked_pair(rmda_l1(), sgd())
    ),
    'asr(multi_transform(rmda, sgd), restart_inner=False)': lambda: asr(
        labelled(rmda_l1(), sgd()), restart_inner=False
    ),
    'asr(rmda, retrain=sgd)': lambda: asr(rmda_l1(), retrain=sgd()),
}


def rmda_injected():  # λ passed as an array at every step, as the train job
  def build(learning_rate, lam):
    return rda_optax.rmda(learning_rate, rda_optax.l1(lam), momentum=0.9)

  return optax.inject_hyperparams(build)(learning_rate=0.1, lam=0.3)


# name: (composed optimizer, its equivalent in REFERENCES (or None), calls of
# update per update (MultiSteps)).
COMPOSITIONS = {
    'asr(chain(masked(rmda), masked(rmda)))': (
        lambda: asr(masked_pair(rmda_l1(), rmda_plain())),
        'asr(rmda)',
        1,
    ),
    'asr(multi_transform(rmda, rmda))': (
        lambda: asr(labelled(rmda_l1(), rmda_plain())),
        'asr(rmda)',
        1,
    ),
    'asr(chain(masked(rmda), masked(sgd)))': (
        lambda: asr(masked_pair(rmda_l1(), sgd())),
        'asr(multi_transform(rmda, sgd))',
        1,
    ),
    'asr(chain(masked(rmda), masked(sgd)), restart_inner=False)': (
        lambda: asr(masked_pair(rmda_l1(), sgd()), restart_inner=False),
        'asr(multi_transform(rmda, sgd), restart_inner=False)',
        1,
    ),
    'asr(chain(masked(prox_sgd), masked(sgd)))': (
        lambda: asr(masked_pair(prox_sgd_l1(), sgd())),
        'asr(prox_sgd)',
        1,
    ),
    'asr(multi_transform(prox_sgd, sgd))': (
        lambda: asr(labelled(prox_sgd_l1(), sgd())),
        'asr(prox_sgd)',
        1,
    ),
    'chain(masked(asr(rmda)), masked(rmda))': (
        lambda: masked_pair(asr(rmda_l1()), rmda_plain()),
        'asr(rmda)',
        1,
    ),
    'masked(asr(rmda))': (
        lambda: optax.masked(asr(rmda_l1()), KERNELS),
        None,
        1,
    ),
    'asr(chain(clip, rmda))': (
        lambda: asr(optax.chain(optax.clip_by_global_norm(1e3), rmda_l1())),
        'asr(rmda)',
        1,
    ),
    'asr(inject_hyperparams(rmda))': (
        lambda: asr(
            optax.inject_hyperparams(rda_optax.rmda)(
                learning_rate=0.1, regularizer=rda_optax.l1(0.3), momentum=0.9
            )
        ),
        'asr(rmda)',
        1,
    ),
    'asr(inject_hyperparams(rmda with λ injected))': (
        lambda: asr(rmda_injected()),
        'asr(rmda)',
        1,
    ),
    'asr(rmda, retrain=masked(sgd))': (
        lambda: asr(rmda_l1(), retrain=masked_pair(sgd(), sgd())),
        'asr(rmda, retrain=sgd)',
        1,
    ),
    'asr(chain(clip, multi_transform(inject_hyperparams(rmda), sgd)))': (
        lambda: asr(
            optax.chain(
                optax.clip_by_global_norm(1e3),
                labelled(rmda_injected(), sgd()),
            )
        ),
        'asr(chain(masked(rmda), masked(sgd)))',
        1,
    ),
    'asr(MultiSteps(rmda))': (
        lambda: asr(optax.MultiSteps(rmda_l1(), 2), start=2 * START),
        'asr(rmda)',
        2,
    ),
    'MultiSteps(asr(chain(masked(rmda), masked(sgd))))': (
        lambda: optax.MultiSteps(asr(masked_pair(rmda_l1(), sgd())), 2),
        'asr(chain(masked(rmda), masked(sgd)))',
        2,
    ),
    'MultiSteps(asr(multi_transform(rmda, rmda)))': (
        lambda: optax.MultiSteps(asr(labelled(rmda_l1(), rmda_plain())), 2),
        'asr(rmda)',
        2,
    ),
}


def train_net(opt, micro=1):
  """N_STEPS updates under jit (``micro`` calls each, as under MultiSteps):
  the trajectory after each update and the final state."""

  @jax.jit
  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params, state, traj = NET, opt.init(NET), []
  for t in range(N_STEPS):
    for _ in range(micro):
      params, state = step(params, state, net_grads(t))
    traj.append(jax.tree.map(np.asarray, params))
  return traj, state


@functools.cache
def reference(name):
  traj, state = train_net(REFERENCES[name]())
  return traj, rda_optax.sparse_params(
      state, jax.tree.map(jnp.asarray, traj[-1])
  )


def kernel_paths():
  return [('a', 'kernel'), ('b', 'kernel')]


def buffers(state):
  """Every params-shaped buffer an inner optimizer keeps and updates (RMDA's
  gradient sum, SGD's and prox_sgd's momentum), as (path, kernel leaves)."""
  out = []
  for key in ('grad_sum', 'trace', 'momentum'):
    for path, tree in optax.tree_utils.tree_get_all_with_path(state, key):
      if not isinstance(tree, dict):  # (a hyper-parameter named momentum)
        continue
      leaves = [tree.get(n, {}).get(k) for n, k in kernel_paths()]
      out += [
          (jax.tree_util.keystr(path), n, x)
          for n, x in zip(kernel_paths(), leaves)
          if hasattr(x, 'shape')
      ]
  return out


@pytest.mark.parametrize('name', COMPOSITIONS)
def test_asr_composes_with_optax_combinators(name):
  make, ref, micro = COMPOSITIONS[name]
  traj, state = train_net(make(), micro)
  params = jax.tree.map(jnp.asarray, traj[-1])
  sparse = rda_optax.sparse_params(state, params)
  # Exactly the parameters' structure, never a MaskedNode.
  assert jax.tree.structure(sparse) == jax.tree.structure(NET)
  for n, k in kernel_paths():
    frozen = traj[START][n][k] == 0  # Retraining has started.
    assert frozen.any() and not frozen.all(), name
    if 'rmda' in name:  # RMDA's iterates reach zero at the jump.
      assert (traj[START - 1][n][k] != 0).all(), name
    # Frozen zeros stay exactly zero; weights that land on zero freeze too.
    for w in traj[START + 1 :]:
      assert (w[n][k][frozen] == 0).all(), name
      frozen = frozen | (w[n][k] == 0)
    assert (np.asarray(sparse[n][k])[frozen] == 0).all(), name
    assert (traj[-1][n][k] != traj[START][n][k]).any()  # Live ones move.
  # Nothing revives a frozen weight: the inner optimizer's buffers are zero
  # there, also inside optax.masked / multi_transform states.
  retrain_only = 'retrain' in name
  found = buffers(state.inner_state if hasattr(state, 'inner_state') else state)
  assert found or retrain_only, name
  for path, (n, k), x in found:
    if retrain_only and 'retrain' not in path:
      continue
    frozen = traj[-2][n][k] == 0
    assert (np.asarray(x)[frozen] == 0).all(), (name, path)
  if ref is None:
    return
  ref_traj, ref_sparse = reference(ref)
  # Under masked(asr(...)), the biases are not asr's (no restart there).
  compared = ('kernel',) if 'masked(asr' in name else ('kernel', 'bias')
  for got, want in zip(traj, ref_traj):
    for n in NET:
      for k in compared:
        np.testing.assert_array_equal(got[n][k] == 0, want[n][k] == 0)
        np.testing.assert_allclose(got[n][k], want[n][k], rtol=1e-5, atol=1e-6)
  for n in NET:
    for k in compared:
      np.testing.assert_array_equal(sparse[n][k] == 0, ref_sparse[n][k] == 0)
      np.testing.assert_allclose(
          sparse[n][k], ref_sparse[n][k], rtol=1e-5, atol=1e-6
      )

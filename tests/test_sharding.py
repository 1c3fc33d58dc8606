"""rda_optax/sharding.py: explicitly sharded parameters (the default axis
types of ``jax.make_mesh``) over four simulated CPU devices, in a
subprocess: the same results as unsharded, each output sharded as its
input, in optax loops and in an NNX ``nnx.Optimizer`` one."""

import json
import os
import subprocess
import sys
import textwrap

import jax

import rda_optax
from rda_optax import sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np, optax, rda_optax
    from jax.sharding import NamedSharding, PartitionSpec as P

    mesh = jax.make_mesh((4,), ('d',))  # Explicit axes: JAX's default.
    assert mesh.axis_types == (jax.sharding.AxisType.Explicit,)
    r = np.random.default_rng(0)
    params = {
        'a': {'kernel': r.normal(size=(16, 32)), 'bias': np.zeros(32)},
        'b': {'kernel': r.normal(size=(3, 3, 8, 16))},
    }
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    grads = [jax.tree.map(lambda p: jnp.asarray(r.normal(size=p.shape),
                                                jnp.float32), params)
             for _ in range(3)]
    spec = lambda x: P(*([None] * (x.ndim - 1)), 'd')
    shard = lambda t: jax.tree.map(
        lambda x: jax.device_put(x, NamedSharding(mesh, spec(x))), t)
    OPTIMIZERS = {
        'rmda_target': lambda: rda_optax.rmda(
            0.1, rda_optax.sparsity_constraint(0.9), momentum=0.9),
        'gmp': lambda: optax.chain(optax.sgd(0.1),
            rda_optax.gradual_magnitude_pruning(
                0.9, begin_step=0, end_step=2, frequency=1, scope='global')),
    }
    out = {}
    for name, make in OPTIMIZERS.items():
      results = []
      for sharded in (False, True):
        opt = make()
        p = shard(params) if sharded else params
        state = opt.init(p)

        @jax.jit
        def step(p, state, g, opt=opt):
          updates, state = opt.update(g, state, p)
          return optax.apply_updates(p, updates), state

        for g in grads:
          p, state = step(p, state, shard(g) if sharded else g)
        u = p
        if name == 'gmp':  # An update outside jit, too.
          u, _ = opt.update(shard(grads[0]) if sharded else grads[0], state, p)
        point = rda_optax.sparse_params(state, p)
        if name == 'rmda_target':  # Without params: the state's own view.
          alone = rda_optax.sparse_params(state)
          assert all(jax.typeof(a).sharding == jax.typeof(b).sharding and
                     np.array_equal(a, b) for a, b in zip(
                         jax.tree.leaves(alone), jax.tree.leaves(point)))
        results.append((p, point, u))
      (p0, s0, u0), (p1, s1, u1) = results
      state_specs = [  # The state's arrays the size of the parameters.
          jax.typeof(x).sharding.spec == spec(x)
          for x in jax.tree.leaves(state) if x.shape in
          {y.shape for y in jax.tree.leaves(params)} and x.ndim > 1]
      out[name] = {
          'state_specs': bool(state_specs) and all(state_specs),
          'diff': max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
              jax.tree.leaves((p0, s0, u0)), jax.tree.leaves((p1, s1, u1)))),
          'zeros': all(np.array_equal(np.asarray(a) == 0, np.asarray(b) == 0)
                       for a, b in zip(jax.tree.leaves(s0),
                                       jax.tree.leaves(s1))),
          'specs': all(jax.typeof(x).sharding.spec == spec(x)
                       for x in jax.tree.leaves((p1, s1, u1))),
          'devices': len(jax.tree.leaves(p1)[0].sharding.device_set),
      }
    # optax.inject_hyperparams hands our update hyper-parameters computed
    # from its own (sharded) state: a clear error, and the wrapper that fixes
    # it gives the unsharded result.
    injected = lambda: optax.inject_hyperparams(rda_optax.rmda)(
        learning_rate=0.1, regularizer=rda_optax.l1(1e-2))
    try:
      opt = injected()
      state = opt.init(shard(params))
      for g in grads[:2]:  # (The second sees the first's sharded state.)
        _, state = jax.jit(opt.update)(shard(g), state, shard(params))
      out['inject_error'] = None
    except ValueError as e:
      out['inject_error'] = str(e)
    runs = []
    for sharded in (False, True):
      opt = rda_optax.with_auto_axes(injected())
      p = shard(params) if sharded else params
      state = opt.init(p)
      for g in grads:
        updates, state = jax.jit(opt.update)(
            shard(g) if sharded else g, state, p)
        p = optax.apply_updates(p, updates)
      runs.append(p)
    out['inject'] = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
        jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1])))
    out['inject_specs'] = all(jax.typeof(x).sharding.spec == spec(x)
                              for x in jax.tree.leaves(runs[1]))
    # An NNX model whose kernel is sharded by its metadata, nnx.Optimizer.
    from flax import nnx
    with jax.set_mesh(mesh):
      model = nnx.Linear(16, 32, rngs=nnx.Rngs(0),
                         kernel_metadata={'sharding_names': (None, 'd')})
      tx = rda_optax.rmda(0.1, rda_optax.sparsity_constraint(0.75),
                          momentum=0.9)
      nnx_opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

      @nnx.jit
      def nnx_step(model, nnx_opt, x):
        grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
        nnx_opt.update(model, grads)

      for _ in range(2):
        nnx_step(model, nnx_opt, jnp.ones((4, 16)))
      kernel = rda_optax.with_sparse_params(model, nnx_opt).kernel[...]
    out['nnx'] = [list(jax.typeof(kernel).sharding.spec),
                  int((kernel == 0).sum())]
    # Auto axes (the compiler places everything): the same.
    auto = jax.make_mesh((4,), ('d',),
                         axis_types=(jax.sharding.AxisType.Auto,))
    opt = OPTIMIZERS['rmda_target']()
    p = jax.tree.map(
        lambda x: jax.device_put(x, NamedSharding(auto, spec(x))), params)
    state = opt.init(p)
    for g in grads:
      updates, state = jax.jit(opt.update)(g, state, p)
      p = optax.apply_updates(p, updates)
    ref_p, ref_state = params, OPTIMIZERS['rmda_target']().init(params)
    for g in grads:
      updates, ref_state = jax.jit(opt.update)(g, ref_state, ref_p)
      ref_p = optax.apply_updates(ref_p, updates)
    out['auto'] = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
        jax.tree.leaves(p), jax.tree.leaves(ref_p)))
    masks = rda_optax.magnitude_masks(shard(params), 0.9, scope='global')
    out['masks'] = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
                       zip(jax.tree.leaves(masks), jax.tree.leaves(
                           rda_optax.magnitude_masks(params, 0.9,
                                                     scope='global'))))
    print(json.dumps(out))
""")


def test_four_devices_give_the_unsharded_results_sharded_alike():
  env = dict(
      os.environ,
      XLA_FLAGS='--xla_force_host_platform_device_count=4',
      PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
  )
  proc = subprocess.run(
      [sys.executable, '-c', SCRIPT],
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out.pop('masks') is True
  assert out.pop('auto') <= 1e-6
  assert out.pop('nnx') == [[None, 'd'], 16 * 32 * 3 // 4]
  assert 'rda_optax.with_auto_axes' in out.pop('inject_error')
  assert out.pop('inject') <= 1e-6 and out.pop('inject_specs')
  for name, res in out.items():
    assert res['diff'] <= 1e-6, (name, res)
    assert res['zeros'] and res['specs'] and res['state_specs'], (name, res)
    assert res['devices'] == 4, (name, res)


def test_without_explicit_axes_the_update_is_called_as_it_is():
  calls = []

  def update(u, s, p=None, **kw):
    calls.append(kw)
    return u, s

  safe = sharding.explicit_safe(update)
  params = {'w': jax.numpy.ones((2, 3))}
  assert sharding.explicit_mesh(params) is None
  assert safe(params, (), params, extra=1) == (params, ())
  assert calls == [{'extra': 1}]
  assert rda_optax.sparse_params(
      rda_optax.rmda(0.1, rda_optax.l1(0.1)).init(params), params
  )['w'].shape == (2, 3)

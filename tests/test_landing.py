"""Chain order: an update changed after our transform is detected, cheaply."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from rda_optax import landing

from _optim_helpers import random_grads, random_params

TRANSFORMS = {
    'rmda': lambda: rda_optax.rmda(0.1, rda_optax.l1(0.05), momentum=0.9),
    'rmda_no_momentum': lambda: rda_optax.rmda(
        0.1, rda_optax.l1(0.05), momentum=0.0
    ),
    'rda': lambda: rda_optax.rda(1.0, rda_optax.l1(0.05)),
    'prox_sgd': lambda: rda_optax.prox_sgd(
        0.1, rda_optax.l1(0.05), momentum=0.9
    ),
    'variable_splitting': lambda: rda_optax.variable_splitting(
        optax.sgd(0.1, momentum=0.9), rda_optax.l0(0.01), 1.0
    ),
    'asr(rmda)': lambda: rda_optax.asr(
        rda_optax.rmda(0.1, rda_optax.l1(0.05), momentum=0.9), start_step=3
    ),
    'asr(chain(masked(rmda), masked(sgd)))': lambda: rda_optax.asr(
        optax.chain(
            optax.masked(
                rda_optax.rmda(0.1, rda_optax.l1(0.05)),
                lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
            ),
            optax.masked(
                optax.sgd(0.1, momentum=0.9),
                lambda p: jax.tree.map(lambda x: x.ndim <= 1, p),
            ),
        ),
        start_step=3,
        restart_inner=False,
    ),
}


def train(opt, n=8, together=True, params=None, edit=None):
  """``n`` steps; ``together``: update and apply_updates compiled in one
  program (XLA may then fuse them), else the update alone under jit."""
  params = random_params() if params is None else params
  state = opt.init(params)

  def step(params, state, g):
    updates, state = opt.update(g, state, params)
    return optax.apply_updates(params, updates), state

  if together:
    step = jax.jit(step)
  else:
    update = jax.jit(opt.update)
    step = lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
        *update(g, s, p)
    )
  for t, g in enumerate(random_grads(n)):
    params, state = step(params, state, jax.tree.map(jnp.asarray, g))
    if edit is not None:
      params = edit(t, params)
  return params, state


@pytest.mark.parametrize(
    'name',
    [
        'rmda',
        'prox_sgd',
        'variable_splitting',
        'asr(chain(masked(rmda), masked(sgd)))',
    ],
)  # (and every composition of tests/test_optax_compat.py, which would raise)
def test_no_alarm_when_the_updates_land(name):
  # Update and apply_updates compiled together (XLA may fuse them) ...
  params, state = train(TRANSFORMS[name](), together=True)
  rda_optax.sparse_params(state, params)  # Does not raise.
  assert all(int(step) == -1 for _, step in landing.alarms(state))
  # ... or apart; transforms of the gradients before ours are fine, also
  # with bfloat16 parameters.
  before = optax.chain(
      optax.clip_by_global_norm(0.5),
      optax.add_decayed_weights(1e-2),
      TRANSFORMS[name](),
  )
  bf16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), random_params())
  params, state = train(before, together=False, params=bf16)
  rda_optax.sparse_params(state, params)
  assert all(int(step) == -1 for _, step in landing.alarms(state))


@pytest.mark.parametrize('name', TRANSFORMS)
def test_something_chained_after_is_an_error(name):
  opt = optax.chain(TRANSFORMS[name](), optax.scale(0.5))
  params, state = train(opt, n=4)
  with pytest.raises(rda_optax.ChainOrderError, match='Put the rda_optax'):
    rda_optax.sparse_params(state, params)


def test_chain_order_errors_under_jit_and_for_rare_changes():
  opt = optax.chain(TRANSFORMS['rmda'](), optax.scale(0.5))
  params, state = train(opt, n=4)
  # From inside jit (as a callback), as the train job calls it.
  with pytest.raises(Exception, match='Put the rda_optax'):
    jax.block_until_ready(jax.jit(rda_optax.sparse_params)(state, params))
  # A clip that acts on some entries only is seen when it acts on
  # consecutive steps.
  opt = optax.chain(TRANSFORMS['rmda'](), optax.clip(2e-3))
  params, state = train(opt)
  with pytest.raises(rda_optax.ChainOrderError):
    rda_optax.sparse_params(state, params)


def test_a_single_change_of_the_parameters_is_not_an_alarm():
  opt = TRANSFORMS['rmda']()

  def jump_to_sparse_point(t, params):  # Once, mid-run (e.g. a reload).
    return jax.tree.map(lambda p: p * 0.5, params) if t == 3 else params

  params, state = train(opt, edit=jump_to_sparse_point)
  rda_optax.sparse_params(state, params)
  steps = [int(s) for _, s in landing.alarms(state)]
  assert steps == [-1]

  def every_step(t, params):
    return jax.tree.map(lambda p: p * 0.5, params)

  params, state = train(opt, edit=every_step)
  assert [int(s) for _, s in landing.alarms(state)] == [2]


def test_fingerprint_is_exact_and_reads_a_sample():
  x = jnp.linspace(-1.0, 1.0, 10_000).reshape(100, 100)
  f = landing.fingerprint({'x': x})
  assert f.dtype == jnp.uint32
  assert int(jax.jit(landing.fingerprint)({'x': x})) == int(f)
  assert int(landing.fingerprint({'x': x.at[0, 0].set(-0.0)})) == int(
      landing.fingerprint({'x': x.at[0, 0].set(0.0)})
  )
  assert int(landing.fingerprint({'x': x * (1 + 2**-20)})) != int(f)
  # A sample of at most SAMPLE entries per leaf: the first entry is in it.
  assert int(landing.fingerprint({'x': x.at[0, 0].add(1.0)})) != int(f)
  # Whatever the leaf's size, the reductions read SAMPLE entries of it.
  jaxpr = jax.make_jaxpr(landing.fingerprint)({'x': jnp.zeros((1000, 1000))})
  sizes = [
      e.invars[0].aval.size
      for e in jaxpr.eqns
      if e.primitive.name.startswith('reduce')
  ]
  assert sizes and max(sizes) <= landing.SAMPLE
  np.testing.assert_array_equal(
      np.asarray(landing.fingerprint(())), np.uint32(0)
  )

"""rda_optax.prox_spec: the regularizer and mask as static parts of RMDA's
state, its array-valued fields as the state's one field."""

import functools
import pickle

import jax
import jax.numpy as jnp
import numpy as np

import rda_optax
from rda_optax.prox_spec import prox_spec
from rda_optax.prox_spec import RMDAProx


def test_arrays_are_the_args_and_the_rest_is_the_class():
  spec = prox_spec(rda_optax.l1(jnp.float32(0.1)), None)
  assert isinstance(spec, RMDAProx)
  (arg,) = spec.args
  assert float(arg) == np.float32(0.1)
  assert float(spec.regularizer.strength) == np.float32(0.1)
  # Another strength, the same static parts: the same class, hence the same
  # pytree structure of the state.
  other = prox_spec(rda_optax.l1(jnp.float32(0.7)), None)
  assert type(other) is type(spec)
  assert jax.tree.structure(other) == jax.tree.structure(spec)
  # A float strength is static: another class for another value.
  a = prox_spec(rda_optax.l1(0.1), None)
  b = prox_spec(rda_optax.l1(0.2), None)
  assert a.args == () and type(a) is not type(b)
  assert type(prox_spec(rda_optax.l1(0.1), None)) is type(a)


def test_masks_and_closures_are_keyed_by_what_they_are():
  def mask_of(n):
    return lambda p: jax.tree.map(lambda x: x.ndim > n, p)

  reg = rda_optax.l1(jnp.float32(0.1))
  # Closures made anew (as a build function under inject_hyperparams makes
  # them at each call): equal code and captured values, one class.
  assert type(prox_spec(reg, mask_of(1))) is type(prox_spec(reg, mask_of(1)))
  assert type(prox_spec(reg, mask_of(1))) is not type(
      prox_spec(reg, mask_of(0))
  )
  assert type(prox_spec(reg, {'w': True, 'b': False})) is type(
      prox_spec(reg, {'w': True, 'b': False})
  )
  assert type(prox_spec(reg, None)) is not type(prox_spec(reg, mask_of(1)))


def test_arrays_inside_a_schedule_are_args_too():
  # A schedule as partial(f, keyword=array): the array is an arg, the
  # schedule's function and other keywords static.
  sched = functools.partial(
      rda_optax.zhu_gupta_sparsity,
      final_sparsity=jnp.float32(0.9),
      begin_step=0,
      end_step=10,
  )
  spec = prox_spec(rda_optax.sparsity_constraint(sched), None)
  assert len(spec.args) == 1
  filled = spec.regularizer.sparsity
  assert isinstance(filled, functools.partial)
  assert float(filled.keywords['final_sparsity']) == np.float32(0.9)
  assert filled.keywords['end_step'] == 10


def test_a_spec_pickles_to_an_equal_one():
  spec = prox_spec(rda_optax.l1(jnp.float32(0.3)), {'w': True})
  again = pickle.loads(pickle.dumps(jax.device_get(spec)))
  assert type(again) is type(spec)
  assert float(again.regularizer.strength) == np.float32(0.3)
  assert again.mask == {'w': True}

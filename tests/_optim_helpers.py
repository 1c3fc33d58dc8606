"""Shared by the optimizer tests: random trees, a runner, NumPy proxes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rda_optax

SHAPES = {'conv': (3, 3, 2, 4), 'dense': (6, 5), 'bias': (5,)}


def random_params(seed=0):
  rng = np.random.default_rng(seed)
  return {
      k: jnp.asarray(rng.normal(scale=0.3, size=s), jnp.float32)
      for k, s in SHAPES.items()
  }


def random_grads(steps, seed=1):
  rng = np.random.default_rng(seed)
  return [
      {
          k: rng.normal(scale=0.5, size=s).astype(np.float32)
          for k, s in SHAPES.items()
      }
      for _ in range(steps)
  ]


def normal_like(tree, seed):
  """Standard normal draws with the shapes and dtypes of ``tree``."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda x: jnp.asarray(
          rng.normal(size=jnp.shape(x)), jnp.asarray(x).dtype
      ),
      tree,
  )


def multistart_min(objective, starts) -> float:
  """The least value Powell's method (derivative free) reaches from any of
  ``starts``: the brute-force reference for a prox."""
  from scipy import optimize  # pylint: disable=import-outside-toplevel

  return min(
      optimize.minimize(
          objective,
          x0,
          method='Powell',
          options=dict(xtol=1e-8, ftol=1e-12, maxfev=20000),
      ).fun
      for x0 in starts
  )


def run(opt, params, grads, jit=True):
  state = opt.init(params)
  update = jax.jit(opt.update) if jit else opt.update
  traj = []
  for g in grads:
    updates, state = update(jax.tree.map(jnp.asarray, g), state, params)
    params = optax.apply_updates(params, updates)
    traj.append(jax.tree.map(np.asarray, params))
  return traj, state


def np_momentum(d, g, momentum, nesterov=False):
  """SGD's momentum in NumPy: the new buffer ``μ·d + g`` and the step's
  direction (``g`` without momentum, ``g + μ·d'`` with Nesterov's)."""
  if momentum is None:
    return d, g
  d = momentum * d + g
  return d, (g + momentum * d if nesterov else d)


def np_soft(v, thr):
  return np.sign(v) * np.maximum(np.abs(v) - thr, 0)


def np_group_out(v, thr):
  axes = tuple(range(v.ndim - 1))
  norms = np.sqrt((v**2).sum(axis=axes, keepdims=True))
  n_g = math.prod(v.shape[:-1])
  return v * np.maximum(0, 1 - thr * math.sqrt(n_g) / np.maximum(norms, 1e-30))


def regularizer_and_numpy_prox(kind: str, lam: float):
  """``(rda_optax regularizer, its NumPy prox (v, t))`` for ``kind`` l1,
  group (output groups) or none."""
  reg = {
      'l1': rda_optax.l1(lam),
      'group': rda_optax.group_lasso(lam),
      'none': None,
  }[kind]
  prox = {'l1': np_soft, 'group': np_group_out, 'none': lambda v, t: v}[kind]
  return reg, prox

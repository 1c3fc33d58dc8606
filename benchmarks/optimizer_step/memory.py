"""The optimizer-state memory table (``--state_only``, and after the
default table): bytes per parameter of every method, from
:func:`jax.eval_shape` (nothing allocated or run)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import trees
from .sgd_family import optimizers


def state_memory(
    dtype: str = 'float32', lr: float = 0.1, lam: float = 1e-6
) -> dict[str, dict[str, float]]:
  """Optimizer-state memory of every method of the table, and of
  ``optax.sgd(momentum=0.9)`` and ``optax.adam`` as references.

  Measured on the ResNet-18-sized tree with :func:`jax.eval_shape` (nothing
  is allocated or run): for each optimizer, the state's bytes per parameter,
  per parameter byte, and parameters + state as a multiple of the
  parameters (the memory a training step holds besides activations).
  """
  shapes = trees.resnet18_shapes()
  params = {
      name: jax.ShapeDtypeStruct(s, jnp.dtype(dtype))
      for name, s in shapes.items()
  }
  n_params = sum(int(np.prod(s)) for s in shapes.values())
  param_bytes = n_params * jnp.dtype(dtype).itemsize
  opts = dict(optimizers(lr=lr, lam=lam))
  opts['optax.adam'] = optax.adam(1e-3)
  rows = {}
  for name, opt in opts.items():
    state = jax.eval_shape(opt.init, params)
    nbytes = sum(
        int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize
        for x in jax.tree.leaves(state)
    )
    rows[name] = dict(
        bytes_per_param=nbytes / n_params,
        per_param_byte=nbytes / param_bytes,
        with_params=(nbytes + param_bytes) / param_bytes,
    )
  return rows


def print_state_memory(dtype: str = 'float32') -> None:
  rows = state_memory(dtype)
  print(
      f'\nOptimizer state on the ResNet-18-sized tree ({dtype} parameters; '
      'jax.eval_shape of init):\n'
  )
  print(
      '| optimizer | state bytes / param | state / params | '
      '(params + state) / params |'
  )
  print('|---|---:|---:|---:|')
  for name, r in rows.items():
    print(
        f'| {name} | {r["bytes_per_param"]:.2f} | {r["per_param_byte"]:.2f} '
        f'| {r["with_params"]:.2f} |'
    )

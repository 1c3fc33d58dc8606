"""Checks shared by the transforms: clear errors that name the fix."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def concrete_float(value: Any) -> float | None:
  """``float(value)``; None for a schedule or a traced value.

  Under :func:`optax.inject_hyperparams` the factories receive arrays, traced
  under ``jit``: those cannot be checked at construction and are skipped.
  """
  if callable(value):
    return None
  try:
    return float(value)
  except (TypeError, ValueError):
    return None


def static_number(name: str, value: Any) -> float | None:
  """``float(value)`` when concrete, ``None`` when traced (e.g. under
  ``optax.inject_hyperparams``); ``ValueError`` for anything else."""
  if isinstance(value, jax.core.Tracer):
    return None
  try:
    return float(value)
  except (TypeError, ValueError) as e:
    raise ValueError(f'{name} must be a number, got {value!r}.') from e


def dtype_arg(owner: str, name: str, value: Any) -> Any:
  """``value`` as a NumPy dtype (``None`` stays ``None``).

  ``optax.inject_hyperparams`` turns every callable argument into a schedule,
  and a dtype class such as ``jnp.float32`` is callable: the transform would
  receive ``jnp.float32(count)``, an array, and silently use the parameters'
  dtype. Such an array is rejected with the fix.
  """
  if value is None:
    return None
  if isinstance(value, (jax.Array, np.ndarray, np.generic)) or hasattr(
      value, 'aval'
  ):
    raise TypeError(
        f'{owner} got an array for {name} ({value!r}), not a dtype: '
        f'optax.inject_hyperparams treats a dtype class such as jnp.float32 '
        f'as a schedule. Pass the dtype as a string ({name}="float32") or '
        f'list {name!r} in inject_hyperparams(..., static_args=...).'
    )
  try:
    return jnp.dtype(value)
  except TypeError as e:
    raise TypeError(
        f'{owner} needs a dtype for {name} (e.g. "float32"), got {value!r}.'
    ) from e


def check_positive(owner: str, name: str, value: Any, hint: str = '') -> None:
  """Raises ``ValueError`` unless a constant ``value`` is ``> 0``."""
  if isinstance(value, (str, bytes)):
    raise TypeError(
        f'{owner} needs {name} as a number or an optax schedule, '
        f'got the string {value!r}: pass {name}={value}.'
    )
  v = concrete_float(value)
  if callable(value):
    # A schedule: its first value (a γ or rate of 0 divides by zero).
    try:
      v = float(value(0))
    except Exception:  # pylint: disable=broad-except
      v = None
  if v is not None and not 0 < v < float('inf'):
    got = (
        f'a schedule whose value at step 0 is {v}'
        if callable(value)
        else f'{name}={value!r}'
    )
    raise ValueError(
        f'{owner} needs a finite {name} > 0 (or an optax '
        f'schedule of such values), got {got}.'
        f'{" " + hint if hint else ""}'
    )


def missing_params_error(owner: str) -> ValueError:
  return ValueError(
      f'{owner} needs the current parameters: call '
      f'`update(grads, state, params)` (optax passes them when you use '
      f'`optimizer.update(grads, opt_state, params)`).'
  )


def check_tree_match(owner: str, tree: Any, params: Any) -> None:
  if jax.tree.structure(tree) != jax.tree.structure(params):
    raise ValueError(
        f'{owner}: the gradients and parameters have different tree '
        f'structures ({jax.tree.structure(tree)} vs '
        f'{jax.tree.structure(params)}); pass gradients of the same parameters '
        'the optimizer was initialised with.'
    )


def check_update_args(owner: str, updates: Any, params: Any) -> None:
  """The checks every ``update(updates, state, params)`` here starts with."""
  if params is None:
    raise missing_params_error(owner)
  check_tree_match(owner, updates, params)
  paths = jax.tree_util.tree_leaves_with_path(params)
  for (path, p), u in zip(paths, jax.tree.leaves(updates)):
    if jnp.shape(p) != jnp.shape(u):
      raise ValueError(
          f'{owner}: the gradient of {jax.tree_util.keystr(path)} has shape '
          f'{jnp.shape(u)} but the parameter has shape {jnp.shape(p)}; pass '
          'gradients of the parameters themselves.'
      )
    if not jnp.issubdtype(jnp.result_type(p), jnp.inexact):
      raise TypeError(
          f'{owner}: parameter {jax.tree_util.keystr(path)} is of integer '
          f'type {jnp.result_type(p)}; train floating-point parameters '
          '(e.g. jnp.asarray(p, jnp.float32)).'
      )

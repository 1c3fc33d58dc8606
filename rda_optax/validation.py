"""Checks shared by the transforms: clear errors that name the fix."""

from __future__ import annotations

from typing import Any


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


def check_positive(owner: str, name: str, value: Any, hint: str = '') -> None:
  """Raises ``ValueError`` unless a constant ``value`` is ``> 0``."""
  if isinstance(value, (str, bytes)):
    raise TypeError(f'{owner} needs {name} as a number or an optax schedule, '
                    f'got the string {value!r}: pass {name}={value}.')
  v = concrete_float(value)
  if v is not None and not 0 < v < float('inf'):
    raise ValueError(f'{owner} needs a finite {name} > 0 (or an optax '
                     f'schedule), got {name}={value!r}.'
                     f'{" " + hint if hint else ""}')


def check_regularizer(owner: str, regularizer: Any,
                      allow_none: bool = True) -> None:
  from rda_optax.regularizers import Regularizer  # pylint: disable=g-import-not-at-top
  if (regularizer is None and allow_none) or isinstance(regularizer,
                                                        Regularizer):
    return
  raise TypeError(
      f'{owner} needs a rda_optax.Regularizer such as rda_optax.l1(1e-5) or '
      f'rda_optax.l0(1e-4), got {type(regularizer).__name__}.')


def missing_params_error(owner: str) -> ValueError:
  return ValueError(
      f'{owner} needs the current parameters: call '
      f'`update(grads, state, params)` (optax passes them when you use '
      f'`optimizer.update(grads, opt_state, params)`).')


def check_tree_match(owner: str, tree: Any, params: Any) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  if jax.tree.structure(tree) != jax.tree.structure(params):
    raise ValueError(
        f'{owner}: the gradients and parameters have different tree '
        f'structures ({jax.tree.structure(tree)} vs '
        f'{jax.tree.structure(params)}); pass gradients of the same parameters '
        'the optimizer was initialised with.')


def check_update_args(owner: str, updates: Any, params: Any) -> None:
  """The checks every ``update(updates, state, params)`` here starts with."""
  if params is None:
    raise missing_params_error(owner)
  check_tree_match(owner, updates, params)

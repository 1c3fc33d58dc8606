"""The exactly sparse model inside an optimizer state.

Some transforms train one point and keep a second, exactly sparse one: the
proximal point ``w̃`` of :func:`rda_optax.rmda` with momentum, the sparse copy
``V`` of :func:`rda_optax.variable_splitting`. Their states say so with a
``sparse_point(params)`` method; :func:`sparse_params` finds it anywhere in an
optimizer state (inside ``optax.chain``, ``optax.inject_hyperparams``,
:func:`rda_optax.asr`, ...). That is the model to evaluate, report, checkpoint
as final and export.
"""

from __future__ import annotations

from typing import Any

import jax


def _is_sparse_state(x: Any) -> bool:
  return isinstance(x, tuple) and callable(
      getattr(type(x), 'sparse_point', None)
  )


def sparse_states(state: Any) -> list[Any]:
  """The outermost states in ``state`` that hold a sparse point."""
  return [
      s
      for s in jax.tree.leaves(state, is_leaf=_is_sparse_state)
      if _is_sparse_state(s)
  ]


def has_sparse_point(state: Any) -> bool:
  """Whether ``state`` holds a sparse point other than the parameters."""
  return any(s.holds_sparse_point() for s in sparse_states(state))


def sparse_params(state: Any, params: Any = None) -> Any:
  """The exactly sparse model kept in an optimizer state.

  Args:
    state: an optimizer state containing one :func:`rda_optax.rmda`,
      :func:`rda_optax.variable_splitting` or :func:`rda_optax.asr` state.
    params: the current parameters, returned where the parameters are the
      sparse model themselves (``rmda(momentum=0)``, or a state with no
      sparse point at all).

  Returns:
    A tree like the parameters.

  Raises:
    ValueError: ``state`` holds several such states, or none and ``params``
      is not given.

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> opt = rda_optax.rmda(0.5, rda_optax.l1(0.5), momentum=0.9)
    >>> params = {'w': jnp.array([[1.0, 0.1]])}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({'w': jnp.zeros((1, 2))}, state, params)
    >>> rda_optax.sparse_params(state)['w']   # the prox point: exact zeros
    Array([[0.75, 0.  ]], dtype=float32)
  """
  found = sparse_states(state)
  if len(found) > 1 or (not found and params is None):
    raise ValueError(
        f'Expected exactly one rmda, variable_splitting or asr state in the '
        f'optimizer state, found {len(found)}'
        + ('' if found else '; pass params= to fall back to the parameters')
        + '.'
    )
  if not found:
    return params
  return found[0].sparse_point(params)

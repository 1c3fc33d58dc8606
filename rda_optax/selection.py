"""Which leaves a regularizer (or a freezing / pruning transform) applies to.

Every transform of `rda_optax` that treats some leaves differently takes a
``mask`` argument in the manner of :func:`optax.masked`: a pytree of Python
booleans with the structure of the parameters (or a prefix of it), or a
callable that maps the parameters to such a tree. ``None`` selects the
default, :func:`default_mask`: every leaf with more than one dimension
(convolution and dense kernels), leaving out biases and batch-norm scales and
shifts. Parameters with no such leaf (``optax.flatten``'s one vector, the
biases alone under ``optax.masked``) make the transforms refuse the default
at ``init`` (:func:`check_selects`): it would select nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

MaskOrFn = Any | Callable[[Any], Any] | None


def path_str(path: tuple[Any, ...]) -> str:
  """A leaf's key path as the reports write it: its keys joined by ``/``.

  The name that :func:`rda_optax.layer_sparsity`, the train job's
  ``--select`` patterns and its reports use for a leaf: dict keys, sequence
  indices and attribute names, without brackets or quotes.

  Example:
    >>> import jax, jax.numpy as jnp, rda_optax
    >>> params = {'Conv_0': {'kernel': jnp.ones((3, 3, 1, 2))}, 'b': [0.0]}
    >>> [rda_optax.path_str(p) for p, _ in
    ...  jax.tree_util.tree_leaves_with_path(params)]
    ['Conv_0/kernel', 'b/0']

  Args:
    path: a key path of :func:`jax.tree_util.tree_leaves_with_path` (or
      ``tree_map_with_path``).

  Returns:
    ``'Conv_0/kernel'``-style text (``''`` for the root).
  """
  return jax.tree_util.keystr(path, simple=True, separator='/')


def default_mask(params: Any) -> Any:
  """Selects every leaf with ``ndim > 1`` (kernels), not biases or norms.

  Example:
    >>> import jax.numpy as jnp
    >>> default_mask({'kernel': jnp.ones((3, 4)), 'bias': jnp.ones(4)})
    {'bias': False, 'kernel': True}
  """
  return jax.tree.map(lambda p: len(getattr(p, 'shape', ())) > 1, params)


def resolve_mask(mask: MaskOrFn, params: Any) -> Any:
  """Returns a full boolean tree (one Python bool per leaf of ``params``).

  ``mask`` may be ``None`` (:func:`default_mask`), a callable of the params,
  or a tree of booleans whose structure is the params' or a prefix of it.

  Raises:
    ValueError: when the mask's structure does not fit the params, or a mask
      leaf is not a Python/NumPy boolean (a traced value cannot choose leaves).
  """
  if mask is None:
    mask = default_mask
  if callable(mask):
    mask = mask(params)
  try:
    full = jax.tree.map(
        lambda m, sub: jax.tree.map(lambda _: m, sub),
        mask,
        params,
        is_leaf=lambda x: x is None,
    )
  except (ValueError, TypeError) as e:
    raise ValueError(
        'The leaf-selection mask does not match the parameters: pass a tree of '
        'booleans with the same structure as the params (or a prefix of it), '
        'or a callable params -> such a tree. '
        f'Mask structure: {jax.tree.structure(mask)}; params structure: '
        f'{jax.tree.structure(params)}. ({e})'
    ) from e
  for leaf in jax.tree.leaves(full):
    if not isinstance(leaf, (bool, np.bool_)):
      raise ValueError(
          'Leaf-selection mask leaves must be Python booleans chosen from '
          f'static information (shapes, names), got {type(leaf).__name__}: '
          'for a per-element mask use rda_optax.asr or pruning masks instead.'
      )
  return jax.tree.map(bool, full)


def check_selects(mask: MaskOrFn, params: Any, who: str) -> None:
  """Raises when the default mask would silently select nothing.

  ``mask=None`` selects the leaves with more than one dimension. Parameters
  without any (one flat vector under ``optax.flatten``; only biases under
  ``optax.masked``; a vector or scalar problem) would then be trained with
  no regularizer, pruning or freezing at all: the transforms call this at
  ``init`` so that the user chooses the leaves instead.

  Args:
    mask: the transform's ``mask`` argument.
    params: the parameters it is initialised with.
    who: the transform's name, for the message.

  Raises:
    ValueError: ``mask`` is None and ``params`` has array leaves, none of
      them with more than one dimension.
  """
  if mask is not None:
    return
  shapes = [_shape(x) for x in jax.tree.leaves(params)]
  shapes = [s for s in shapes if s is not None]
  if shapes and not any(len(s) > 1 for s in shapes):
    raise ValueError(
        f'{who}: the default mask selects the leaves with more than one '
        f'dimension (kernels), and none of these {len(shapes)} parameter '
        f'leaves has more than one (shapes {sorted(set(shapes))[:4]}'
        f'{", ..." if len(set(shapes)) > 4 else ""}; under optax.flatten the '
        'parameters are one vector, under optax.masked they may be only the '
        'biases), so it would act on nothing. Choose the leaves with mask=: '
        'mask=True for every leaf, or a tree of booleans / a callable, as in '
        'optax.masked.'
    )


def _shape(x: Any) -> tuple[int, ...] | None:
  """The shape of an array leaf (NumPy, JAX, a ShapeDtypeStruct), or None
  for a leaf that is not an array."""
  shape = getattr(x, 'shape', None)
  if shape is None and isinstance(x, (int, float, complex, np.number)):
    return ()
  return None if shape is None else tuple(shape)

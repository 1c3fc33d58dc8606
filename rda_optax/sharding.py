"""Explicitly sharded parameters (``jax.make_mesh``'s default axis types).

Under a mesh with ``jax.sharding.AxisType.Explicit`` axes (the default of
``jax.make_mesh``), an array's sharding is part of its type, and operations
whose output sharding JAX cannot infer (a reshape across a sharded axis,
as the threshold search's rows and the landing check's samples take) are
type errors. The transforms run their updates under
``jax.sharding.auto_axes`` when they see such arrays: inside, the compiler
chooses the shardings (as under an ``Auto`` mesh, where everything already
works), and every output keeps the sharding of the array it replaces (the
updates that of the gradients, the state that of the state). With
unsharded arrays, or under ``Auto`` axes, nothing changes. A wrapper that
hands our update sharded arrays of its own (``optax.inject_hyperparams``)
needs :func:`with_auto_axes` around it.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
from typing import Any

import jax
import optax


def explicit_mesh(tree: Any) -> Any:
  """The mesh of the first leaf of ``tree`` sharded over an ``Explicit``
  mesh axis (the concrete ``Mesh`` of a concrete array, else the abstract
  mesh of its type, under ``jit``), or None (no such leaf; outside a mesh;
  leaves that are not arrays)."""
  explicit = getattr(jax.sharding.AxisType, 'Explicit', None)
  if explicit is None:  # A JAX without explicit sharding.
    return None
  for x in jax.tree.leaves(tree):
    try:
      mesh = jax.typeof(x).sharding.mesh
    except (AttributeError, TypeError):
      continue
    if getattr(mesh, 'empty', True) or explicit not in mesh.axis_types:
      continue
    concrete = getattr(getattr(x, 'sharding', None), 'mesh', None)
    if isinstance(x, jax.Array) and isinstance(concrete, jax.sharding.Mesh):
      return concrete  # Outside jit: a computation needs the devices.
    return mesh
  return None


def _spec(x: Any) -> Any:
  return jax.typeof(x).sharding.spec


def specs(tree: Any) -> Any:
  """Each array leaf's ``PartitionSpec``, from its type."""
  return jax.tree.map(_spec, tree)


def run_auto(mesh: Any, fn: Callable[..., Any], out: Any) -> Callable:
  """``fn`` run with ``mesh``'s axes ``Auto`` (``jax.sharding.auto_axes``),
  its outputs resharded to ``out`` (a tree of ``PartitionSpec``)."""

  def run(*args):
    if isinstance(mesh, jax.sharding.Mesh):
      context = jax.sharding.set_mesh(mesh)
    else:
      context = jax.sharding.use_abstract_mesh(mesh)
    with context:
      return jax.sharding.auto_axes(fn, out_sharding=out)(*args)

  return run


def call(fn: Callable[..., Any], args: tuple[Any, ...], out_like: Any) -> Any:
  """``fn(*args)``; when ``args`` hold explicitly sharded arrays, run under
  :func:`run_auto` with each output sharded as its twin in ``out_like`` (a
  callable of no argument giving that tree, computed only then; None: the
  outputs are unknown, and ``fn`` is called as it is, to raise its own
  error)."""
  mesh = explicit_mesh(args)
  like = None if mesh is None else out_like()
  if like is None:
    return fn(*args)
  return run_auto(mesh, fn, specs(like))(*args)


_MESH_MISMATCH = 'should match the aval mesh'


def explicit_safe(update_fn: Callable[..., Any]) -> Callable[..., Any]:
  """``update_fn`` (an optax ``update``) made to accept explicitly sharded
  updates, state and parameters: run under :func:`run_auto` when one of
  them is, the new updates sharded as the gradients and the new state as
  the state; called as it is otherwise."""

  @functools.wraps(update_fn)
  def update(updates, state, params=None, **extra_args):
    fn = lambda u, s, p: update_fn(u, s, p, **extra_args)
    try:
      return call(fn, (updates, state, params), lambda: (updates, state))
    except ValueError as e:
      if _MESH_MISMATCH not in str(e):
        raise
      raise ValueError(
          'An rda_optax transform received explicitly sharded arrays that '
          'are not among its arguments (hyper-parameters that '
          'optax.inject_hyperparams, or another wrapper, computes from its '
          'own state and passes in): wrap the outermost transform in '
          'rda_optax.with_auto_axes(...), e.g. '
          'rda_optax.with_auto_axes(optax.inject_hyperparams(rda_optax.rmda)'
          '(...)), or shard over a mesh with AxisType.Auto axes.'
      ) from e

  return update


def with_auto_axes(
    inner: optax.GradientTransformation,
) -> optax.GradientTransformationExtraArgs:
  """Runs any optax transform's update with an ``Explicit`` mesh's axes
  ``Auto`` (``jax.sharding.auto_axes``).

  The transforms of :mod:`rda_optax` do this for their own updates. Wrap the
  outermost transform when another wrapper computes explicitly sharded
  arrays from its state and hands them to ours (``optax.inject_hyperparams``
  with its hyper-parameters): its whole update then runs with ``Auto`` axes.
  Each new update is sharded as its gradient and the new state as the
  state; without explicitly sharded arrays the transform runs as it is.

  Example:
    >>> import jax, jax.numpy as jnp, optax, rda_optax
    >>> opt = rda_optax.with_auto_axes(optax.inject_hyperparams(
    ...     rda_optax.rmda)(learning_rate=0.1, regularizer=rda_optax.l1(1.0)))
    >>> params = {'w': jnp.array([[1.0, 0.01]])}
    >>> updates, _ = opt.update(params, opt.init(params), params)
    >>> updates['w'].shape
    (1, 2)

  Args:
    inner: an ``optax.GradientTransformation``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with ``inner``'s ``init``.
  """
  inner = optax.with_extra_args_support(inner)
  return optax.GradientTransformationExtraArgs(
      inner.init, explicit_safe(inner.update)
  )

"""The groups of N:M sparsity and the keep-mask of the projection onto it.

What :mod:`rda_optax.nm` (the constraint) and :mod:`rda_optax.nm_pruning`
(its schedules and magnitude baselines) share: the axis the groups run along
(:func:`group_axis`), the checks of ``n``, ``m`` and ``axis``, and the
keep-mask that keeps the ``n`` largest scores of each group of ``m`` (ties:
the earlier entry is pruned first; the shorter last group of an axis whose
length is not a multiple of ``m`` held to ``n`` too; with a ``fraction < 1``
only the groups that discard the least energy constrained). The rules are
stated, with their references, in :mod:`rda_optax.nm`.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from rda_optax import threshold
from rda_optax import validation

Axis = int | Literal['input']

# Above this group size the ranks within a group come from a sort rather
# than from all pairwise comparisons (M² per group).
_PAIRWISE_MAX_M = 16
# Scores of padding entries (below every real score, also below the -1 of
# entries a gradual transform pruned before).
_PAD = -2.0


def group_axis(ndim: int, axis: Axis) -> int:
  """The axis the groups run along (``"input"``: ``-2``, or 0 for 1-D)."""
  if axis == 'input':
    return ndim - 2 if ndim >= 2 else 0
  if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
    if not -max(ndim, 1) <= axis < max(ndim, 1):
      raise ValueError(
          f'N:M axis {axis} is out of range for a leaf with {ndim} dimensions.'
      )
    return int(axis) % max(ndim, 1)
  raise ValueError(
      f'N:M axis must be "input" (axis -2 of a Flax kernel: the input '
      f'dimension of a dense (in, out) or conv (h, w, in, out) kernel) or an '
      f'int, got {axis!r}.'
  )


def _check_axis(axis: Any) -> None:
  """Raises the error naming the choices for an ``axis`` neither
  ``"input"`` nor an int (an int's range is checked against each leaf)."""
  if axis != 'input' and (
      not isinstance(axis, (int, np.integer)) or isinstance(axis, bool)
  ):
    group_axis(1, axis)


def _check_nm(owner: str, n: Any, m: Any) -> None:
  if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
    raise ValueError(
        f'{owner} needs the group size m as an int >= 1 (4 for 2:4), got '
        f'm={m!r}.'
    )
  if callable(n) or isinstance(n, jax.core.Tracer):
    return
  if (
      isinstance(n, (jax.Array, np.ndarray))
      and n.ndim == 0
      and jnp.issubdtype(n.dtype, jnp.integer)
  ):
    # A concrete value of a schedule (optax.inject_hyperparams evaluates
    # schedules outside jit at init).
    n = int(n)
  if (
      not isinstance(n, (int, np.integer))
      or isinstance(n, bool)
      or not 0 <= n <= m
  ):
    raise ValueError(
        f'{owner} needs n, the most nonzeros per group, as an int in '
        f'[0, m] = [0, {m}] (2 for 2:4) or a schedule of the step count '
        f'such as nm_n_schedule, got n={n!r}.'
    )


def _statically_one(fraction: Any) -> bool:
  f = validation.concrete_float(fraction)
  return f is not None and f == 1.0


def _magnitude_scores(x: Any, metric: Any = None) -> jax.Array:
  """The scores of the projection: ``|x|``, or with ``metric`` ``d``
  (positive, broadcastable to ``x``) ``d·x²``, the scores of the projection
  in ``‖·‖_D``, ``D = diag(d)``."""
  x = jnp.asarray(x)
  xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  return jnp.abs(xf) if metric is None else metric * jnp.square(xf)


def _ranks(s: jax.Array, axis: int) -> jax.Array:
  """Rank of each entry within its group (along ``axis``), 0 = kept first:
  larger scores first, and among equal scores the later entry first (so
  that the earlier one is pruned first)."""
  m = s.shape[axis]
  if m <= _PAIRWISE_MAX_M:
    # All pairwise comparisons, one term per other entry j (a slice along
    # the group axis, broadcast), summed unrolled: elementwise operations
    # that XLA fuses and vectorizes (no transpose, no sort, no reduction,
    # which XLA:CPU emits as a loop per entry, 1.4 times slower at m = 4).
    i = jax.lax.broadcasted_iota(
        jnp.int32, (1,) * axis + (m,) + (1,) * (s.ndim - axis - 1), axis
    )
    ranks = None
    for j in range(m):
      sj = jax.lax.slice_in_dim(s, j, j + 1, axis=axis)
      # j beats i: a larger score, or an equal one later (j > i).
      beats = jnp.where(i < j, sj >= s, sj > s).astype(jnp.int32)
      ranks = beats if ranks is None else ranks + beats
    return ranks
  moved = jnp.moveaxis(s, axis, -1)
  rev = moved[..., ::-1]
  order = jnp.argsort(-rev, axis=-1, stable=True)
  ranks = jnp.argsort(order, axis=-1).astype(jnp.int32)[..., ::-1]
  return jnp.moveaxis(ranks, -1, axis)


def _cheapest_groups(cost: jax.Array, k: jax.Array) -> jax.Array:
  """Whether each group is among the ``k`` of smallest ``cost`` (ties by
  row-major position: the first ``k`` of a stable argsort), found by
  :func:`rda_optax.kth_smallest`'s counting passes: on a ResNet-18's
  kernels on a 2-core CPU, 22 ms where two sorts of the costs took 890 ms
  (``python -m benchmarks.optimizer_step --adaptive``). The costs are
  computed once into memory, so that the search and the mask compare the
  same bits."""
  flat = threshold.computed_once(lambda c: c.reshape(-1), cost)
  split, _ = threshold.kth_smallest([flat], k)
  (chosen,) = threshold.smallest_masks([flat], split)
  return chosen.reshape(cost.shape)


def _keep_mask(
    scores: jax.Array,
    n: Any,
    m: int,
    axis: int,
    fraction: Any,
    squared: bool = False,
) -> jax.Array:
  """Keep-mask of the N:M projection from per-entry ``scores`` (>= 0 for
  live entries; -1 for entries to prune before any live one): magnitudes
  ``|x|``, or with ``squared`` the squared distances an entry's removal
  costs (``d·x²``, the projection in ``‖·‖_D``). A group's cost (which
  groups ``fraction < 1`` leaves free) is the sum of its dropped entries'
  squared magnitudes, or of their ``squared`` scores as they are."""
  shape = scores.shape
  s = scores.reshape(1) if scores.ndim == 0 else scores
  s = s.astype(jnp.float32)
  length = s.shape[axis]
  pad = (-length) % m
  if pad:
    widths = [(0, 0)] * s.ndim
    widths[axis] = (0, pad)
    s = jnp.pad(s, widths, constant_values=_PAD)
  # Split the axis into (groups, m) in place: a reshape, not a transpose.
  grouped = s.shape[:axis] + ((length + pad) // m, m) + s.shape[axis + 1 :]
  g = s.reshape(grouped)
  keep = _ranks(g, axis + 1) < jnp.asarray(n, jnp.int32)
  if not _statically_one(fraction):
    real = g > _PAD
    dropped = real & ~keep
    energy = jnp.maximum(g, 0) if squared else jnp.square(jnp.maximum(g, 0))
    cost = jnp.sum(jnp.where(dropped, energy, 0), axis=axis + 1)
    # A group whose dropped entries were all pruned before (score -1) is
    # already N:M: it ranks before every other, so that the constrained
    # groups of a gradual schedule stay constrained.
    live_dropped = jnp.sum(dropped & (g >= 0), axis=axis + 1)
    any_dropped = jnp.any(dropped, axis=axis + 1)
    cost = jnp.where(any_dropped & (live_dropped == 0), -1, cost)
    # No search where the fraction constrains no group or all of them (a
    # schedule's ramp begins at 0 and stays at 1 once it ends).
    k = threshold.fraction_count(fraction, cost.size)
    constrained = jax.lax.cond(
        (k > 0) & (k < cost.size),
        _cheapest_groups,
        lambda c, k: jnp.broadcast_to(k > 0, c.shape),
        cost,
        k,
    )
    keep = keep | ~jnp.expand_dims(constrained, axis + 1)
  keep = keep.reshape(s.shape)
  if pad:
    keep = jax.lax.slice_in_dim(keep, 0, length, axis=axis)
  return keep.reshape(shape)

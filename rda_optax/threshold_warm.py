"""The warm start of :func:`rda_optax.kth_smallest`: what one search
leaves for the next (:class:`ThresholdState`), the threshold it predicts
(the last one moved by its drift and acceleration and by the change of
rank over the density of values around it) and the first pass's pivots
around that prediction.

A state never changes a search's answer, only its number of passes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rda_optax.threshold_keys import _offsets
from rda_optax.threshold_keys import _tiny
from rda_optax.threshold_keys import _value_keys
from rda_optax.threshold_keys import _zero_keys

# A warm start is tried when the rank moved by at most this fraction of n.
_WARM_RANK_MOVE = 1 / 32

# The drift and its change are smoothed (Holt's linear method): a training
# step's noise moves the threshold by a few hundred entries at random, and
# the raw second-order prediction (2 d_t - d_(t-1)) multiplies that noise's
# variance by 6. Along 200 steps of a ResNet-18 CIFAR-10 run of
# rmda(sparsity_constraint) the raw prediction took a second pass at 8.2% of
# the steps, the smoothed one at none, its median miss 0.14 of GATHER
# against 0.34 (`python -m benchmarks.threshold_passes`, 2026-12-08). A
# steady or steadily changing drift is still followed without lag (after a
# few steps: a fixed gradient's smooth curve costs some second passes in
# the first 30 steps).
_DRIFT_SMOOTHING = 0.5
_ACCEL_SMOOTHING = 0.2


class ThresholdState(NamedTuple):
  """What one search leaves for the next (arrays of shape ``(groups,)``).

  A state never changes the answer, only the number of passes: any values,
  NaN included, give the exact result; :func:`threshold_state` makes a cold
  one. **Cost.** Started from it, a search on weights that a training step
  moved takes one counting pass (its pivots around the level predicted to
  second order, spaced by the density), against 2 to 4 cold; a tie at the
  last value (ASR's frozen zeros) is checked in one pass too. A few
  float32 scalars per group: nothing next to the weights.

  Attributes:
    value: the last ``k``-th smallest value (float32; NaN: none yet, the
      next search starts cold).
    drift: its change per search at a fixed rank, smoothed over the last
      searches (float32; NaN: unknown).
    accel: the change of ``drift`` per search, smoothed (float32; NaN:
      unknown): the threshold is predicted to second order (Holt's linear
      method, which follows a steady trend without lag and damps a
      training step's noise).
    density: entries per unit of value around it (float32; 0: unknown, for
      instance after a tie, when the answer was one value held by many
      entries).
    error: how far the last prediction of ``value`` was off (float32).
    rank: the last ``k`` (int32).
    passes: counting passes the last search took (int32; 0 when it sorted).
  """

  value: jax.Array
  drift: jax.Array
  accel: jax.Array
  density: jax.Array
  error: jax.Array
  rank: jax.Array
  passes: jax.Array


def threshold_state(groups: int = 1) -> ThresholdState:
  """A cold :class:`ThresholdState` for ``groups`` independent searches.

  Example:
    >>> from rda_optax import threshold
    >>> threshold.threshold_state(2).value
    Array([nan, nan], dtype=float32)
  """
  return ThresholdState(
      value=jnp.full((groups,), jnp.nan, jnp.float32),
      drift=jnp.full((groups,), jnp.nan, jnp.float32),
      accel=jnp.full((groups,), jnp.nan, jnp.float32),
      density=jnp.zeros((groups,), jnp.float32),
      error=jnp.zeros((groups,), jnp.float32),
      rank=jnp.zeros((groups,), jnp.int32),
      passes=jnp.zeros((groups,), jnp.int32),
  )


def _warm_usable(state, g, k, n):
  value, density = state.value[g], state.density[g]
  near = jnp.abs(k - state.rank[g]) <= max(1, int(n * _WARM_RANK_MOVE))
  return (
      jnp.isfinite(value)
      & jnp.isfinite(density)
      & jnp.isfinite(state.error[g])
      & (density >= 0)
      & near
  )


def _predicted(state, g, k):
  """The threshold predicted for rank ``k``: the last value, moved by its
  drift and acceleration (those known) and by the change of rank over the
  density."""
  known = state.density[g] > 0
  safe = jnp.where(known, state.density[g], 1.0)
  dk = (k - state.rank[g]).astype(jnp.float32)
  drift = jnp.nan_to_num(state.drift[g], nan=0.0)
  accel = jnp.nan_to_num(state.accel[g], nan=0.0)
  return state.value[g] + drift + accel + jnp.where(known, dk / safe, 0.0)


def _warm_pivots(state, g, k, dtype, ut, count, gather):
  """Around the threshold predicted from the last search: its value plus
  its drift per step, moved by the change of rank over the density. All but
  two evenly spaced, ``gather / 2`` entries apart (at most a sixteenth of
  the value; wider if the last prediction's error was), the two others
  ``8·(count − 2)`` spacings out. With
  no density known (the last answer was a tie): the last value itself,
  the key below it, and steps of 1/256 of it either side."""
  value, density, error = state.value[g], state.density[g], state.error[g]
  known = density > 0
  safe = jnp.where(known, density, 1.0)
  centre = _predicted(state, g, k)
  even = count - 2
  # (A density measured in a gap between clusters of values holds only
  # locally: the spacing is at most a sixteenth of the value's scale.)
  scale = jnp.abs(value) + jnp.abs(jnp.nan_to_num(state.drift[g], nan=0.0))
  unit = jnp.maximum(
      jnp.minimum(0.5 * gather / safe, scale / 16), 2 * error / even
  )
  offsets = jnp.concatenate(
      [
          jnp.asarray([-8.0 * even]),
          jnp.arange(even, dtype=jnp.float32) - (even - 1) / 2,
          jnp.asarray([8.0 * even]),
      ]
  )
  smooth = _value_keys(centre + unit * offsets, dtype, ut)
  # A tie: is the answer the same value again?
  v = _value_keys(value, dtype, ut)
  z_lo, z_hi = _zero_keys(dtype, ut)
  is_zero = jnp.abs(value) < _tiny(dtype)
  pair = jnp.where(
      is_zero, jnp.stack([z_lo, z_hi]), jnp.stack([v - 1, v]).astype(ut)
  )
  scale = jnp.abs(value) * 2.0**-8 + _tiny(dtype)
  rest = _value_keys(value + scale * _offsets(count - 2, 1.0, 16.0), dtype, ut)
  tie = jnp.concatenate([pair, rest])
  return jnp.where(known, smooth, tie)


def _next_state(state, g, k, value, density, passes, n):
  """The state after a search: the value, its drift at a fixed rank and
  the drift's change (both smoothed: Holt's linear method), the density
  around it (the last one kept when this bracket gave none), and how far
  this search's prediction was off."""
  old = state.value[g]
  new = value.astype(jnp.float32)
  found = (k > 0) & jnp.isfinite(new)
  warm = _warm_usable(state, g, k, n) & (state.density[g] > 0)
  error = jnp.where(warm, jnp.abs(new - _predicted(state, g, k)), 0.0)
  known = (density > 0) & jnp.isfinite(density)
  # A tie gives no density: keep the last one if the answer is the same
  # value again, else mark it unknown (the next search starts from the
  # value itself).
  same = new == old
  density = jnp.where(known, density, jnp.where(same, state.density[g], 0.0))
  usable = density > 0
  rank_move = (k - state.rank[g]).astype(jnp.float32) / jnp.where(
      usable, density, 1.0
  )
  nan = jnp.float32(jnp.nan)
  raw = jnp.where(warm & usable, new - old - rank_move, nan)
  last_drift, last_accel = state.drift[g], state.accel[g]
  accel_known = jnp.isfinite(last_accel)
  # Holt's update (NaN, a restart, whenever this search's drift is unknown):
  # the first known drift is taken as it is, the first change too.
  expected = last_drift + jnp.where(accel_known, last_accel, 0.0)
  a, b = _DRIFT_SMOOTHING, _ACCEL_SMOOTHING
  drift = jnp.where(jnp.isfinite(last_drift), a * raw + (1 - a) * expected, raw)
  change = drift - last_drift  # NaN unless both are known.
  accel = jnp.where(accel_known, b * change + (1 - b) * last_accel, change)
  return ThresholdState(
      value=state.value.at[g].set(jnp.where(found, new, nan)),
      drift=state.drift.at[g].set(jnp.where(found, drift, nan)),
      accel=state.accel.at[g].set(jnp.where(found, accel, nan)),
      density=state.density.at[g].set(jnp.where(found, density, 0.0)),
      error=state.error.at[g].set(jnp.where(found, error, 0.0)),
      rank=state.rank.at[g].set(k),
      passes=state.passes.at[g].set(passes),
  )

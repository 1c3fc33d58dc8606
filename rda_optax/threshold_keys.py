"""Order-preserving unsigned keys of floats, and the pivot arithmetic of
:mod:`rda_optax.threshold` on them (the data are compared as floats; the
keys place pivots: the middle of a bracket, a step of one float).

Floats are ordered as XLA:CPU compares them: ``-0.0 == +0.0``, values
below the smallest normal float32 as zeros (denormals are zero), NaNs after
``+inf``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def _key_dtype(dtype: Any) -> Any:
  bits = jnp.finfo(dtype).bits
  return {16: jnp.uint16, 32: jnp.uint32, 64: jnp.uint64}[bits]


def _tiny(dtype: Any) -> Any:
  """The smallest normal float32 (float64 for float64)."""
  return jnp.finfo(jnp.float64 if dtype == jnp.float64 else jnp.float32).tiny


def _flush(x: jax.Array) -> jax.Array:
  """``x`` with values below the smallest normal float32 (float64 for
  float64) set to zero: XLA:CPU compares such values as zeros (denormals
  are zero), so they are ranked as zeros everywhere."""
  tiny = jnp.asarray(_tiny(x.dtype), x.dtype)
  # (Two comparisons with tiny, not one of |x|: inside a loop, |x| would be
  # a loop invariant that XLA hoists, writing it out.)
  return jnp.where((x < tiny) & (x > -tiny), jnp.zeros((), x.dtype), x)


def _to_key(x: jax.Array) -> jax.Array:
  """Keys ordered as the floats (-0.0 as +0.0; every NaN the largest key)."""
  ut = _key_dtype(x.dtype)
  sign = jnp.asarray(1 << (jnp.iinfo(ut).bits - 1), ut)
  u = jax.lax.bitcast_convert_type(x, ut)
  u = jnp.where(x == 0, jnp.asarray(0, ut), u)
  key = jnp.where((u & sign) != 0, ~u, u | sign)
  return jnp.where(jnp.isnan(x), jnp.asarray(jnp.iinfo(ut).max, ut), key)


def _from_key(key: jax.Array, dtype: Any) -> jax.Array:
  """The float of a key. Keys below that of -inf give a negative NaN (no
  value is at most it), keys above that of +inf a positive NaN."""
  ut = _key_dtype(dtype)
  sign = jnp.asarray(1 << (jnp.iinfo(ut).bits - 1), ut)
  u = jnp.where((key & sign) != 0, key ^ sign, ~key)
  return jax.lax.bitcast_convert_type(u.astype(ut), dtype)


def _pivot_values(keys: jax.Array, dtype: Any) -> tuple[jax.Array, jax.Array]:
  """Floats to compare with, and whether a pivot counts everything (the
  largest key, above every NaN)."""
  top = keys == jnp.asarray(jnp.iinfo(keys.dtype).max, keys.dtype)
  return _flush(_from_key(keys, dtype)), top


def _loop_pivot_values(keys: jax.Array, dtype: Any) -> jax.Array:
  """Floats ``p`` such that ``x <= p``, for unflushed ``x``, counts as
  ``flush(x) <= flush(pivot)`` with or without denormals-are-zero: a pivot
  below the smallest normal in magnitude becomes the largest positive
  denormal (``x <= 0`` with every denormal ``x`` taken for zero). The loop
  then needs no flush of the data."""
  value = _from_key(keys, dtype)
  tiny = jnp.asarray(_tiny(dtype), dtype)
  ut = _key_dtype(dtype)
  below_tiny = jax.lax.bitcast_convert_type(
      jax.lax.bitcast_convert_type(tiny, ut) - jnp.asarray(1, ut), dtype
  )
  return jnp.where((value < tiny) & (value > -tiny), below_tiny, value)


def _at_most(x: jax.Array, key: jax.Array) -> jax.Array:
  """Whether ``x`` (flushed) counts at a pivot key: ``x <= pivot`` as floats
  (so ``-0.0`` and ``+0.0`` alike), everything at the top key."""
  value, top = _pivot_values(key, x.dtype)
  return (x <= value) | top


def _between(x: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
  """Whether ``x`` is in the bracket ``(lo, hi]`` (keys), as counted."""
  return _at_most(x, hi) & ~_at_most(x, lo)


def _zero_keys(dtype: Any, ut: Any) -> tuple[jax.Array, jax.Array]:
  """Two keys bracketing exactly the zeros ``(lo, hi]``: everything below
  the smallest normal in magnitude counts as zero."""
  below = _to_key(-jnp.asarray(_tiny(dtype), dtype)).astype(ut)
  return below, below + jnp.asarray(1, ut)


def _offsets(count: int, inner: float, outer: float) -> jax.Array:
  """``count`` offsets symmetric about 0, from ``±inner/2`` geometrically
  out to ``±outer`` (``count = 4``: ``(-outer, -inner/2, inner/2,
  outer)``)."""
  half = count // 2
  if half == 1:
    steps = [inner / 2]
  else:
    ratio = (outer / (inner / 2)) ** (1 / (half - 1))
    steps = [inner / 2 * ratio**i for i in range(half)]
  out = [-x for x in reversed(steps)] + steps
  if count % 2:
    out.insert(half, 0.0)
  return jnp.asarray(out, jnp.float32)


def _value_keys(values, dtype, ut):
  """Keys of float32 ``values`` in ``dtype`` (NaN: the top key, clipped
  away by the caller)."""
  return _to_key(values.astype(dtype)).astype(ut)


def _finite_ends(lo, hi, dtype):
  lo_v = _from_key(lo, dtype).astype(jnp.float32)
  hi_v = _from_key(hi, dtype).astype(jnp.float32)
  ok = jnp.isfinite(lo_v) & jnp.isfinite(hi_v) & (hi_v > lo_v)
  return lo_v, hi_v, ok

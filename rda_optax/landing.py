"""Did the updates a transform returned reach the parameters unchanged?

:func:`rda_optax.rda`, :func:`rda_optax.rmda`, :func:`rda_optax.prox_sgd`,
:func:`rda_optax.variable_splitting` and :func:`rda_optax.asr` return
``w_new − w`` so that :func:`optax.apply_updates` lands exactly on their
proximal point (exact zeros). A transform chained after them that changes
the updates (``optax.chain(rda_optax.rmda(...), optax.clip(...))``,
``optax.scale``, ``optax.add_decayed_weights``, a learning-rate scale ...)
moves the weights elsewhere, and the zeros are lost. No transform can see
what is chained after it at ``init`` or within a step; what it can see is the
parameters of the next step. So each of these states carries a
:class:`LandingCheck`: the transform records a fingerprint of where its
update lands (``w + u``, computed as :func:`optax.apply_updates` does), and
the next step compares the parameters it receives with it.

The fingerprint is a wrapping ``uint32`` sum of hashed bit patterns of at most
:data:`SAMPLE` entries of each leaf (strided over the leaf): exact (integer
sums do not depend on the reduction order, so the same bits always give the
same fingerprint), and cheap (a few hundred entries per leaf, whatever the
model's size). A transform that changes the updates after ours changes the
bits of nearly every entry, so a sample sees it.

The parameters may change legitimately once: ``asr`` jumping to the sparse
point (``asr`` re-arms the checks of what it wraps), a user restoring or
editing the weights. Something chained after the transform changes them at
every step. A mismatch is therefore an alarm only when it repeats on two
consecutive steps; the step is recorded in the state, and
:func:`rda_optax.sparse_params` raises (with the fix) when it finds one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SAMPLE = 256
"""Entries of each leaf that enter the fingerprint (strided over the leaf)."""


class LandingCheck(NamedTuple):
  """Where the last update should have landed, and what the next step saw.

  Attributes:
    expected: fingerprint of the parameters the last update lands on
      (uint32).
    armed: whether ``expected`` is to be compared with the next parameters
      (False before the first update and after a restart from outside).
    streak: consecutive steps whose parameters differed from ``expected``
      (int32).
    alarm_step: the update count at which two consecutive steps had
      parameters the previous update did not produce (int32), −1 if none.
  """

  expected: jax.Array
  armed: jax.Array
  streak: jax.Array
  alarm_step: jax.Array


def init() -> LandingCheck:
  return LandingCheck(
      expected=jnp.zeros([], jnp.uint32),
      armed=jnp.zeros([], jnp.bool_),
      streak=jnp.zeros([], jnp.int32),
      alarm_step=jnp.full([], -1, jnp.int32),
  )


def _sample(x: Any) -> jax.Array:
  flat = jnp.ravel(jnp.asarray(x))
  if flat.size <= SAMPLE:
    return flat
  return flat[:: flat.size // SAMPLE][:SAMPLE]


_UINT = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}


def _bits(x: jax.Array) -> jax.Array:
  """Each entry's bit pattern as uint32 (−0.0 counted as +0.0)."""
  x = jnp.where(x == 0, jnp.zeros_like(x), x)
  size = jnp.dtype(x.dtype).itemsize
  if size == 8:  # Only with jax_enable_x64: fold the two halves.
    b = jax.lax.bitcast_convert_type(x, jnp.uint64)
    return (b ^ (b >> 32)).astype(jnp.uint32)
  return jax.lax.bitcast_convert_type(x, _UINT[size]).astype(jnp.uint32)


def fingerprint(tree: Any) -> jax.Array:
  """A uint32 fingerprint of sampled entries of every leaf of ``tree``.

  Example:
    >>> import jax.numpy as jnp
    >>> from rda_optax import landing
    >>> w = {'w': jnp.array([0.5, -0.0, 2.0])}
    >>> bool(landing.fingerprint(w) == landing.fingerprint({'w': w['w'] + 0}))
    True
    >>> bool(landing.fingerprint(w) == landing.fingerprint({'w': w['w'] * 1.5}))
    False
  """
  total = jnp.zeros([], jnp.uint32)
  for i, x in enumerate(jax.tree.leaves(tree)):
    h = _bits(_sample(x)) * np.uint32(0x9E3779B1)
    h = (h ^ (h >> 15)) * np.uint32(0x85EBCA6B)
    total = total + jnp.sum(h, dtype=jnp.uint32) * np.uint32(2 * i + 1)
  return total


def landed_fingerprint(params: Any, updates: Any) -> jax.Array:
  """:func:`fingerprint` of ``optax.apply_updates(params, updates)``,
  computed on the sampled entries only."""

  def land(p, u):
    p = jnp.asarray(p)
    return (_sample(p) + _sample(u)).astype(p.dtype)

  return fingerprint(jax.tree.map(land, params, updates))


def as_difference(params: Any, new_params: Any) -> Any:
  """``new_params − params`` in the parameters' dtypes: updates that land on
  the same bits however they are applied.

  Updates that are a product (``−η·g``) may be fused with the addition of
  :func:`optax.apply_updates` into one multiply-add when both are compiled
  together, and land one rounding away from where they land otherwise; a
  difference cannot be fused so.
  """
  return jax.tree.map(
      lambda w, p: (w - jnp.asarray(p)).astype(jnp.asarray(p).dtype),
      new_params,
      params,
  )


def verify(check: LandingCheck, params: Any, count: Any) -> LandingCheck:
  """Compares ``params`` with where the last update landed (at ``count``)."""
  differs = check.armed & (fingerprint(params) != check.expected)
  streak = jnp.where(differs, check.streak + 1, 0).astype(jnp.int32)
  alarm = (streak >= 2) & (check.alarm_step < 0)
  return check._replace(
      streak=streak,
      alarm_step=jnp.where(alarm, count, check.alarm_step).astype(jnp.int32),
  )


def record(check: LandingCheck, params: Any, updates: Any) -> LandingCheck:
  """Arms ``check`` with where ``params + updates`` lands."""
  return check._replace(
      expected=landed_fingerprint(params, updates),
      armed=jnp.ones([], jnp.bool_),
  )


def _is_check(x: Any) -> bool:
  return isinstance(x, LandingCheck)


def disarm(state: Any) -> Any:
  """``state`` with every :class:`LandingCheck` in it disarmed (a wrapper that
  changes its inner transform's updates or parameters, as :func:`asr` does,
  checks its own output instead)."""
  return jax.tree.map(
      lambda x: x._replace(armed=jnp.zeros_like(x.armed))
      if _is_check(x)
      else x,
      state,
      is_leaf=_is_check,
  )


def contains_checks(state: Any) -> bool:
  return any(_is_check(x) for x in jax.tree.leaves(state, is_leaf=_is_check))


def alarms(state: Any) -> list[tuple[str, Any]]:
  """``(path, alarm_step)`` of every :class:`LandingCheck` in ``state``."""
  flat = jax.tree_util.tree_flatten_with_path(state, is_leaf=_is_check)[0]
  return [
      (jax.tree_util.keystr(path), x.alarm_step)
      for path, x in flat
      if _is_check(x)
  ]

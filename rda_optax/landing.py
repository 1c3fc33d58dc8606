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
:data:`SAMPLE` entries (strided) of two leaves, the smallest kernel and the
smallest other leaf (:func:`watched`): exact (integer sums do not depend on
the reduction order, so the same bits always give the same fingerprint) and
cheap: whatever the model's size, a few hundred entries, and no copy of the
large leaves when a train step donates them (measured on the ResNet-18-sized
tree of ``benchmarks/optimizer_step``: the same bytes accessed per step,
a few more small fusions). A transform that changes the updates after ours
(a scale, a clip, weight decay) changes the bits of nearly every entry of
every leaf it acts on; one that acts on other leaves only is not seen.

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


def watched(leaves: list[Any]) -> list[int]:
  """The leaves the fingerprint reads: the smallest kernel (``ndim > 1``)
  and the smallest other leaf (a bias), chosen from the shapes alone.

  Reading a leaf that the train step overwrites in place (donated
  parameters) makes XLA keep a copy of it, and a sample of a leaf whose
  update is fused into its application makes XLA write that update out:
  small leaves make both negligible. A transform chained after ours changes
  the updates of every leaf (a scale, a clip, weight decay on the kernels),
  so two leaves see it.
  """
  sizes = [(int(np.prod(jnp.shape(x))), i) for i, x in enumerate(leaves)]
  kernels = [s for s in sizes if jnp.ndim(leaves[s[1]]) > 1]
  others = [s for s in sizes if jnp.ndim(leaves[s[1]]) <= 1]
  return sorted(min(group)[1] for group in (kernels, others) if group)


def fingerprint(tree: Any) -> jax.Array:
  """A uint32 fingerprint of sampled entries of the :func:`watched` leaves
  of ``tree``.

  Example:
    >>> import jax.numpy as jnp
    >>> from rda_optax import landing
    >>> w = {'w': jnp.array([0.5, -0.0, 2.0])}
    >>> bool(landing.fingerprint(w) == landing.fingerprint({'w': w['w'] + 0}))
    True
    >>> bool(landing.fingerprint(w) == landing.fingerprint({'w': w['w'] * 1.5}))
    False
  """
  leaves = jax.tree.leaves(tree)
  chosen = watched(leaves)
  samples = [_sample(x) if i in chosen else None for i, x in enumerate(leaves)]
  return fingerprint_of_samples(samples, chosen)


def fingerprint_of_samples(samples: list[Any], chosen: list[int]) -> jax.Array:
  total = jnp.zeros([], jnp.uint32)
  for i in chosen:
    h = _bits(jnp.asarray(samples[i])) * np.uint32(0x9E3779B1)
    h = (h ^ (h >> 15)) * np.uint32(0x85EBCA6B)
    total = total + jnp.sum(h, dtype=jnp.uint32) * np.uint32(2 * i + 1)
  return total


def landed_fingerprint(params: Any, updates: Any) -> jax.Array:
  """:func:`fingerprint` of ``optax.apply_updates(params, updates)``,
  computed on the sampled entries only."""
  leaves, treedef = jax.tree.flatten(params)
  ups = treedef.flatten_up_to(updates)
  landed = list(leaves)
  for i in watched(leaves):
    p = jnp.asarray(leaves[i])
    landed[i] = (_sample(p) + _sample(ups[i])).astype(p.dtype)
  return fingerprint_of_samples(landed, watched(leaves))


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

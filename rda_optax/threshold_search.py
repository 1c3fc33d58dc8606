"""The search of :func:`rda_optax.kth_smallest` in one group of arrays:
the counting passes (a ``while`` loop, pivots from the warm start, from a
strided sample or inside the last bracket) and the last step among the rows
that hold the answer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rda_optax.threshold_keys import _between
from rda_optax.threshold_keys import _finite_ends
from rda_optax.threshold_keys import _flush
from rda_optax.threshold_keys import _key_dtype
from rda_optax.threshold_keys import _loop_pivot_values
from rda_optax.threshold_keys import _offsets
from rda_optax.threshold_keys import _to_key
from rda_optax.threshold_keys import _value_keys
from rda_optax.threshold_keys import _zero_keys
from rda_optax.threshold_rows import _budgets
from rda_optax.threshold_rows import _candidates
from rda_optax.threshold_rows import _each
from rda_optax.threshold_rows import _fits
from rda_optax.threshold_rows import _member_rows
from rda_optax.threshold_rows import _parts
from rda_optax.threshold_rows import _row_counts
from rda_optax.threshold_rows import _smallest_inside
from rda_optax.threshold_rows import _sorted_split
from rda_optax.threshold_rows import _tie_row
from rda_optax.threshold_rows import _total
from rda_optax.threshold_rows import _values
from rda_optax.threshold_warm import _warm_pivots
from rda_optax.threshold_warm import _warm_usable

SAMPLE = 8192
"""Entries in the strided sample of a cold start."""


def _sample(parts, n, zero):
  """About ``SAMPLE`` entries on a regular grid of positions, as sorted
  keys."""
  stride = max(1, n // SAMPLE)
  sample = []
  for p in parts:
    first = (-(p.offset + p.start)) % stride
    size = p.rows * p.width
    if first < size:
      sample.append(
          _values(
              p,
              _each(
                  p,
                  lambda f: jax.lax.slice(
                      f, (p.start + first,), (p.start + size,), (stride,)
                  ),
              ),
              zero,
          )
      )
  return jnp.sort(_to_key(_flush(jnp.concatenate(sample))))


def _sample_pivots(parts, n, k, count, zero):
  """``count`` pivots at ranks of a strided sample a few standard
  deviations around ``k``'s quantile (evenly in the middle, then
  geometrically out to 8 deviations)."""
  sample = _sample(parts, n, zero)
  m = sample.size
  q = k.astype(jnp.float32) / n * m
  sd = jnp.sqrt(jnp.maximum(q * (1 - q / m), 1.0))
  ranks = jnp.clip(jnp.round(q + sd * _offsets(count, 0.5, 8.0)), 1, m)
  return sample[ranks.astype(jnp.int32) - 1]


def _refine_pivots(lo, hi, c_lo, c_hi, k, dtype, ut, count, gather):
  """``count`` pivots inside ``(lo, hi]``: the middle of its key range (at
  least a twofold shrink whatever the data: the bound on the passes); the
  key below ``hi`` (the answer may be ``hi`` itself, a value many entries
  hold); the rest aimed at the answer by linear interpolation of the
  counts, the nearest two ``gather / 4`` entries either side, the others
  geometrically further out (to a quarter of the bracket); two of them
  isolate zero (the most common tie) when it is in the bracket."""
  lo_v, hi_v, ok = _finite_ends(lo, hi, dtype)
  pop = (c_hi - c_lo).astype(jnp.float32)
  aim = lo_v + (hi_v - lo_v) * ((k - c_lo).astype(jnp.float32) - 0.5) / pop
  per_entry = (hi_v - lo_v) / pop
  n_aim = count - 2
  outer = jnp.maximum(pop / 4, gather)
  half = n_aim // 2
  near = 0.25 * gather
  if half > 1:
    ratio = (outer / near) ** (1 / (half - 1))
    steps = near * ratio ** jnp.arange(half, dtype=jnp.float32)
  else:
    steps = jnp.full((1,), near)
  offsets = jnp.concatenate([-steps[::-1], steps])
  aimed = _value_keys(aim + per_entry * offsets, dtype, ut)
  # A bracket with an infinite end (outside all the data, or inf itself):
  # steps of 2^j times the finite end's magnitude, away from it.
  up = jnp.isfinite(lo_v)
  base = jnp.where(up, lo_v, hi_v)
  base = jnp.where(jnp.isfinite(base), base, 0.0)
  scale = jnp.abs(base) + 1.0
  gallop = base + jnp.where(up, scale, -scale) * (
      4.0 ** jnp.arange(n_aim, dtype=jnp.float32) - 0.5
  )
  aimed = jnp.where(ok, aimed, _value_keys(gallop, dtype, ut))
  z_lo, z_hi = _zero_keys(dtype, ut)
  has_zero = (lo < z_hi) & (z_hi <= hi)
  aimed = aimed.at[:2].set(
      jnp.where(has_zero, jnp.stack([z_lo, z_hi]), aimed[:2])
  )
  fixed = jnp.stack([lo + (hi - lo) // 2, hi - 1]).astype(ut)
  return jnp.concatenate([aimed, fixed])


# ---------------------------------------------------------------------------
# The search.


def _search(
    xs,
    k,
    state,
    g,
    *,
    dtype,
    compute,
    zero,
    magnitude,
    rows,
    pivots,
    gather,
    sort_below,
):
  """``(key, position, passes, density)`` of the ``k``-th smallest
  (``1 <= k <= n``) of one group of arrays. ``density``: entries per unit
  value in the last bracket (0 when unknown or the answer was a tie)."""
  ut = _key_dtype(dtype)
  parts, n = _parts(xs, rows, magnitude, compute)
  umax = jnp.asarray(jnp.iinfo(ut).max, ut)
  if n <= sort_below:
    key, pos = _sorted_split(parts, n, k, zero)
    return key, pos, jnp.int32(0), jnp.float32(0)
  inf_key = _to_key(jnp.asarray(jnp.inf, dtype))
  # A warm start: the first pass's pivots around the predicted threshold;
  # else (a cold start) from a sample, which a warm start never reads.
  warm0 = jnp.bool_(False) if state is None else _warm_usable(state, g, k, n)
  if state is None:
    warm_first = lambda: jnp.zeros((pivots,), ut)
  else:
    warm_first = lambda: _warm_pivots(state, g, k, dtype, ut, pivots, gather)

  budgets = _budgets(parts, gather)
  no_rows = jnp.full((gather,), jnp.iinfo(jnp.int32).max, jnp.int32)

  def gatherable(rowmem):
    # The rows holding the bracket's entries, if each part's share is
    # within its budget.
    member = _member_rows(rowmem, gather)
    return _fits(parts, budgets, member), member

  def pivots_for(lo, hi, c_lo, c_hi, passes):
    # 0: the warm first pass; 1: the sample's pivots (a cold first pass, or
    # after a warm first pass that missed: an end of the bracket is an end
    # of the key range, or the bracket still holds a sixteenth of the
    # entries; clipped to the bracket); 2: refinement.
    missed = (lo == 0) | (hi == umax) | (c_hi - c_lo > n // 16)
    which = jnp.where(
        passes == 0,
        jnp.where(warm0, 0, 1),
        jnp.where(warm0 & (passes == 1) & missed, 1, 2),
    )
    return jax.lax.switch(
        which,
        [
            lambda: warm_first(),
            lambda: _sample_pivots(parts, n, k, pivots, zero).astype(ut),
            lambda: _refine_pivots(
                lo, hi, c_lo, c_hi, k, dtype, ut, pivots, gather
            ),
        ],
    )

  def body(carry):
    lo, hi, c_lo, c_hi, rc_lo, rc_hi, passes, _, _ = carry
    inner_keys = pivots_for(lo, hi, c_lo, c_hi, passes)
    # Inside the bracket, and never between +inf's key and the top (those
    # floats are NaNs): the ends' counts are known, only these are counted.
    inner_keys = jnp.clip(inner_keys, lo + 1, hi - 1)
    inner_keys = jnp.where(inner_keys > inf_key, inf_key, inner_keys)
    inner_keys = jnp.sort(jnp.clip(inner_keys, lo, hi))
    vals = _loop_pivot_values(inner_keys, dtype)
    one = jnp.where(passes >= 0, 1, 0)
    per_part = [_row_counts(p, vals, one) for p in parts]
    # Each pivot's row counts over all parts, then their totals.
    rc = [jnp.concatenate([r[j] for r in per_part]) for j in range(pivots)]
    totals = jnp.stack(_total(rc))
    # The bracket: among lo, the pivots and hi, the first counting k or
    # more (hi does; lo does not) and the one before.
    keys = jnp.concatenate([lo[None], inner_keys, hi[None]])
    counts = jnp.concatenate([c_lo[None], totals, c_hi[None]])
    j_hi = jnp.argmax(counts >= k).astype(jnp.int32)
    j_lo = j_hi - 1

    def pick(j):
      out = jnp.where(j == 0, rc_lo, 0) + jnp.where(j == pivots + 1, rc_hi, 0)
      for i, r in enumerate(rc):
        out = out + jnp.where(j == i + 1, r, 0)
      return out

    rc_lo, rc_hi = pick(j_lo), pick(j_hi)
    lo, hi = keys[j_lo], keys[j_hi]
    c_lo, c_hi = counts[j_lo], counts[j_hi]
    ready, member = jax.lax.cond(
        c_hi - c_lo <= gather,
        gatherable,
        lambda _: (jnp.bool_(False), no_rows),
        rc_hi - rc_lo,
    )
    return lo, hi, c_lo, c_hi, rc_lo, rc_hi, passes + 1, ready, member

  def narrowing(carry):
    lo, hi, _, _, _, _, passes, ready, _ = carry
    return (passes == 0) | (~ready & ~_single(lo, hi, umax, inf_key))

  carry = (
      jnp.asarray(0, ut),
      umax,
      jnp.int32(0),
      jnp.int32(n),
      jnp.zeros((sum(p.rows for p in parts),), jnp.int32),
      jnp.asarray(
          np.repeat([p.width for p in parts], [p.rows for p in parts]),
          jnp.int32,
      ),
      jnp.int32(0),
      jnp.bool_(False),
      no_rows,
  )
  lo, hi, c_lo, c_hi, rc_lo, rc_hi, passes, ready, member = jax.lax.while_loop(
      narrowing, body, carry
  )
  # The entries to sort: those of the rows holding the bracket's entries
  # (ready) or, a single value with more entries, those of the row holding
  # the one wanted (found by a prefix sum of the rows' counts).
  need = k - c_lo
  tie_row, tie_rank = jax.lax.cond(
      ready,
      lambda rm: (jnp.int32(jnp.iinfo(jnp.int32).max), jnp.int32(1)),
      lambda rm: _tie_row(rm, need),
      rc_hi - rc_lo,
  )
  member = jnp.where(ready, member, no_rows)
  vals, pos, valid = _candidates(parts, budgets, member, tie_row, zero)
  x = _flush(vals)
  inside = valid & _between(x, lo, hi)
  cap = max(gather, max(p.width for p in parts))
  i = jnp.clip(jnp.where(ready, need, tie_rank) - 1, 0, cap - 1)
  key, where = _smallest_inside(_to_key(x), pos, inside, lo, hi, umax, cap, i)
  lo_v, hi_v, finite = _finite_ends(lo, hi, dtype)
  single = _single(lo, hi, umax, inf_key)
  density = jnp.where(
      finite & ~single & (c_hi - c_lo >= 4),
      (c_hi - c_lo).astype(jnp.float32) / (hi_v - lo_v),
      0.0,
  )
  return key, where, passes, density


def _single(lo, hi, umax, inf_key):
  """Whether the bracket holds one value: one key step, or the NaNs (no
  pivot goes between +inf's key and the top)."""
  return (hi - lo <= 1) | ((hi == umax) & (lo >= inf_key))

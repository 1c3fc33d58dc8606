"""The arrays of :func:`rda_optax.kth_smallest` as rows: the counting pass
(per row of :data:`rda_optax.threshold.ROWS` entries, every pivot in one
loop), and the search's last step: the rows holding the bracket's entries,
their entries gathered, and the answer among them (by key, then position).

No array is concatenated, sorted or copied: the last step reads a few
thousand rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rda_optax.threshold_keys import _flush
from rda_optax.threshold_keys import _to_key

_CHUNK = 16
"""Candidates per chunk in the last step's compaction."""


def _add(a, b):
  return tuple(x + y for x, y in zip(a, b))


def _total(arrays: Sequence[jax.Array]) -> list[jax.Array]:
  """Sums of int32 arrays of one shape, as one variadic reduction (XLA:CPU
  turns a reduction of one operand into a slower windowed one)."""
  arrays = list(arrays)
  single = len(arrays) == 1
  if single:
    arrays.append(arrays[0])
  dims = tuple(range(arrays[0].ndim))
  out = jax.lax.reduce(
      tuple(arrays), tuple(jnp.int32(0) for _ in arrays), _add, dims
  )
  return list(out[:1] if single else out)


# ---------------------------------------------------------------------------
# The arrays as rows.


class _Part(NamedTuple):
  flat: Any  # The whole array, flattened (a tuple of them: computed).
  start: int  # First entry of the part in ``flat``.
  rows: int
  width: int
  offset: int  # Position of ``flat[0]``.
  magnitude: bool  # Rank |x| rather than x.
  compute: Any = None  # (operands, zero) -> values, elementwise; or None.


def _each(part: _Part, fn: Any) -> Any:
  """``fn`` of the part's array, or of each of its operands."""
  if part.compute is None:
    return fn(part.flat)
  return tuple(fn(x) for x in part.flat)


def _values(part: _Part, x: Any, zero: Any) -> jax.Array:
  """The ranked values of (a view of) the part: its operands computed
  (``zero``, a uint32 0 that the compiler cannot know), then ``|x|``."""
  if part.compute is not None:
    x = part.compute(x, zero)
  return jnp.abs(x) if part.magnitude else x


def _row_width(n: int, width: int) -> int:
  """A divisor of ``n`` near ``width`` (no tail part), or ``width`` (then a
  tail part of one shorter row)."""
  if n <= width:
    return n
  for d in sorted(
      range(3 * width // 4, 3 * width // 2 + 1), key=lambda d: abs(d - width)
  ):
    if n % d == 0:
      return d
  return width


def _parts(
    xs: Sequence[Any],
    width: int,
    magnitude: bool = False,
    compute: Any = None,
) -> tuple[list[_Part], int]:
  """Each array (each tuple of operands, with ``compute``) as rows (a whole
  array, or its head and a one-row tail)."""
  parts, offset = [], 0
  for x in xs:
    if compute is None:
      flat = x.reshape(-1)
      n = flat.size
    else:
      flat = tuple(jnp.ravel(o) for o in x)
      n = flat[0].size
    w = _row_width(n, width)
    rows = n // w if n else 0
    if rows:
      parts.append(_Part(flat, 0, rows, w, offset, magnitude, compute))
    if n - rows * w:
      parts.append(
          _Part(flat, rows * w, 1, n - rows * w, offset, magnitude, compute)
      )
    offset += n
  return parts, offset


def _view(part: _Part) -> Any:
  size = part.rows * part.width

  def rows(flat):
    if part.start or size != flat.size:
      flat = jax.lax.slice(flat, (part.start,), (part.start + size,))
    return flat.reshape(part.rows, part.width)

  return _each(part, rows)


def _row_counts(
    part: _Part, pivots: jax.Array, one: jax.Array
) -> tuple[jax.Array, ...]:
  """For each pivot, the entries at most it in each row: one pass over the
  part, every count in one loop (a variadic reduction).

  (``one``, 1 computed in the loop, multiplies the data before ``abs``:
  inside a loop ``abs(x)`` is an invariant that XLA would hoist, writing out
  a copy of every array.)"""
  x = _view(part)
  if part.compute is not None:
    # (A loop-variant zero: the computation is not hoisted out of the loop.)
    x = part.compute(x, (1 - one).astype(jnp.uint32))
  if part.magnitude:
    x = jnp.abs(x * one.astype(x.dtype))
  ops = tuple(
      (x <= pivots[j]).astype(jnp.int32) for j in range(pivots.shape[0])
  )
  return jax.lax.reduce(ops, tuple(jnp.int32(0) for _ in ops), _add, (1,))


def _sorted_split(parts, n, k, zero):
  """Every entry sorted by (value, position): for small inputs."""
  keys = jnp.concatenate(
      [_to_key(_flush(_values(p, _view(p), zero))).reshape(-1) for p in parts]
  )
  pos = jnp.concatenate(
      [
          p.offset + p.start + jnp.arange(p.rows * p.width, dtype=jnp.int32)
          for p in parts
      ]
  )
  keys, pos = jax.lax.sort((keys, pos), num_keys=2)
  i = jnp.clip(k - 1, 0, n - 1)
  return keys[i], pos[i]


def _nonzero(mask: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
  """The first ``size`` indices of ``True`` in a 1-D mask, ascending (then
  arbitrary), and how many there are. (``lax.top_k`` of the negated
  indices: quicker to compile and to run on a CPU than ``jnp.nonzero``.)"""
  index = jnp.arange(mask.size, dtype=jnp.float32)  # Exact below 2**24.
  take = min(size, mask.size)
  _, idx = jax.lax.top_k(jnp.where(mask, -index, -jnp.inf), take)
  idx = idx.astype(jnp.int32)
  if take < size:
    idx = jnp.concatenate([idx, jnp.zeros((size - take,), jnp.int32)])
  return idx, _total([mask.astype(jnp.int32)])[0]


def _member_rows(rowmem: jax.Array, size: int, block: int = 16) -> jax.Array:
  """The rows (ascending, at most ``size``; then int32 max) with a count
  above 0: the blocks of ``block`` rows holding them first (at most
  ``size``: a top-k over the blocks), then their rows (a top-k over
  ``size * block`` rows, not over all of them)."""
  nb = -(-rowmem.size // block)
  blocks = jnp.pad(rowmem, (0, nb * block - rowmem.size)).reshape(nb, block)
  per_block = _total_rows(blocks)
  b_idx, b_count = _nonzero(per_block > 0, min(nb, size))
  b_ok = jnp.arange(b_idx.size) < b_count
  sub = jnp.where(b_ok[:, None], blocks[b_idx], 0)
  r_idx, r_count = _nonzero(sub.reshape(-1) > 0, size)
  rows = b_idx[r_idx // block] * block + r_idx % block
  return jnp.where(jnp.arange(size) < r_count, rows, jnp.iinfo(jnp.int32).max)


def _total_rows(blocks: jax.Array) -> jax.Array:
  """Row sums of a 2-D int32 array (a variadic reduction: see _total)."""
  return jax.lax.reduce(
      (blocks, blocks), (jnp.int32(0), jnp.int32(0)), _add, (1,)
  )[0]


def _tie_row(rowmem, need):
  """The row holding the ``need``-th entry of the bracket, and the entry's
  rank among the row's (a prefix sum over the rows)."""
  cum = jnp.cumsum(rowmem, dtype=jnp.int32)
  row = jnp.sum(cum < need, dtype=jnp.int32)
  row = jnp.minimum(row, rowmem.size - 1)
  return row, need - (cum[row] - rowmem[row])


def _budgets(parts: Sequence[_Part], gather: int) -> list[int]:
  """Rows read per part at the end: ``gather`` for one array (a flat
  buffer: its rows, and a one-row tail), else a share of ``gather`` by
  rows, plus 8 (at most the part's rows): the candidates' top-k is the
  tail's largest cost (a part over its budget costs a pass)."""
  if len({id(p.flat) for p in parts}) == 1:
    return [min(p.rows, gather) for p in parts]
  total = sum(p.rows for p in parts)
  return [min(p.rows, 8 + -(-gather * p.rows // total)) for p in parts]


def _row_starts(parts: Sequence[_Part]) -> np.ndarray:
  return np.cumsum([0] + [p.rows for p in parts])


def _shares(parts, rows):
  """Where each part's rows start in ``rows`` (ascending, int32 max past
  the last), and how many there are."""
  starts = jnp.asarray(_row_starts(parts), jnp.int32)
  at = jnp.sum(rows[None, :] < starts[:, None], axis=1, dtype=jnp.int32)
  return at[:-1], at[1:] - at[:-1]


def _fits(parts, budgets, rows):
  """Whether each part's share of ``rows`` is within its budget."""
  _, count = _shares(parts, rows)
  return jnp.all(count <= jnp.asarray(budgets, jnp.int32))


def _candidates(parts, budgets, rows, tie_row, zero):
  """Entries of the ``rows`` (each part reads its share, up to its budget)
  and of ``tie_row`` (each part one row): ``(values, positions, valid)``,
  flat."""
  starts = _row_starts(parts)
  at, _ = _shares(parts, rows)
  padded = jnp.concatenate(
      [rows, jnp.full((max(budgets),), jnp.iinfo(jnp.int32).max, jnp.int32)]
  )
  vals, pos, valid = [], [], []
  for i, (p, budget) in enumerate(zip(parts, budgets)):
    first = int(starts[i])
    mine = jax.lax.dynamic_slice(padded, (at[i],), (budget,)) - first
    local = jnp.concatenate([mine, (tie_row - first)[None]])
    ok = (local >= 0) & (local < p.rows)
    col = jnp.arange(p.width, dtype=jnp.int32)
    el = p.start + jnp.clip(local, 0, p.rows - 1)[:, None] * p.width + col
    taken = _each(p, lambda f: jnp.take(f, el))
    vals.append(_values(p, taken, zero).reshape(-1))
    pos.append((p.offset + el).reshape(-1))
    valid.append(jnp.broadcast_to(ok[:, None], el.shape).reshape(-1))
  return tuple(jnp.concatenate(a) for a in (vals, pos, valid))


def _smallest_inside(keys, pos, inside, lo, hi, umax, cap, i):
  """The ``i``-th (from 0) smallest of the ``inside`` candidates by (key,
  position), and its position; the candidates come in the order of their
  positions. A bracket spanning fewer than ``2**24`` keys (the usual case:
  a narrow range of floats) takes one float32 ``lax.top_k`` of the keys
  relative to the bracket (exact below ``2**24``; the lower index first
  among equal values); else the candidates inside are compacted (a top-k of
  their indices) and sorted by (key, position)."""
  ut = keys.dtype
  size = min(cap, keys.size)

  def narrow(_):
    # The chunks of CHUNK candidates holding some inside (at most cap, in
    # order), then one top-k over their entries: two small top-k's rather
    # than one over every candidate.
    m = -(-keys.size // _CHUNK) * _CHUNK
    pad = lambda a, v: jnp.pad(a, (0, m - a.size), constant_values=v)
    ins = pad(inside, False).reshape(-1, _CHUNK)
    c_idx, c_count = _nonzero(jnp.any(ins, axis=1), min(ins.shape[0], cap))
    ok = (jnp.arange(c_idx.size) < c_count)[:, None] & ins[c_idx]
    rel = pad(keys, 0).reshape(-1, _CHUNK)[c_idx] - (lo + jnp.asarray(1, ut))
    order = jnp.where(ok, -rel.astype(jnp.float32), -jnp.inf).reshape(-1)
    _, idx = jax.lax.top_k(order, min(size, order.size))
    e = idx[jnp.minimum(i, idx.size - 1)]
    j = c_idx[e // _CHUNK] * _CHUNK + e % _CHUNK
    return keys[j], pos[j]

  def wide(_):
    sel, count = _nonzero(inside, cap)
    ok = jnp.arange(cap) < count
    k2 = jnp.where(ok, keys[sel], umax)
    where = jnp.where(ok, pos[sel], jnp.iinfo(jnp.int32).max)
    k2, where = jax.lax.sort((k2, where), num_keys=2)
    return k2[i], where[i]

  if jnp.iinfo(ut).bits <= 24:  # Every key difference is exact.
    return narrow(None)
  return jax.lax.cond(
      hi - lo <= jnp.asarray(2**24, ut), narrow, wide, operand=None
  )

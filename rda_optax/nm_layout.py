"""The N:M position code of the sparse file format (``code="nm"``).

For a leaf with two or more dimensions, the groups of ``M`` ∈ {4, 8, 16}
consecutive entries along axis ``-2`` (the input axis of Flax's dense and
conv kernels; the last group of an axis that is not a multiple of ``M`` is
shorter, as if zero-padded) are stored as exactly ``N`` values each plus,
per group, the rank of its set of ``N`` positions among the ``C(M, N)``
possible ones, in ``⌈log₂ C(M, N)⌉`` bits, packed (see
:mod:`rda_optax.sparse_io`). This module holds the layout: the rank tables,
the smallest layout of an array, and the encoding and decoding of its
bytes; :mod:`rda_optax.sparse_codes` chooses it where it is the smallest.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

_NM_GROUP_SIZES = (4, 8, 16)


@functools.lru_cache(maxsize=None)
def _nm_tables(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
  """``(subsets, rank)``: the ``C(m, n)`` position sets in lexicographic
  order (``(C, n)`` ints) and, for every ``m``-bit mask, its rank among them
  (-1 for masks of another size)."""
  subsets = np.array(
      list(itertools.combinations(range(m), n)), np.int64
  ).reshape(-1, n)
  rank = np.full(1 << m, -1, np.int64)
  masks = (np.int64(1) << subsets).sum(axis=1) if n else np.zeros(1, np.int64)
  rank[masks] = np.arange(len(subsets))
  return subsets, rank


def _nm_bits(m: int, n: int) -> int:
  return math.ceil(math.log2(math.comb(m, n))) if math.comb(m, n) > 1 else 0


def _grouped(a: np.ndarray, axis: int, m: int, tail: int) -> np.ndarray:
  """Moves ``axis`` of ``a`` last but ``tail`` axes, pads it to a multiple
  of ``m`` with zeros and splits it: shape ``(G, m) + a.shape[-tail:]``."""
  moved = np.moveaxis(a, axis, a.ndim - 1 - tail)
  length = moved.shape[a.ndim - 1 - tail]
  pad = (-length) % m
  widths = [(0, 0)] * a.ndim
  widths[a.ndim - 1 - tail] = (0, pad)
  padded = np.pad(moved, widths)
  return padded.reshape((-1, m) + (a.shape[a.ndim - tail :] if tail else ()))


def _nm_plan(x: np.ndarray, nonzero: np.ndarray) -> tuple[int, int, int] | None:
  """``(bytes, n, m)`` of the smallest N:M layout of ``x``, or None."""
  if x.ndim < 2 or x.size == 0:
    return None
  nz = nonzero.reshape(x.shape)
  best = None
  for m in _NM_GROUP_SIZES:
    groups = _grouped(nz, x.ndim - 2, m, 0)
    n = int(groups.sum(axis=1).max())
    if n == m:
      continue
    size = len(groups) * n * x.dtype.itemsize + -(
        -len(groups) * _nm_bits(m, n) // 8
    )
    if best is None or size < best[0]:
      best = (size, n, m)
  return best


def _encode_nm(x: np.ndarray, nonzero: np.ndarray, n: int, m: int):
  """The values (group-major, increasing position) and packed ranks."""
  itemsize = x.dtype.itemsize
  raw = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
  raw = raw.reshape(x.shape + (itemsize,))
  values = _grouped(raw, x.ndim - 2, m, 1)  # (G, m, itemsize)
  nz = _grouped(nonzero.reshape(x.shape), x.ndim - 2, m, 0)  # (G, m)
  # Groups with fewer than n nonzeros also store their first zeros.
  missing = n - nz.sum(axis=1, keepdims=True)
  chosen = nz | (~nz & (np.cumsum(~nz, axis=1) <= missing))
  masks = (chosen.astype(np.int64) << np.arange(m, dtype=np.int64)).sum(axis=1)
  ranks = _nm_tables(m, n)[1][masks]
  bits = _nm_bits(m, n)
  shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
  patterns = np.packbits(((ranks[:, None] >> shifts) & 1).astype(np.uint8))
  return {'values': values[chosen].reshape(-1), 'patterns': patterns}


def _decode_nm(
    members, i: int, shape: tuple[int, ...], dtype: np.dtype, n: int, m: int
) -> np.ndarray:
  if len(shape) < 2 or m not in _NM_GROUP_SIZES or not 0 <= n < m:
    raise ValueError(f'N:M layout {n}:{m} for shape {shape}')
  itemsize = dtype.itemsize
  lengths = list(shape)
  axis = len(shape) - 2
  lengths[axis] += (-lengths[axis]) % m
  count = math.prod(lengths) // m
  values = members[f'{i}.values']
  patterns = members[f'{i}.patterns']
  bits = _nm_bits(m, n)
  if values.dtype != np.uint8 or values.size != count * n * itemsize:
    raise ValueError('values have the wrong byte length')
  if patterns.dtype != np.uint8 or patterns.size != -(-count * bits // 8):
    raise ValueError('patterns have the wrong length')
  bits_of = np.unpackbits(patterns, count=count * bits).reshape(count, bits)
  shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
  ranks = (bits_of.astype(np.int64) << shifts).sum(axis=1)
  subsets = _nm_tables(m, n)[0]
  if ranks.size and int(ranks.max()) >= len(subsets):
    raise ValueError('a group pattern is out of range')
  out = np.zeros((count, m, itemsize), np.uint8)
  out[np.arange(count)[:, None], subsets[ranks]] = values.reshape(
      count, n, itemsize
  )
  moved = list(shape)
  moved.append(moved.pop(axis))  # The group axis last, padded.
  moved[-1] = lengths[axis]
  out = out.reshape(moved + [itemsize])[..., : shape[axis], :]
  out = np.moveaxis(out, len(shape) - 1, axis)
  return np.ascontiguousarray(out).reshape(-1).view(dtype)

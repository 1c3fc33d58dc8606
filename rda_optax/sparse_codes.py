"""One array's position codes in the sparse file format: the choice of the
smallest, its encoding, and its decoding back, bit-identical and checked.

Each leaf is stored as its nonzero values plus whichever position code is
smallest: a bitmask, flat indices, the N:M layout
(:mod:`rda_optax.nm_layout`) or nothing (dense); see
:mod:`rda_optax.sparse_io`. Decoding checks the stored data against the
header entry (counts, order, the CRC-32 of the array) and raises
:class:`~rda_optax.sparse_format.SparseFormatError` on any disagreement.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, NamedTuple

import numpy as np

from rda_optax.nm_layout import _decode_nm
from rda_optax.nm_layout import _encode_nm
from rda_optax.nm_layout import _nm_plan
from rda_optax.sparse_format import SparseFormatError
from rda_optax.sparse_format import _dtype
from rda_optax.sparse_format import _path_str

CODES = ('bitmask', 'indices', 'dense', 'nm')


class _Encoded(NamedTuple):
  code: str  # 'bitmask' | 'indices' | 'dense' | 'nm'
  arrays: dict[str, np.ndarray]  # What the file stores for this leaf.
  nnz: int
  nm: tuple[int, int] | None = None  # (N, M) of the 'nm' code.


def _raw(x: np.ndarray) -> np.ndarray:
  """The array's bytes, one row per element (for bitwise comparisons)."""
  return (
      np.ascontiguousarray(x)
      .reshape(-1)
      .view(np.uint8)
      .reshape(x.size, x.dtype.itemsize)
  )


def encode(x: np.ndarray, codes: tuple[str, ...] = CODES) -> _Encoded:
  flat = np.ascontiguousarray(x).reshape(-1)
  # Bitwise nonzero: -0.0 and NaNs are values to keep, not zeros.
  nonzero = _raw(flat).any(axis=1) if flat.size else np.zeros(0, bool)
  nnz = int(nonzero.sum())
  values = flat[nonzero].view(np.uint8)
  itemsize = flat.dtype.itemsize
  index_dtype = np.uint16 if flat.size <= 2**16 else np.uint32
  sizes = {
      'bitmask': -(-flat.size // 8) + nnz * itemsize,
      'indices': nnz * (np.dtype(index_dtype).itemsize + itemsize),
      'dense': flat.size * itemsize,
  }
  plan = _nm_plan(x, nonzero) if 'nm' in codes else None
  if plan is not None:
    sizes['nm'] = plan[0]  # Last: an equal size keeps an older code.
  sizes = {c: b for c, b in sizes.items() if c in codes}
  code = min(sizes, key=lambda c: (sizes[c], c != 'dense'))
  if code == 'dense':
    return _Encoded(code, {'values': flat.view(np.uint8)}, nnz)
  if code == 'bitmask':
    return _Encoded(code, {'mask': np.packbits(nonzero), 'values': values}, nnz)
  if code == 'nm':
    _, n, m = plan
    return _Encoded(code, _encode_nm(x, nonzero, n, m), nnz, (n, m))
  return _Encoded(
      code,
      {
          'indices': np.flatnonzero(nonzero).astype(index_dtype),
          'values': values,
      },
      nnz,
  )


def _crc(x: np.ndarray) -> int:
  return zlib.crc32(np.ascontiguousarray(x).reshape(-1).view(np.uint8))


def _decode(
    path: str,
    i: int,
    meta: dict[str, Any],
    members: dict[str, np.ndarray],
) -> np.ndarray:
  """One leaf's array, from a header entry :func:`_check_leaf` accepted."""
  where = f'{path}: leaf {_path_str(meta["path"])}'
  dtype = _dtype(meta['dtype'])
  shape = tuple(meta['shape'])
  size = math.prod(shape)
  code = meta['code']
  values = members[f'{i}.values']
  if code != 'nm':
    values = values.view(dtype)  # (N:M values are raw bytes per group.)
  try:
    if code == 'nm':
      n, m = meta['nm']
      flat = _decode_nm(members, i, shape, dtype, n, m)
      nnz = int(_raw(flat).any(axis=1).sum()) if flat.size else 0
      if nnz != meta['nnz']:
        raise ValueError(f'{nnz} nonzeros, the header says {meta["nnz"]}')
    elif code == 'dense':
      flat = values
      nnz = int(_raw(flat).any(axis=1).sum()) if flat.size else 0
      if nnz != meta['nnz']:
        raise ValueError(f'{nnz} nonzeros, the header says {meta["nnz"]}')
    else:
      if values.size and not _raw(values).any(axis=1).all():
        raise ValueError('a stored value is zero')
      flat = np.zeros(size, dtype)
      if code == 'bitmask':
        packed = members[f'{i}.mask']
        bits = np.unpackbits(packed)
        if bits[size:].any():
          raise ValueError('mask bits past the last entry')
        mask = bits[:size].astype(bool)
        if int(mask.sum()) != values.size:
          raise ValueError('mask and values disagree')
        flat[mask] = values
      else:
        idx = members[f'{i}.indices']
        if idx.size and (
            int(idx[-1]) >= size or not (idx[1:] > idx[:-1]).all()
        ):
          raise ValueError('indices out of order or out of range')
        flat[idx] = values
    x = flat.reshape(shape)
  except (ValueError, MemoryError) as e:
    raise SparseFormatError(f'{where} is corrupted ({e}).') from e
  if _crc(x) != meta['crc32']:
    raise SparseFormatError(f'{where} is corrupted (checksum mismatch).')
  return x

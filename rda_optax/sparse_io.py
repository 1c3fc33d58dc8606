"""A compressed file format for sparse parameter trees.

:func:`save_sparse` writes any tree of arrays (Flax params, an optax state's
arrays, ...) as its nonzero values plus, per array, whichever position code is
smallest: a bitmask (one bit per entry), flat indices (``uint16`` or
``uint32``, for very sparse arrays), an N:M pattern code (kernels whose
groups of ``M`` consecutive weights along the input axis hold at most ``N``
nonzeros, see :func:`rda_optax.nm_constraint`) or nothing (dense arrays). The
container
is a plain NumPy ``.npz`` (a zip of ``.npy`` files, readable without this
library) with a JSON header. :func:`load_sparse` rebuilds the tree
**bit-identical**: dtypes (``bfloat16`` included), ``-0.0`` and NaN payloads
are kept.

Size: a float32 array at 95% sparsity takes ``1/32`` (bitmask) ``+ 0.05``
(values) of its dense size, about 1/12; at 99% flat indices take over
(``0.01 × (4 + 2 or 4)/4``), about 1/40 to 1/50. :func:`sparse_size` gives the
ratio without writing a file.

**N:M layout** (``code="nm"``). For a leaf with two or more dimensions, the
groups of ``M`` ∈ {4, 8, 16} consecutive entries along axis ``-2`` (the input
axis of Flax's dense and conv kernels; the last group of an axis that is not
a multiple of ``M`` is shorter, as if zero-padded) are stored as exactly
``N`` values each (``N`` = the most nonzeros any group holds; a group with
fewer stores zeros at its first zero positions) plus, per group, the rank of
its set of ``N`` positions among the ``C(M, N)`` possible ones, in
``⌈log₂ C(M, N)⌉`` bits, packed. At 2:4 that is 3 bits per group of 4: 0.75
bit per weight against the bitmask's 1 (and against the 2 bits per kept
value, also 1 bit per weight, of the sparse tensor cores' metadata); at 1:4,
0.5 bit. The layout is chosen only where it is the smallest.

**Versions.** A file is written at the lowest version that can hold it: 1
without N:M leaves (readable by older rda-optax), 2 with them. This module
reads both.

Errors are never silent: a truncated or corrupted file, a file of another
format version, or a file whose tree, shapes or dtypes differ from the
template given to :func:`load_sparse` raises :class:`SparseFormatError`
naming the file (and the leaf) and what is wrong. Each array carries a CRC-32
of its bytes and the header a CRC-32 of itself, both checked on load; the
whole header is checked against the stored data before anything is allocated
from it (so a damaged shape cannot ask for terabytes).

Example::

  >>> import jax.numpy as jnp, rda_optax, tempfile, os
  >>> params = {'dense': {'kernel': jnp.array([[0., 1.5], [0., 0.]]),
  ...                     'bias': jnp.zeros(2)}}
  >>> path = os.path.join(tempfile.mkdtemp(), 'model.npz')
  >>> rda_optax.save_sparse(path, params)
  >>> back = rda_optax.load_sparse(path, like=params)
  >>> back['dense']['kernel'].tolist()
  [[0.0, 1.5], [0.0, 0.0]]
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import math
import os
import tempfile
import zipfile
import zlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = 'rda-optax-sparse'
VERSION = 2  # The newest version written (files without N:M leaves: 1).
_READABLE = (1, 2)
_NM_VERSION = 2  # The first version with the N:M layout.
_HEADER = '__header__'
_HEADER_CRC = 'header_crc32'  # Of the header's other fields.
_CODES = ('bitmask', 'indices', 'dense', 'nm')
_NM_GROUP_SIZES = (4, 8, 16)


class SparseFormatError(ValueError):
  """A sparse file that cannot be read into the requested tree."""


class _Encoded(NamedTuple):
  code: str  # 'bitmask' | 'indices' | 'dense' | 'nm'
  arrays: dict[str, np.ndarray]  # What the file stores for this leaf.
  nnz: int
  nm: tuple[int, int] | None = None  # (N, M) of the 'nm' code.


def _path_entries(path) -> list[list[Any]]:
  """A key path as JSON: [['dict', key] | ['seq', i] | ['attr', name]]."""
  out = []
  for k in path:
    if isinstance(k, jax.tree_util.DictKey):
      key = k.key
      if not isinstance(key, (str, int)):
        raise TypeError(f'save_sparse: dict key {key!r} is not a str or int.')
      out.append(['dict', key])
    elif isinstance(k, jax.tree_util.SequenceKey):
      out.append(['seq', k.idx])
    elif isinstance(k, jax.tree_util.GetAttrKey):
      out.append(['attr', k.name])
    elif isinstance(k, jax.tree_util.FlattenedIndexKey):
      out.append(['seq', k.key])
    else:  # pragma: no cover - other key kinds of custom nodes
      out.append(['other', str(k)])
  return out


def _path_str(entries) -> str:
  return (
      ''.join(
          f'[{k!r}]'
          if kind == 'dict'
          else f'[{k}]'
          if kind == 'seq'
          else f'.{k}'
          for kind, k in entries
      )
      or '<root>'
  )


def _raw(x: np.ndarray) -> np.ndarray:
  """The array's bytes, one row per element (for bitwise comparisons)."""
  return (
      np.ascontiguousarray(x)
      .reshape(-1)
      .view(np.uint8)
      .reshape(x.size, x.dtype.itemsize)
  )


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


def _encode(x: np.ndarray, codes: tuple[str, ...] = _CODES) -> _Encoded:
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


def _dtype(name: str) -> np.dtype:
  return jnp.dtype(name)  # Knows bfloat16 and the other ml_dtypes.


def save_sparse(
    path: str | os.PathLike, tree: Any, *, compress: bool = False
) -> None:
  """Writes ``tree`` to ``path`` (an ``.npz`` file) in the sparse format.

  The file is written atomically (a temporary file in the same folder, then
  renamed): an interrupted save never leaves a half-written file at
  ``path``.

  Args:
    path: the file to write; ``.npz`` is the conventional suffix.
    tree: a pytree of arrays (JAX or NumPy, any dtype). Dict keys must be
      strings or integers.
    compress: also deflate the zip members (smaller bitmasks and integer
      values, slower; float values barely compress).
  """
  path = os.fspath(path)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
  header = {
      'format': FORMAT,
      'version': 1,
      'treedef': str(treedef),
      'leaves': [],
  }
  members: dict[str, np.ndarray] = {}
  for i, (key_path, leaf) in enumerate(leaves):
    x = np.asarray(jax.device_get(leaf))
    enc = _encode(x)
    meta = {
        'path': _path_entries(key_path),
        'shape': list(x.shape),
        'dtype': x.dtype.name,
        'code': enc.code,
        'nnz': enc.nnz,
        'crc32': _crc(x),
    }
    if enc.nm is not None:
      meta['nm'] = list(enc.nm)
      header['version'] = _NM_VERSION
    header['leaves'].append(meta)
    for name, arr in enc.arrays.items():
      members[f'{i}.{name}'] = arr
  header[_HEADER_CRC] = _header_crc(header)
  members[_HEADER] = np.frombuffer(json.dumps(header).encode(), np.uint8)
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(
      dir=folder, prefix='.' + os.path.basename(path), suffix='.tmp'
  )
  try:
    # mkstemp makes the file 0600; the file written is the user's, with the
    # mode any new file of theirs gets (0666 less the umask).
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, 'wb') as f:
      (np.savez_compressed if compress else np.savez)(f, **members)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _umask() -> int:
  mask = os.umask(0o022)  # (read by setting; restored at once)
  os.umask(mask)
  return mask


# ---------------------------------------------------------------------------
# Reading. Nothing a file says is used before it is checked: the members'
# sizes against their own npy headers, the header against its checksum, each
# leaf's shape, dtype, code and counts against the members that hold its
# data. Only then is anything allocated from it. A damaged or edited file is
# a SparseFormatError naming the file (and the leaf), never another exception
# or a tree that differs from the one saved.
# ---------------------------------------------------------------------------

# The members each position code stores (``<leaf index>.<name>.npy``).
_CODE_MEMBERS = {
    'dense': ('values',),
    'bitmask': ('mask', 'values'),
    'indices': ('indices', 'values'),
    'nm': ('patterns', 'values'),
}
# The npy dtypes members may have (little-endian, as save_sparse writes them).
_MEMBER_DTYPES = ('|u1', '<u2', '<u4')
_LEAF_FIELDS = frozenset(('path', 'shape', 'dtype', 'code', 'nnz', 'crc32'))
_HEADER_FIELDS = frozenset(('format', 'version', 'treedef', 'leaves'))
_PATH_KINDS = ('dict', 'seq', 'attr', 'other')


def _header_crc(header: dict[str, Any]) -> int:
  """CRC-32 of the header's canonical JSON, without its own checksum."""
  body = {k: v for k, v in header.items() if k != _HEADER_CRC}
  text = json.dumps(body, sort_keys=True, separators=(',', ':'))
  return zlib.crc32(text.encode())


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _read_members(data: bytes) -> dict[str, np.ndarray]:
  """The 1-D members of an npz, each checked against its npy header."""
  out: dict[str, np.ndarray] = {}
  with zipfile.ZipFile(io.BytesIO(data)) as zf:
    if f'{_HEADER}.npy' not in zf.namelist():
      return out  # Some other npz.
    for info in zf.infolist():
      name = info.filename
      if not name.endswith('.npy') or name[:-4] in out:
        raise ValueError(f'unexpected member {name!r}')
      # Deflate expands at most ~1032x: a larger claim is damage.
      if info.file_size > 1100 * len(data) + 4096:
        raise ValueError(f'member {name!r} claims {info.file_size} bytes')
      with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
          shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
          shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
          raise ValueError(f'member {name!r} has npy version {version}')
        if dtype.str not in _MEMBER_DTYPES or len(shape) != 1:
          raise ValueError(f'member {name!r} is {dtype.str} {shape}')
        nbytes = int(shape[0]) * dtype.itemsize
        if nbytes < 0 or f.tell() + nbytes != info.file_size:
          raise ValueError(f'member {name!r}: {shape} does not fit its size')
        buf = f.read(nbytes)
        # Reading to the end checks the member's zip CRC-32.
        if len(buf) != nbytes or f.read(1):
          raise ValueError(f'member {name!r} has the wrong length')
      out[name[:-4]] = np.frombuffer(buf, dtype)
  return out


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise SparseFormatError(f'Cannot read sparse file {path}: {e}') from e
  try:
    members = _read_members(data)
  except Exception as e:  # pylint: disable=broad-except
    # Parsing untrusted bytes: zipfile, zlib, lzma and numpy's npy header
    # parser raise many types (BadZipFile, EOFError, zlib.error, LZMAError,
    # NotImplementedError, ValueError, ...); each means a damaged file.
    raise SparseFormatError(
        f'{path} is not a readable sparse file (truncated or corrupted? '
        f'{type(e).__name__}: {e}).'
    ) from e
  if _HEADER not in members:
    raise SparseFormatError(
        f'{path} has no {_HEADER} member: not written by '
        'rda_optax.save_sparse.'
    )
  try:
    header = json.loads(members.pop(_HEADER).tobytes().decode())
  except (UnicodeDecodeError, ValueError, RecursionError) as e:
    raise SparseFormatError(f'{path}: its header is corrupted ({e}).') from e
  if not isinstance(header, dict):
    raise SparseFormatError(
        f'{path}: its header is corrupted (not a JSON object).'
    )
  if header.get('format') != FORMAT:
    raise SparseFormatError(
        f'{path} is not a {FORMAT} file (format {header.get("format")!r}).'
    )
  if header.get('version') not in _READABLE:
    raise SparseFormatError(
        f'{path} has format version {header.get("version")!r}; this '
        f'rda_optax reads versions {" and ".join(map(str, _READABLE))} '
        '(upgrade rda-optax to read newer files).'
    )
  return header, members


def _check_path(entries) -> bool:
  return isinstance(entries, list) and all(
      isinstance(e, list)
      and len(e) == 2
      and e[0] in _PATH_KINDS
      and (
          (_is_int(e[1]) and e[1] >= 0)
          if e[0] == 'seq'
          else (isinstance(e[1], str) or (e[0] == 'dict' and _is_int(e[1])))
      )
      for e in entries
  )


def _check_leaf(
    path: str,
    i: int,
    meta: Any,
    members: dict[str, np.ndarray],
    version: int = VERSION,
) -> None:
  """One leaf's header entry, against the members that hold its data."""
  if not isinstance(meta, dict):
    raise SparseFormatError(
        f'{path}: leaf number {i} is corrupted (not a JSON object).'
    )
  if _check_path(meta.get('path')):
    where = f'{path}: leaf {_path_str(meta["path"])}'
  else:
    where = f'{path}: leaf number {i}'

  def bad(reason: str) -> SparseFormatError:
    return SparseFormatError(f'{where} is corrupted ({reason}).')

  fields = _LEAF_FIELDS | ({'nm'} if meta.get('code') == 'nm' else set())
  if missing := fields - set(meta):
    raise bad(f'no {", ".join(sorted(missing))} in the header')
  if unknown := set(meta) - fields:
    raise bad(f'unknown header fields {sorted(unknown)}')
  if not _check_path(meta['path']):
    raise bad(f'a key path of {meta["path"]!r}')
  shape = meta['shape']
  if not (
      isinstance(shape, list)
      and all(_is_int(d) and 0 <= d < 2**62 for d in shape)
  ):
    raise bad(f'a shape of {shape!r}')
  size = math.prod(shape)
  try:
    dtype = _dtype(meta['dtype'])
    ok = (
        isinstance(meta['dtype'], str)
        and dtype.name == meta['dtype']
        and not dtype.hasobject
        and dtype.itemsize > 0
    )
  except Exception:  # pylint: disable=broad-except
    ok = False  # numpy / ml_dtypes raise TypeError, ValueError, KeyError...
  if not ok:
    raise bad(f'a dtype of {meta["dtype"]!r}')
  code, nnz, crc = meta['code'], meta['nnz'], meta['crc32']
  if not isinstance(code, str) or code not in _CODE_MEMBERS:
    raise bad(f'unknown position code {code!r}')
  if not (_is_int(nnz) and 0 <= nnz <= size):
    raise bad(f'{nnz!r} nonzeros for shape {tuple(shape)}')
  if not (_is_int(crc) and 0 <= crc < 2**32):
    raise bad(f'a checksum of {crc!r}')
  stored = {}
  for name in _CODE_MEMBERS[code]:
    key = f'{i}.{name}'
    if key not in members:
      raise bad(f'its member {key} is missing')
    stored[name] = members[key]
  values = stored['values']
  want = (size if code == 'dense' else nnz) * dtype.itemsize
  if code == 'nm':
    nm = meta['nm']
    if version < _NM_VERSION:
      raise bad(f'the N:M layout in a version {version} file')
    if not (
        isinstance(nm, list)
        and len(nm) == 2
        and all(_is_int(v) for v in nm)
        and nm[1] in _NM_GROUP_SIZES
        and 0 <= nm[0] < nm[1]
        and len(shape) >= 2
    ):
      raise bad(f'an N:M layout of {nm!r} for shape {tuple(shape)}')
    n, m = nm
    lengths = list(shape)
    lengths[-2] += (-lengths[-2]) % m
    groups = math.prod(lengths) // m
    want = groups * n * dtype.itemsize
    patterns = stored['patterns']
    if patterns.dtype != np.uint8 or patterns.size != -(
        -groups * _nm_bits(m, n) // 8
    ):
      raise bad(
          f'patterns have the wrong length: {patterns.size} bytes for '
          f'{groups} groups'
      )
  if values.dtype != np.uint8 or values.size != want:
    raise bad(
        f'values have the wrong byte length: {values.size} for {nnz} '
        f'nonzeros of shape {tuple(shape)} {dtype.name}'
    )
  if code == 'bitmask':
    mask = stored['mask']
    if mask.dtype != np.uint8 or mask.size != -(-size // 8):
      raise bad(f'a mask of {mask.size} bytes for {size} entries')
  elif code == 'indices':
    idx = stored['indices']
    want_dtype = np.uint16 if size <= 2**16 else np.uint32
    if idx.dtype != want_dtype or idx.size != nnz or size > 2**32:
      raise bad(f'{idx.size} {idx.dtype} indices for {nnz} of {size} entries')


def _check_header(
    path: str, header: dict[str, Any], members: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
  """The leaves' entries of a whole checked header (nothing allocated yet).

  Raises:
    SparseFormatError: the header does not match its checksum (files of
      rda-optax 0.x before the header checksum have none), or any entry is
      malformed or disagrees with the stored members.
  """

  def bad(reason: str) -> SparseFormatError:
    return SparseFormatError(f'{path}: its header is corrupted ({reason}).')

  if _HEADER_CRC in header and header[_HEADER_CRC] != _header_crc(header):
    raise bad('checksum mismatch: edited or damaged')
  if unknown := set(header) - _HEADER_FIELDS - {_HEADER_CRC}:
    raise bad(f'unknown fields {sorted(unknown)}')
  leaves = header.get('leaves')
  if not isinstance(leaves, list):
    raise bad(f'"leaves" is {type(leaves).__name__}, not a list')
  if not isinstance(header.get('treedef'), str):
    raise bad('"treedef" is not a string')
  for i, meta in enumerate(leaves):
    _check_leaf(path, i, meta, members, header['version'])
  used = {
      f'{i}.{n}' for i, m in enumerate(leaves) for n in _CODE_MEMBERS[m['code']]
  }
  if extra := sorted(set(members) - used):
    raise bad(f'members {extra[:5]} belong to no leaf')
  paths = [tuple(tuple(e) for e in m['path']) for m in leaves]
  if len(set(paths)) != len(paths):
    raise bad('two leaves have the same key path')
  prefixes = {p[:k] for p in paths for k in range(len(p))}
  if clash := [p for p in paths if p in prefixes]:
    raise bad(
        f'leaf {_path_str([list(e) for e in clash[0]])} is inside another'
    )
  return leaves


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


def _nest(items: list[tuple[list[list[Any]], np.ndarray]]) -> Any:
  """Nested dicts (lists for sequences) from stored key paths."""
  if len(items) == 1 and not items[0][0]:
    return items[0][1]  # The tree was a single array.
  root: dict[tuple[str, Any], Any] = {}
  for entries, value in items:
    node = root
    for kind, key in entries[:-1]:
      node = node.setdefault((kind, key), {})
    node[tuple(entries[-1])] = value

  def build(node):
    if not isinstance(node, dict):
      return node
    if node and all(kind == 'seq' for kind, _ in node):
      return [build(node[k]) for k in sorted(node, key=lambda k: k[1])]
    return {key: build(v) for (_, key), v in node.items()}

  return build(root)


def load_sparse(path: str | os.PathLike, like: Any = None) -> Any:
  """Reads a tree written by :func:`save_sparse`, bit-identical.

  Args:
    path: the file.
    like: optional template tree (arrays or ``jax.ShapeDtypeStruct``): the
      result has its structure, and the file must hold the same leaf paths,
      shapes and dtypes. Without it the result is nested dicts (lists for
      sequences) of NumPy arrays, keyed as when saved.

  Returns:
    The tree, with NumPy arrays as leaves.

  Raises:
    SparseFormatError: unreadable, truncated or corrupted file (any damage
      to the data or the header, found before anything is allocated from
      it), another format version, or a file that does not match ``like``.
      No other exception comes from a damaged file.
  """
  path = os.fspath(path)
  header, members = _read(path)
  metas = _check_header(path, header, members)
  arrays = [_decode(path, i, m, members) for i, m in enumerate(metas)]
  if like is None:
    return _nest([(m['path'], x) for m, x in zip(metas, arrays)])
  want, treedef = jax.tree_util.tree_flatten_with_path(like)
  problems = []
  if len(want) != len(metas):
    problems.append(
        f'the file has {len(metas)} arrays, the template ' f'{len(want)}'
    )
  for (key_path, leaf), meta in zip(want, metas):
    name = _path_str(_path_entries(key_path))
    if _path_entries(key_path) != meta['path']:
      problems.append(f'{name}: the file has {_path_str(meta["path"])} here')
      continue
    shape = tuple(np.shape(leaf))
    if shape != tuple(meta['shape']):
      problems.append(
          f'{name}: shape {tuple(meta["shape"])} in the file, '
          f'{shape} in the template'
      )
    dtype = jnp.dtype(getattr(leaf, 'dtype', np.asarray(leaf).dtype))
    if dtype.name != meta['dtype']:
      problems.append(
          f'{name}: dtype {meta["dtype"]} in the file, '
          f'{dtype.name} in the template'
      )
  if problems:
    shown = '; '.join(problems[:5]) + (
        f'; and {len(problems) - 5} more' if len(problems) > 5 else ''
    )
    raise SparseFormatError(
        f'{path} does not match the template tree: {shown}.'
    )
  return jax.tree_util.tree_unflatten(treedef, arrays)


def sparse_size(tree: Any) -> dict[str, Any]:
  """Bytes of ``tree`` in the sparse format against dense, without a file.

  Returns:
    ``{'sparse_bytes', 'dense_bytes', 'ratio', 'codes'}``: the payload
    (values and position codes; the header and zip framing add about 100
    bytes per array), ``ratio = sparse_bytes / dense_bytes``, and how many
    leaves take each layout (``{'bitmask': 3, 'nm': 2, ...}``).
  """
  sparse = dense = 0
  codes: dict[str, int] = {}
  for leaf in jax.tree.leaves(tree):
    x = np.asarray(jax.device_get(leaf))
    enc = _encode(x)
    sparse += sum(a.nbytes for a in enc.arrays.values())
    dense += x.nbytes
    codes[enc.code] = codes.get(enc.code, 0) + 1
  return {
      'sparse_bytes': sparse,
      'dense_bytes': dense,
      'ratio': sparse / dense if dense else float('nan'),
      'codes': codes,
  }

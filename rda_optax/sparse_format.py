"""The sparse file's container: format constants, key paths as JSON, and
reading and checking a file before anything is decoded.

A file is a NumPy ``.npz`` whose ``__header__`` member is a JSON header
(format, version, tree definition, and per leaf its key path, shape, dtype,
position code, nonzero count and CRC-32) protected by its own CRC-32 (see
:mod:`rda_optax.sparse_io`). This module holds the constants of the format,
:class:`SparseFormatError`, the conversion of key paths to JSON and back to
names, and the reading side's checks: the members against their npy
headers, the header against its checksum, each leaf's entry against the
members that hold its data.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rda_optax.nm_layout import _NM_GROUP_SIZES
from rda_optax.nm_layout import _nm_bits

FORMAT = 'rda-optax-sparse'
VERSION = 2  # The newest version written (files without N:M leaves: 1).
_READABLE = (1, 2)
_NM_VERSION = 2  # The first version with the N:M layout.
_HEADER = '__header__'
_HEADER_CRC = 'header_crc32'  # Of the header's other fields.


class SparseFormatError(ValueError):
  """A sparse file that cannot be read into the requested tree."""


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


def _dtype(name: str) -> np.dtype:
  return jnp.dtype(name)  # Knows bfloat16 and the other ml_dtypes.


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


def header_crc(header: dict[str, Any]) -> int:
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

  if _HEADER_CRC in header and header[_HEADER_CRC] != header_crc(header):
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

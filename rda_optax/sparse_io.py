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

One job per module: :mod:`rda_optax.sparse_format` (the constants, the
header and the checks of a file read), :mod:`rda_optax.sparse_codes` (one
array's position codes), :mod:`rda_optax.nm_layout` (the N:M code); this
module writes and reads whole trees.

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

import json
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rda_optax.sparse_codes import _crc
from rda_optax.sparse_codes import _decode
from rda_optax.sparse_codes import encode
from rda_optax.sparse_format import _HEADER
from rda_optax.sparse_format import _HEADER_CRC
from rda_optax.sparse_format import _NM_VERSION
from rda_optax.sparse_format import FORMAT
from rda_optax.sparse_format import SparseFormatError
from rda_optax.sparse_format import VERSION  # noqa: F401 (sparse_io.VERSION)
from rda_optax.sparse_format import _check_header
from rda_optax.sparse_format import header_crc
from rda_optax.sparse_format import _path_entries
from rda_optax.sparse_format import _path_str
from rda_optax.sparse_format import _read


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
    enc = encode(x)
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
  header[_HEADER_CRC] = header_crc(header)
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
    enc = encode(x)
    sparse += sum(a.nbytes for a in enc.arrays.values())
    dense += x.nbytes
    codes[enc.code] = codes.get(enc.code, 0) + 1
  return {
      'sparse_bytes': sparse,
      'dense_bytes': dense,
      'ratio': sparse / dense if dense else float('nan'),
      'codes': codes,
  }

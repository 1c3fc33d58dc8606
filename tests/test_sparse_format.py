"""rda_optax.sparse_format: truncated, corrupted, edited and fuzzed files,
other versions and formats, are SparseFormatErrors (or the saved tree)."""

import json
import re
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rda_optax
from rda_optax import sparse_format

from _sparse_helpers import mlp
from _sparse_helpers import nm_array
from _sparse_helpers import same_bits
from _sparse_helpers import sparse_array


def test_truncated_file_is_a_clear_error(tmp_path):
  path = tmp_path / 'm.npz'
  rda_optax.save_sparse(path, mlp(0.05))
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(
      rda_optax.SparseFormatError, match='not a readable sparse file'
  ):
    rda_optax.load_sparse(path)


def test_corrupted_values_are_detected(tmp_path):
  path = tmp_path / 'm.npz'
  rda_optax.save_sparse(path, mlp(0.05))
  data = bytearray(path.read_bytes())
  with zipfile.ZipFile(path) as z:
    info = z.getinfo('0.values.npy')
  # Flip one byte of the stored values (past the member's local header).
  at = info.header_offset + 30 + len(info.filename) + 200
  data[at] ^= 0xFF
  path.write_bytes(bytes(data))
  with pytest.raises(rda_optax.SparseFormatError):
    rda_optax.load_sparse(path)


def _rewrite_header(path, **changes):
  """An edit that keeps the header's checksum consistent (to reach the
  checks behind it)."""
  with np.load(path) as npz:
    members = {k: npz[k] for k in npz.files}
  header = json.loads(members['__header__'].tobytes())
  header.update(changes)
  header['header_crc32'] = sparse_format.header_crc(header)
  members['__header__'] = np.frombuffer(json.dumps(header).encode(), np.uint8)
  np.savez(path, **members)


def test_other_versions_and_formats_are_refused(tmp_path):
  path = tmp_path / 'm.npz'
  rda_optax.save_sparse(path, mlp(0.05))
  _rewrite_header(path, version=3)
  with pytest.raises(
      rda_optax.SparseFormatError,
      match='format version 3; this rda_optax reads versions 1 and 2',
  ):
    rda_optax.load_sparse(path)
  _rewrite_header(path, version=1, format='something-else')
  with pytest.raises(rda_optax.SparseFormatError, match='is not a'):
    rda_optax.load_sparse(path)
  np.savez(tmp_path / 'plain.npz', w=np.zeros(3))
  with pytest.raises(
      rda_optax.SparseFormatError, match='not written by rda_optax.save_sparse'
  ):
    rda_optax.load_sparse(tmp_path / 'plain.npz')
  (tmp_path / 'text.npz').write_text('hello')
  with pytest.raises(rda_optax.SparseFormatError):
    rda_optax.load_sparse(tmp_path / 'text.npz')
  with pytest.raises(rda_optax.SparseFormatError, match='Cannot read'):
    rda_optax.load_sparse(tmp_path / 'missing.npz')


def test_nm_in_a_version_1_file_is_refused(tmp_path):
  path = tmp_path / 'nm.npz'
  rda_optax.save_sparse(path, {'w': nm_array((64, 8), 2, 4)})
  _rewrite_header(path, version=1)
  with pytest.raises(
      rda_optax.SparseFormatError, match='N:M layout in a version 1 file'
  ):
    rda_optax.load_sparse(path)


# ---------------------------------------------------------------------------
# Damaged and edited files: the whole header is checked before anything is
# allocated from it; every failure is a SparseFormatError naming the file.
# ---------------------------------------------------------------------------


def model_tree():
  """A small model's variables with every position code and several dtypes
  (a version-2 file: one N:M leaf)."""
  return {
      'conv': {
          'kernel': sparse_array((3, 3, 4, 8), 0.3),  # bitmask
          'bias': sparse_array((8,), 1.0),  # dense
      },
      'dense': {
          'kernel': sparse_array((300, 20), 0.004, seed=1),  # indices, uint16
      },
      'big': sparse_array((70_000,), 0.0005, seed=2),  # indices, uint32
      'nm': nm_array((64, 8), 2, 4),  # N:M (2:4 along axis -2)
      'bn': [jnp.asarray(sparse_array((16,), 0.5, seed=3), jnp.bfloat16)],
      'step': np.int32(7),
  }


def _members(path):
  with np.load(path) as npz:
    return {k: npz[k] for k in npz.files}


def _header(members):
  return json.loads(members['__header__'].tobytes())


def _write(path, members, header=None, crc='keep'):
  """Writes ``members`` (with ``header``) as a valid zip; ``crc``: 'keep' the
  stored header checksum, 'update' it to the edited header, or 'drop' it (a
  file of before the header checksum)."""
  members = dict(members)
  if header is not None:
    header = dict(header)
    if crc == 'update':
      header['header_crc32'] = sparse_format.header_crc(header)
    elif crc == 'drop':
      header.pop('header_crc32', None)
    members['__header__'] = np.frombuffer(json.dumps(header).encode(), np.uint8)
  np.savez(path, **members)


def _same_tree(a, b):
  fa = jax.tree_util.tree_flatten_with_path(a)
  fb = jax.tree_util.tree_flatten_with_path(b)
  if [p for p, _ in fa[0]] != [p for p, _ in fb[0]]:
    return False
  return all(same_bits(x, y) for (_, x), (_, y) in zip(fa[0], fb[0]))


def test_the_issues_damaged_headers_are_format_errors(tmp_path):
  path = tmp_path / 'm.npz'
  tree = model_tree()
  rda_optax.save_sparse(path, tree)
  members = _members(path)
  header = _header(members)
  kernel = 0  # Leaves are sorted by key: big, bn/0, conv/bias, ...
  names = [sparse_format._path_str(m['path']) for m in header['leaves']]

  def edited(change, crc='update'):
    h = json.loads(json.dumps(header))
    change(h)
    _write(path, members, h, crc)

  edited(lambda h: h['leaves'][kernel].pop('crc32'))
  with pytest.raises(
      rda_optax.SparseFormatError,
      match=rf'm.npz: leaf {re.escape(names[kernel])} is corrupted \(no crc32',
  ):
    rda_optax.load_sparse(path)
  edited(lambda h: h.update(leaves=5))
  with pytest.raises(rda_optax.SparseFormatError, match='"leaves" is int'):
    rda_optax.load_sparse(path)
  for i in range(len(header['leaves'])):
    # Refused before allocating 4 TB (whatever the position code).
    edited(lambda h: h['leaves'][i].update(shape=[1000000, 1000000]))
    with pytest.raises(rda_optax.SparseFormatError, match=re.escape(names[i])):
      rda_optax.load_sparse(path)
  # An edited shape or dtype, without a template: the header's checksum.
  edited(lambda h: h['leaves'][2].update(shape=[2, 2, 2]), crc='keep')
  with pytest.raises(rda_optax.SparseFormatError, match='checksum mismatch'):
    rda_optax.load_sparse(path)
  edited(lambda h: h['leaves'][2].update(dtype='int32'), crc='keep')
  with pytest.raises(rda_optax.SparseFormatError, match='checksum mismatch'):
    rda_optax.load_sparse(path)
  # A shape of the wrong size is inconsistent with the data, checksum or not.
  edited(lambda h: h['leaves'][3].update(shape=[4, 3, 4, 8]), crc='drop')
  with pytest.raises(rda_optax.SparseFormatError, match='is corrupted'):
    rda_optax.load_sparse(path)


def _byte_mutations(data: bytes, rng) -> list[bytes]:
  out = []
  for _ in range(120):  # One flipped bit anywhere.
    b = bytearray(data)
    b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
    out.append(bytes(b))
  for _ in range(30):  # A random byte.
    b = bytearray(data)
    b[rng.integers(len(b))] = int(rng.integers(256))
    out.append(bytes(b))
  for n in rng.integers(0, len(data), 20):  # Truncated.
    out.append(data[:n])
  for at in rng.integers(0, len(data), 10):  # A byte inserted or lost.
    out.append(data[:at] + b'\0' + data[at:])
    out.append(data[:at] + data[at + 1 :])
  return out


def _header_mutations(header, rng) -> list[dict]:
  """Edited headers: every field of random leaves, and the top level."""
  values = [
      -1,
      0,
      1,
      2**31,
      2**64,
      1e300,
      True,
      None,
      'x',
      'float32',
      'int32',
      'uint32',
      'bfloat16',
      'float16',
      'bitmask',
      'indices',
      'dense',
      [],
      [0],
      [1000000, 1000000],
      [['dict', 'conv']],
      {},
  ]
  out = []
  n = len(header['leaves'])
  for _ in range(100):
    h = json.loads(json.dumps(header))
    leaf = h['leaves'][int(rng.integers(n))]
    fields = ['path', 'shape', 'dtype', 'code', 'nnz', 'crc32']
    field = (fields + (['nm'] if 'nm' in leaf else []))[
        int(rng.integers(len(fields) + ('nm' in leaf)))
    ]
    kind = int(rng.integers(5))
    if kind == 0:
      leaf[field] = values[int(rng.integers(len(values)))]
    elif kind == 1:
      del leaf[field]
    elif kind == 2 and field in ('nnz', 'crc32'):
      leaf[field] += int(rng.choice([-1, 1]))
    elif kind == 2 and field == 'shape' and leaf['shape']:
      leaf['shape'] = [int(d) for d in rng.permutation(leaf['shape'])] + [1]
    elif kind == 3:  # Another leaf's value.
      leaf[field] = h['leaves'][int(rng.integers(n))][field]
    else:
      leaf['extra'] = 1
    out.append(h)
  for change in (
      lambda h: h.update(leaves=h['leaves'][:-1]),
      lambda h: h.update(leaves=h['leaves'] + h['leaves'][:1]),
      lambda h: h.update(leaves=h['leaves'][::-1]),
      lambda h: h.update(leaves={}),
      lambda h: h.update(treedef=3),
      lambda h: h.update(more=1),
      lambda h: h.pop('leaves'),
  ):
    h = json.loads(json.dumps(header))
    change(h)
    out.append(h)
  return out


def test_fuzzed_files_are_format_errors_or_the_saved_tree(tmp_path):
  """Hundreds of damaged and edited copies of a model's file: each is
  refused with a SparseFormatError, or read back bit-identical."""
  rng = np.random.default_rng(0)
  tree = model_tree()
  path = tmp_path / 'model.npz'
  rda_optax.save_sparse(path, tree)
  data = path.read_bytes()
  members = _members(path)
  header = _header(members)
  cases = [('bytes', b) for b in _byte_mutations(data, rng)]
  for h in _header_mutations(header, rng):
    for crc in ('keep', 'update', 'drop'):
      _write(path, members, h, crc)
      cases.append((f'header/{crc}', path.read_bytes()))
  for key in sorted(members):  # Members dropped, cut, retyped, extra.
    for change in (
        lambda m: m.pop(key),
        lambda m: m.update({key: m[key][:-1]}),
        lambda m: m.update({key: m[key].astype(np.uint32)}),
        lambda m: m.update({key + 'x': m[key]}),
    ):
      m = dict(members)
      change(m)
      _write(path, m)
      cases.append(('members', path.read_bytes()))
  assert len(cases) > 500
  other, altered, refused, same = [], [], 0, 0
  for kind, content in cases:
    path.write_bytes(content)
    for like in (None, tree):
      try:
        back = rda_optax.load_sparse(path, like=like)
      except rda_optax.SparseFormatError as e:
        assert 'model.npz' in str(e)
        refused += 1
        continue
      except Exception as e:  # pylint: disable=broad-except
        other.append((kind, f'{type(e).__name__}: {e}'))
        continue
      if _same_tree(back, tree):
        same += 1
      elif kind in ('header/update', 'header/drop') and like is None:
        # A consistent header rewritten with its checksum (or a file of
        # before the checksum): without a template, what it says is read.
        pass
      else:
        altered.append(kind)
  assert not other, other[:5]
  assert not altered, altered[:5]
  assert refused > 800 and same > 0

"""The compressed sparse format: exact round trips, sizes, clear errors."""

import json
import os
import re
import zipfile
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rda_optax
from rda_optax import sparse_io


def sparse_array(shape, density, dtype=np.float32, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=shape).astype(dtype)
  x[rng.random(shape) >= density] = 0
  return x


def same_bits(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return (
      a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
  )


def mlp(density, seed=0):
  return {
      'fc1': {
          'kernel': sparse_array((784, 300), density, seed=seed),
          'bias': sparse_array((300,), 1.0, seed=seed + 1),
      },
      'fc2': {
          'kernel': sparse_array((300, 100), density, seed=seed + 2),
          'bias': np.zeros(100, np.float32),
      },
  }


def test_round_trip_is_bit_identical_for_every_dtype_and_shape(tmp_path):
  tree = {
      'f32': sparse_array((64, 32), 0.05),
      'bf16': jnp.asarray(sparse_array((16, 8), 0.3), jnp.bfloat16),
      'f16': sparse_array((7, 5), 0.5, np.float16),
      'f64': sparse_array((3, 3), 1.0, np.float64),
      'int': np.array([[0, 3], [0, -7]], np.int32),
      'bool': np.array([True, False, False]),
      # -0.0 and NaN payloads are values, not zeros.
      'special': np.array([-0.0, np.nan, 0.0, np.inf], np.float32),
      'scalar': np.float32(2.5),
      'empty': np.zeros((0, 4), np.float32),
      'seq': [np.zeros((2, 2), np.float32), sparse_array((50,), 0.01)],
  }
  path = tmp_path / 'tree.npz'
  rda_optax.save_sparse(path, tree)
  back = rda_optax.load_sparse(path, like=tree)
  for (p, a), b in zip(
      jax.tree_util.tree_leaves_with_path(tree), jax.tree.leaves(back)
  ):
    assert same_bits(a, b), p
  # Without a template: nested dicts and lists, same keys.
  plain = rda_optax.load_sparse(path)
  assert isinstance(plain['seq'], list) and len(plain['seq']) == 2
  assert plain['bf16'].dtype == jnp.bfloat16
  assert same_bits(plain['special'], tree['special'])


def test_template_structure_is_kept():

  class Pair(NamedTuple):
    w: np.ndarray
    b: np.ndarray

  tree = (
      Pair(sparse_array((10, 10), 0.1), np.ones(10, np.float32)),
      {'x': np.zeros(3, np.float32)},
  )
  import tempfile

  path = os.path.join(tempfile.mkdtemp(), 'pair.npz')
  rda_optax.save_sparse(path, tree)
  back = rda_optax.load_sparse(
      path,
      like=jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree),
  )
  assert isinstance(back[0], Pair)
  assert same_bits(back[0].w, tree[0].w)


def test_a_single_array_round_trips(tmp_path):
  x = sparse_array((100,), 0.2)
  rda_optax.save_sparse(tmp_path / 'x.npz', x)
  assert same_bits(rda_optax.load_sparse(tmp_path / 'x.npz'), x)


def test_each_array_gets_its_smallest_position_code():
  assert sparse_io._encode(sparse_array((1000,), 1.0)).code == 'dense'
  assert sparse_io._encode(sparse_array((1000,), 0.3)).code == 'bitmask'
  enc = sparse_io._encode(sparse_array((1000,), 0.005))
  assert enc.code == 'indices' and enc.arrays['indices'].dtype == np.uint16
  big = sparse_io._encode(sparse_array((300, 300), 0.002))
  assert big.code == 'indices' and big.arrays['indices'].dtype == np.uint32


@pytest.mark.parametrize(
    'density, at_most', [(0.10, 1 / 7.5), (0.05, 1 / 12), (0.01, 1 / 40)]
)
def test_size_against_dense_float32(tmp_path, density, at_most):
  tree = mlp(density)
  size = rda_optax.sparse_size(tree)
  assert size['dense_bytes'] == 4 * (784 * 300 + 300 + 300 * 100 + 100)
  assert size['ratio'] <= at_most, size
  # The file adds only the header and zip framing.
  path = tmp_path / 'mlp.npz'
  rda_optax.save_sparse(path, tree)
  assert os.path.getsize(path) <= size['sparse_bytes'] + 4096


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
  path = tmp_path / 'm.npz'
  rda_optax.save_sparse(path, mlp(0.05))
  rda_optax.save_sparse(path, mlp(0.05, seed=3))  # Overwrite in place.
  assert os.listdir(tmp_path) == ['m.npz']
  assert same_bits(
      rda_optax.load_sparse(path)['fc1']['kernel'],
      mlp(0.05, seed=3)['fc1']['kernel'],
  )


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


def test_tampered_member_with_valid_zip_is_caught_by_the_checksum(tmp_path):
  path = tmp_path / 'm.npz'
  tree = {'w': sparse_array((40, 40), 0.2)}
  rda_optax.save_sparse(path, tree)
  with np.load(path) as npz:
    members = {k: npz[k] for k in npz.files}
  members['0.values'] = members['0.values'].copy()
  members['0.values'][5] ^= 1  # A valid zip, wrong numbers.
  np.savez(path, **members)
  with pytest.raises(
      rda_optax.SparseFormatError,
      match=r"\['w'\] is corrupted \(checksum mismatch\)",
  ):
    rda_optax.load_sparse(path)
  members['0.values'] = members['0.values'][:-4]  # Values and mask disagree.
  np.savez(path, **members)
  with pytest.raises(rda_optax.SparseFormatError, match='is corrupted'):
    rda_optax.load_sparse(path)


def _rewrite_header(path, **changes):
  """An edit that keeps the header's checksum consistent (to reach the
  checks behind it)."""
  with np.load(path) as npz:
    members = {k: npz[k] for k in npz.files}
  header = json.loads(members['__header__'].tobytes())
  header.update(changes)
  header['header_crc32'] = sparse_io._header_crc(header)
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


def test_a_file_that_does_not_match_the_template_is_refused(tmp_path):
  path = tmp_path / 'm.npz'
  tree = mlp(0.05)
  rda_optax.save_sparse(path, tree)
  wrong_shape = jax.tree.map(lambda x: x, tree)
  wrong_shape['fc2']['kernel'] = np.zeros((100, 300), np.float32)
  with pytest.raises(
      rda_optax.SparseFormatError,
      match=r"\['fc2'\]\['kernel'\]: shape \(300, 100\) in the "
      r'file, \(100, 300\) in the template',
  ):
    rda_optax.load_sparse(path, like=wrong_shape)
  wrong_dtype = jax.tree.map(lambda x: x.astype(np.float16), tree)
  with pytest.raises(rda_optax.SparseFormatError, match='dtype float32 in'):
    rda_optax.load_sparse(path, like=wrong_dtype)
  with pytest.raises(rda_optax.SparseFormatError, match='4 arrays'):
    rda_optax.load_sparse(path, like={'fc1': tree['fc1']})
  renamed = {'fc1': tree['fc1'], 'out': tree['fc2']}
  with pytest.raises(rda_optax.SparseFormatError, match=r"\['out'\]"):
    rda_optax.load_sparse(path, like=renamed)


def test_device_arrays_and_a_trained_sparse_model(tmp_path):
  # What a user saves: the exact zeros RMDA made, as JAX arrays.
  params = {'w': jnp.asarray(sparse_array((200, 50), 0.05))}
  path = tmp_path / 'w.npz'
  rda_optax.save_sparse(path, params)
  back = rda_optax.load_sparse(path, like=params)
  assert same_bits(back['w'], params['w'])
  assert os.path.getsize(path) < params['w'].nbytes / 8


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
      header['header_crc32'] = sparse_io._header_crc(header)
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
  names = [sparse_io._path_str(m['path']) for m in header['leaves']]

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


# ------------------------------------------------------------ N:M layout.


def nm_array(shape, n, m, dtype=np.float32, seed=0):
  """A random array projected to N:M along axis -2, with -0.0, a NaN and
  groups holding fewer than N nonzeros."""
  x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
  x = np.asarray(rda_optax.nm_constraint(n, m).prox(jnp.asarray(x), 1.0))
  x = x.astype(dtype)
  kept = np.flatnonzero(x)
  x.reshape(-1)[kept[:3]] = 0  # Groups with fewer nonzeros.
  x.reshape(-1)[kept[5]] = -0.0  # A value to keep, not a zero.
  if np.issubdtype(dtype, np.floating) or dtype == jnp.bfloat16:
    x.reshape(-1)[kept[7]] = np.nan
  return x


@pytest.mark.parametrize(
    'shape, n, m, dtype',
    [
        ((256, 64), 2, 4, np.float32),
        ((3, 3, 32, 8), 1, 4, jnp.bfloat16),  # Conv: input channels.
        ((66, 10), 2, 4, np.float32),  # 66 % 4 = 2: a shorter last group.
        ((64, 16), 4, 8, np.float16),
        ((96, 8), 2, 8, np.float64),
        ((48, 6), 3, 16, np.float32),
    ],
)
def test_nm_layout_round_trips_bit_identical(tmp_path, shape, n, m, dtype):
  x = nm_array(shape, n, m, dtype)
  enc = sparse_io._encode(x)
  assert enc.code == 'nm' and enc.nm[1] == m and enc.nm[0] == n, enc.nm
  others = sparse_io._encode(x, codes=('bitmask', 'indices', 'dense'))
  nbytes = lambda e: sum(a.nbytes for a in e.arrays.values())
  assert nbytes(enc) < nbytes(others)
  tree = {'k': x, 'b': np.ones(3, np.float32)}
  path = tmp_path / 'nm.npz'
  rda_optax.save_sparse(path, tree)
  back = rda_optax.load_sparse(path, like=tree)
  assert same_bits(back['k'], x) and same_bits(back['b'], tree['b'])
  with np.load(path) as npz:
    header = json.loads(npz['__header__'].tobytes())
  assert header['version'] == 2
  assert header['leaves'][1]['nm'] == [n, m]


def test_files_without_nm_leaves_stay_version_1(tmp_path):
  path = tmp_path / 'm.npz'
  rda_optax.save_sparse(path, mlp(0.05))
  with np.load(path) as npz:
    assert json.loads(npz['__header__'].tobytes())['version'] == 1
  codes = rda_optax.sparse_size(mlp(0.05))['codes']
  assert 'nm' not in codes and sum(codes.values()) == 4


def test_nm_sizes_against_the_bitmask_and_dense():
  """2:4 float32: values 2 B/weight + 3 bits per group of 4 (0.09 B/weight)
  against the bitmask's 1 bit/weight (0.125 B); 1:4: 2 bits per group."""
  for n, per_weight in ((2, 2 + 3 / 32), (1, 1 + 2 / 32)):
    x = nm_array((512, 256), n, 4)
    size = rda_optax.sparse_size({'w': x})
    assert size['codes'] == {'nm': 1}
    assert size['sparse_bytes'] == pytest.approx(x.size * per_weight, abs=1)
    bitmask = x.size / 8 + x.size * n  # (the nonzeros: n per group of 4)
    assert size['sparse_bytes'] < bitmask


def test_nm_in_a_version_1_file_is_refused(tmp_path):
  path = tmp_path / 'nm.npz'
  rda_optax.save_sparse(path, {'w': nm_array((64, 8), 2, 4)})
  _rewrite_header(path, version=1)
  with pytest.raises(
      rda_optax.SparseFormatError, match='N:M layout in a version 1 file'
  ):
    rda_optax.load_sparse(path)


@pytest.mark.parametrize(
    'damage, match',
    [
        (lambda m: m.update(p=m['p'][:-1]), 'patterns have the wrong length'),
        (lambda m: m['p'].__setitem__(0, m['p'][0] ^ 0x80), 'corrupted'),
        (lambda m: m['p'].__setitem__(slice(None), 0xFF), 'out of range'),
        (lambda m: m.update(v=m['v'][:-4]), 'values have the wrong'),
    ],
)
def test_a_damaged_nm_leaf_is_a_format_error(tmp_path, damage, match):
  path = tmp_path / 'nm.npz'
  rda_optax.save_sparse(path, {'w': nm_array((64, 8), 2, 4)})
  with np.load(path) as npz:
    members = {k: npz[k].copy() for k in npz.files}
  short = {'p': members['0.patterns'], 'v': members['0.values']}
  damage(short)
  members['0.patterns'], members['0.values'] = short['p'], short['v']
  np.savez(path, **members)
  with pytest.raises(rda_optax.SparseFormatError, match=match):
    rda_optax.load_sparse(path)


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_the_file_has_the_mode_of_any_new_file(tmp_path, umask):
  """save_sparse writes through a private temporary file (mkstemp: 0600),
  but the file it leaves has 0666 less the umask, as open() gives."""
  old = os.umask(umask)
  try:
    rda_optax.save_sparse(str(tmp_path / 'v.npz'), {'w': np.zeros(3)})
    with open(tmp_path / 'plain', 'w'):
      pass
  finally:
    os.umask(old)
  mode = os.stat(tmp_path / 'v.npz').st_mode & 0o777
  assert mode == os.stat(tmp_path / 'plain').st_mode & 0o777
  assert mode == 0o666 & ~umask

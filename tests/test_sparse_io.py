"""rda_optax.sparse_io: save_sparse / load_sparse / sparse_size, exact round
trips, sizes, the template check, atomic writes and the file's mode."""

import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rda_optax

from _sparse_helpers import mlp
from _sparse_helpers import same_bits
from _sparse_helpers import sparse_array


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


def test_files_without_nm_leaves_stay_version_1(tmp_path):
  path = tmp_path / 'm.npz'
  rda_optax.save_sparse(path, mlp(0.05))
  with np.load(path) as npz:
    assert json.loads(npz['__header__'].tobytes())['version'] == 1
  codes = rda_optax.sparse_size(mlp(0.05))['codes']
  assert 'nm' not in codes and sum(codes.values()) == 4


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

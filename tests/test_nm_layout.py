"""rda_optax.nm_layout: the N:M code round trips bit-identical, is smaller
than the other codes, and a damaged N:M leaf is a format error."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

import rda_optax
from rda_optax import sparse_codes

from _sparse_helpers import nm_array
from _sparse_helpers import same_bits


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
  enc = sparse_codes.encode(x)
  assert enc.code == 'nm' and enc.nm[1] == m and enc.nm[0] == n, enc.nm
  others = sparse_codes.encode(x, codes=('bitmask', 'indices', 'dense'))
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

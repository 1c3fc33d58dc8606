"""rda_optax.sparse_codes: each array gets its smallest position code, and
a decoded array that does not match its checksum is refused."""

import numpy as np
import pytest

import rda_optax
from rda_optax import sparse_codes

from _sparse_helpers import sparse_array


def test_each_array_gets_its_smallest_position_code():
  assert sparse_codes.encode(sparse_array((1000,), 1.0)).code == 'dense'
  assert sparse_codes.encode(sparse_array((1000,), 0.3)).code == 'bitmask'
  enc = sparse_codes.encode(sparse_array((1000,), 0.005))
  assert enc.code == 'indices' and enc.arrays['indices'].dtype == np.uint16
  big = sparse_codes.encode(sparse_array((300, 300), 0.002))
  assert big.code == 'indices' and big.arrays['indices'].dtype == np.uint32


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

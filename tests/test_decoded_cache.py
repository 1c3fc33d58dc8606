"""train/data/decoded_cache.py: decoded splits kept beside the prepared data."""

import logging
import os

import numpy as np
from train.data import decoded_cache
from train.data.datasets import ArraySource

SHAPE = (4, 4, 1)


def _prepared(tmp_path, content=b'records'):
  folder = tmp_path / 'mnist' / '3.0.1'
  folder.mkdir(parents=True, exist_ok=True)
  (folder / 'mnist-train.array_record-00000-of-00001').write_bytes(content)
  (folder / 'mnist-test.array_record-00000-of-00001').write_bytes(b'other')
  return str(folder)


class _Decoder:
  """Counts the decodings; its images depend on ``seed``."""

  def __init__(self, seed=0, n=6):
    self.calls, self.seed, self.n = 0, seed, n

  def __call__(self):
    self.calls += 1
    rng = np.random.default_rng(self.seed)
    return ArraySource(
        rng.integers(0, 256, (self.n, *SHAPE), dtype=np.uint8),
        rng.integers(0, 10, self.n),
    )


def _load(folder, decode, split='train'):
  return decoded_cache.load_decoded(
      folder, 'mnist', split, decode.n, SHAPE, decode
  )


def _entries(folder):
  d = os.path.join(folder, decoded_cache.SUBDIR)
  return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_decodes_once_then_reads_the_same_arrays(tmp_path):
  folder, decode = _prepared(tmp_path), _Decoder()
  first = _load(folder, decode)
  second = _load(folder, decode)
  assert decode.calls == 1
  np.testing.assert_array_equal(second.images, first.images)
  np.testing.assert_array_equal(second.labels, first.labels)
  assert second.labels.dtype == np.int32 and len(_entries(folder)) == 1
  # Another split (or slice) is another entry.
  _load(folder, decode, 'train[:50%]')
  assert decode.calls == 2 and len(_entries(folder)) == 2


def test_a_damaged_entry_is_decoded_again(tmp_path, caplog):
  folder, decode = _prepared(tmp_path), _Decoder()
  ref = _load(folder, decode)
  (entry,) = _entries(folder)
  path = os.path.join(folder, decoded_cache.SUBDIR, entry)
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0x10  # One bit of the images.
  open(path, 'wb').write(bytes(data))
  with caplog.at_level(logging.WARNING):
    again = _load(folder, decode)
  assert decode.calls == 2 and 'Decoding again' in caplog.text
  np.testing.assert_array_equal(again.images, ref.images)
  open(path, 'wb').write(b'not an npz')  # Truncated / overwritten.
  _load(folder, decode)
  assert decode.calls == 3
  assert _load(folder, decode).images.shape == (6, *SHAPE)
  assert decode.calls == 3  # Rewritten by the last decoding.


def test_preparing_again_supersedes_the_entry(tmp_path):
  folder = _prepared(tmp_path)
  old = _load(folder, _Decoder(seed=0))
  _prepared(tmp_path, content=b'prepared again: other records')
  new_decode = _Decoder(seed=1)
  new = _load(folder, new_decode)
  assert new_decode.calls == 1
  assert not np.array_equal(new.images, old.images)
  assert len(_entries(folder)) == 1  # The superseded entry is gone.


def test_no_prepared_files_or_a_read_only_folder_just_decode(
    tmp_path, monkeypatch
):
  decode = _Decoder()
  empty = tmp_path / 'mock'
  empty.mkdir()
  _load(str(empty), decode)
  _load(str(empty), decode)
  assert decode.calls == 2 and not _entries(str(empty))

  def refuse(*args, **kwargs):
    raise PermissionError(13, 'Permission denied')

  folder = _prepared(tmp_path)
  monkeypatch.setattr(decoded_cache.os, 'makedirs', refuse)
  _load(folder, decode)
  _load(folder, decode)
  assert decode.calls == 4 and not _entries(folder)

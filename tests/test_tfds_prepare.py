"""Preparing a TFDS dataset: the published archives, each dataset's own data,
a record of where it came from, one preparation at a time.

The datasets here are tiny fakes in MNIST's format (``tests/_fake_mnist.py``:
60 + 10 images, TFDS made to take their checksums), so that ``mnist`` and
``fashion_mnist``, which share archive names, are prepared in a second; the
refusal of a wrong archive uses the real MNIST archives and the real
checksums.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets')
pytest.importorskip('tensorflow')

import _fake_mnist  # noqa: E402
from conftest import MNIST_DIR  # noqa: E402
from train.data import datasets  # noqa: E402
from train.data import tfds_source  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _test_split_mean(name, data_dir):
  ds = tfds_source.load_tfds(name, data_dir=data_dir, in_memory=True)
  return float(ds.eval.get_batch(np.arange(len(ds.eval)))['image'].mean())


def test_mnist_then_fashion_mnist_in_one_data_folder_each_get_their_own(
    tmp_path, monkeypatch
):
  """The reported mix-up: TFDS extracts manual archives to
  downloads/extracted/GZIP.<file name>, shared by the two datasets, and
  reuses what it finds there; fashion_mnist was MNIST."""
  data_dir = str(tmp_path / 'tfds')
  mnist = _fake_mnist.write_archives(tmp_path / 'mnist', pixel=30)
  fashion = _fake_mnist.write_archives(tmp_path / 'fashion', pixel=200, seed=1)
  _fake_mnist.accept('mnist', mnist, monkeypatch)
  _fake_mnist.accept('fashion_mnist', fashion, monkeypatch)
  tfds_source.prepare_tfds(
      'mnist', data_dir=data_dir, manual_dir=str(tmp_path / 'mnist')
  )
  # What an earlier preparation (before per-dataset extraction) left.
  stale = os.path.join(data_dir, 'downloads', 'extracted')
  for f in datasets.MNIST_FILES:
    with open(os.path.join(stale, 'GZIP.' + f), 'wb') as out:
      import gzip  # pylint: disable=import-outside-toplevel

      out.write(gzip.decompress((tmp_path / 'mnist' / f).read_bytes()))
  tfds_source.prepare_tfds(
      'fashion_mnist', data_dir=data_dir, manual_dir=str(tmp_path / 'fashion')
  )
  assert abs(_test_split_mean('mnist', data_dir) - 30) < 1
  assert abs(_test_split_mean('fashion_mnist', data_dir) - 200) < 1
  # Each says where it came from; the extractions are gone.
  for name, infos, folder in (
      ('mnist', mnist, 'mnist'),
      ('fashion_mnist', fashion, 'fashion'),
  ):
    record = tfds_source.read_provenance(name, data_dir)
    assert record['dataset'] == name and record['version'] == '3.0.1'
    assert record['source'] == 'manual folder'
    assert record['manual_dir'] == str(tmp_path / folder)
    assert {a['file']: a['sha256'] for a in record['archives']} == {
        f: sha for f, (_, sha) in infos.items()
    }
    assert record['prepared'].endswith('Z')
  assert sorted(os.listdir(stale)) == sorted(
      'GZIP.' + f for f in datasets.MNIST_FILES
  )


@pytest.mark.skipif(
    not os.path.isdir(MNIST_DIR), reason=f'no MNIST archives in {MNIST_DIR}'
)
def test_a_wrong_archive_in_a_manual_folder_is_refused(tmp_path):
  """MNIST's archives offered as Fashion-MNIST (the same file names): the
  first is refused, in one line naming it; nothing is prepared."""
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(tfds_source.ArchiveMismatch) as e:
    tfds_source.prepare_tfds(
        'fashion_mnist', data_dir=data_dir, manual_dir=MNIST_DIR
    )
  message = str(e.value)
  assert '\n' not in message
  assert message.startswith(
      f'{MNIST_DIR}/train-images-idx3-ubyte.gz does not match its published '
      'checksum for fashion_mnist (9,912,422 bytes, published 26,421,880)'
  )
  assert not os.path.exists(os.path.join(data_dir, 'fashion_mnist'))
  # The right size, other bytes: the SHA-256 says it.
  manual = tmp_path / 'manual'
  manual.mkdir()
  for f in datasets.MNIST_FILES:
    os.symlink(os.path.join(MNIST_DIR, f), manual / f)
  bad = manual / 't10k-labels-idx1-ubyte.gz'
  bad.unlink()
  data = bytearray(open(os.path.join(MNIST_DIR, bad.name), 'rb').read())
  data[100] ^= 1
  bad.write_bytes(bytes(data))
  with pytest.raises(
      tfds_source.ArchiveMismatch, match=r't10k-labels.*SHA-256'
  ):
    tfds_source.verify_archives('mnist', str(manual))


def test_a_second_preparation_waits_for_the_first(
    tmp_path, monkeypatch, capsys
):
  """Another process is preparing mnist in the data folder (holding its lock
  for 2 s first): this one waits, says so in one line, then reads it."""
  data_dir, manual = str(tmp_path / 'tfds'), str(tmp_path / 'manual')
  marker = str(tmp_path / 'preparing')
  first = subprocess.Popen(
      [
          sys.executable,
          os.path.join(REPO, 'tests', '_fake_mnist.py'),
          'mnist',
          data_dir,
          manual,
          '30',
          '2',
          marker,
      ],
      cwd=REPO,
      stderr=subprocess.PIPE,
      text=True,
  )
  deadline = time.time() + 120
  while not os.path.exists(marker):
    if first.poll() is not None or time.time() > deadline:
      pytest.fail(f'the first preparation did not start: {first.stderr.read()}')
    time.sleep(0.05)
  _fake_mnist.accept(
      'mnist', _fake_mnist.write_archives(manual, 30), monkeypatch
  )
  folder = tfds_source.prepare_tfds(
      'mnist', data_dir=data_dir, manual_dir=manual
  )
  assert first.wait(timeout=120) == 0, first.stderr.read()
  err = capsys.readouterr().err
  assert err.startswith(f'waiting for PID {first.pid} on host ')
  assert f'which is preparing mnist in {data_dir}' in err
  assert 'Preparing mnist' not in err  # It read what the first prepared.
  with open(os.path.join(folder, tfds_source.PROVENANCE_FILE)) as f:
    assert json.load(f)['host']
  assert abs(_test_split_mean('mnist', data_dir) - 30) < 1

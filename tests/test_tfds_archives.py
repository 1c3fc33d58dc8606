"""train/data/tfds_archives.py: the archives TFDS downloaded are checked
again against their published checksums, and recorded.

The archives are tiny fakes in MNIST's format (``tests/_fake_mnist.py``).
"""

import pytest

tfds = pytest.importorskip('tensorflow_datasets')
pytest.importorskip('tensorflow')

import _fake_mnist  # noqa: E402
from train.data import datasets  # noqa: E402
from train.data import tfds_source  # noqa: E402


def test_downloaded_archives_are_checked_and_recorded(tmp_path, monkeypatch):
  from tensorflow_datasets.core.download import resource  # pylint: disable=g-import-not-at-top

  infos = _fake_mnist.write_archives(tmp_path / 'fake', pixel=10)
  _fake_mnist.accept('mnist', infos, monkeypatch)
  downloads = tmp_path / 'root' / 'downloads'
  downloads.mkdir(parents=True)
  for a in datasets.TFDS_SPECS['mnist'].archives:
    target = downloads / resource.get_dl_fname(a.url, a.sha256)
    target.write_bytes((tmp_path / 'fake' / a.file).read_bytes())
  records = tfds_source._downloaded_archives('mnist', str(tmp_path / 'root'))
  assert [r['sha256'] for r in records] == [
      infos[a.file][1] for a in datasets.TFDS_SPECS['mnist'].archives
  ]
  target.write_bytes(b'damaged')
  with pytest.raises(tfds_source.ArchiveMismatch, match='7 bytes'):
    tfds_source._downloaded_archives('mnist', str(tmp_path / 'root'))

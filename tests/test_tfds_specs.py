"""train/data/tfds_specs.py: the archives of the TFDS datasets are the
published ones, as the installed TFDS registers them."""

import pytest

tfds = pytest.importorskip('tensorflow_datasets')
pytest.importorskip('tensorflow')

from train.data import datasets  # noqa: E402


def test_the_checksums_are_the_published_ones_tfds_checks():
  for name, spec in datasets.TFDS_SPECS.items():
    registered = tfds.builder_cls(spec.tfds_name).url_infos
    assert {a.url for a in spec.archives} <= set(registered), name
    for a in spec.archives:
      info = registered[a.url]
      assert (a.size, a.sha256) == (info.size, info.checksum), a.url

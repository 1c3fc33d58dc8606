"""train/data/cifar_jpg_source.py: the JPEG copy of CIFAR-10."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

PIL_Image = pytest.importorskip("PIL.Image")

from train.data import datasets  # noqa: E402
from train.data import input_pipeline as ip  # noqa: E402
from _data_helpers import CIFAR_JPG  # noqa: E402
from _data_helpers import SHARED  # noqa: E402
from _data_helpers import needs_cifar_jpg  # noqa: E402
from _data_helpers import topo  # noqa: E402


def test_cifar10_jpg_missing_is_clear(tmp_path, no_manual_env):
  with pytest.raises(ip.DatasetNotFoundError, match="--manual_dir"):
    ip.load_dataset("cifar10_jpg", data_dir=tmp_path)


@needs_cifar_jpg
def test_cifar10_jpg_real_subset(tmp_path):
  ds = ip.load_dataset(
      "cifar10_jpg",
      manual_dir=SHARED,
      cache_dir=tmp_path / "cache",
      max_per_class=20,
  )
  names = (
      "airplane",
      "automobile",
      "bird",
      "cat",
      "deer",
      "dog",
      "frog",
      "horse",
      "ship",
      "truck",
  )
  assert ds.info.class_names == names and ds.info.num_classes == 10
  assert (ds.info.num_train, ds.info.num_eval, ds.info.image_shape) == (
      200,
      200,
      (32, 32, 3),
  )
  assert ds.info.mean == datasets.MEAN_STD["cifar10"][0]
  batch = ds.eval.get_batch(np.arange(200))
  assert batch["image"].dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(batch["label"]), [20] * 10)
  # Image 20 of the test split = first (sorted) test file of class 1, decoded with Pillow.
  with tarfile.open(CIFAR_JPG) as tar:
    members = sorted(
        m.name
        for m in tar.getmembers()
        if "/automobile/" in m.name
        and m.name.split("/")[-3] == "test"
        and m.name.endswith(".jpg")
    )
    data = tar.extractfile(members[0]).read()
  np.testing.assert_array_equal(
      batch["image"][20],
      np.asarray(PIL_Image.open(io.BytesIO(data)).convert("RGB")),
  )
  ev = list(ip.eval_batches(ds.eval, 64, **topo(ldc=2)))
  assert sum(b["mask"].sum() for b in ev) == 200

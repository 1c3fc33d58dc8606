"""train/data/folder_source.py and its cache (folder_cache.py): image
folders as directories and archives."""

from __future__ import annotations

import os
import tarfile

import numpy as np
import pytest

PIL_Image = pytest.importorskip("PIL.Image")

from train.data import datasets  # noqa: E402
from train.data import folder_cache  # noqa: E402
from train.data import input_pipeline as ip  # noqa: E402
from _data_helpers import topo  # noqa: E402


def _make_folder(root, sizes=(6, 4)):
  rng = np.random.default_rng(0)
  for split, per_class in zip(("train", "test"), sizes):
    for cls in ("zebra", "ant", "moth"):  # sorted: ant=0, moth=1, zebra=2
      os.makedirs(os.path.join(root, split, cls))
      for i in range(per_class):
        array = np.full(
            (5, 6, 3), ("ant", "moth", "zebra").index(cls) * 50 + i, np.uint8
        )
        array[0, 0] = rng.integers(0, 256, 3)
        PIL_Image.fromarray(array).save(
            os.path.join(root, split, cls, f"{i:03d}.png")
        )
  (root / "train" / "ant" / ".hidden.png").write_bytes(b"not an image")


def test_image_folder_dir_and_tar(tmp_path):
  root = tmp_path / "shapes"
  _make_folder(root)
  ds = ip.load_dataset(f"imagefolder:{root}", data_dir=tmp_path / "data")
  assert (
      ds.info.class_names == ("ant", "moth", "zebra")
      and ds.info.num_classes == 3
  )
  assert (ds.info.num_train, ds.info.num_eval, ds.info.image_shape) == (
      18,
      12,
      (5, 6, 3),
  )
  assert (
      ds.info.augmentation == datasets.AUG_CROP_FLIP and len(ds.info.mean) == 3
  )
  batch = ds.train.get_batch(np.arange(18))
  np.testing.assert_array_equal(batch["label"], np.repeat([0, 1, 2], 6))
  np.testing.assert_array_equal(
      batch["image"][:, 2, 2, 0],
      np.concatenate([np.arange(6) + 50 * c for c in range(3)]),
  )  # lossless PNG, sorted file order
  cache = folder_cache.image_folder_cache_dir(root, tmp_path / "data")
  assert os.path.exists(os.path.join(cache, "train_images.npy"))
  mtime = os.path.getmtime(os.path.join(cache, "meta.json"))
  ip.load_dataset(
      f"imagefolder:{root}", data_dir=tmp_path / "data"
  )  # reuses the cache
  assert os.path.getmtime(os.path.join(cache, "meta.json")) == mtime
  # Images added to a class: a new cache, and the stale one is removed (not
  # left to fill the disk), while a cache with other options is kept.
  ip.load_dataset(
      f"imagefolder:{root}", data_dir=tmp_path / "data", max_per_class=1
  )
  subset = folder_cache.image_folder_cache_dir(
      root, tmp_path / "data", max_per_class=1
  )
  PIL_Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(
      root / "train" / "ant" / "zzz.png"
  )
  os.utime(root / "train" / "ant", (1, 1))  # A new mtime, however coarse.
  grown = ip.load_dataset(f"imagefolder:{root}", data_dir=tmp_path / "data")
  assert grown.info.num_train == 19
  new_cache = folder_cache.image_folder_cache_dir(root, tmp_path / "data")
  assert new_cache != cache and not os.path.exists(cache)
  assert sorted(os.listdir(tmp_path / "data" / "rda_imagefolder")) == sorted(
      os.path.basename(c) for c in (new_cache, subset)
  )
  os.remove(root / "train" / "ant" / "zzz.png")
  # The same folder inside a tar.gz (with a top-level folder), subset per class.
  archive = tmp_path / "shapes.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(root, arcname="shapes")
  sub = ip.load_dataset(
      f"imagefolder:{archive}", data_dir=tmp_path / "data", max_per_class=2
  )
  assert (sub.info.num_train, sub.info.num_eval) == (6, 6)
  np.testing.assert_array_equal(
      sub.train.get_batch(np.arange(6))["image"],
      batch["image"][[0, 1, 6, 7, 12, 13]],
  )
  b = next(ip.train_batches(sub.train, 4, seed=0, **topo(ldc=2)))
  assert b["image"].shape == (2, 2, 5, 6, 3)

"""train/data/sources.py: a dataset by name, from its source, in the layout
the pipeline batches (TFDS mock data)."""

from __future__ import annotations

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from train.data import datasets  # noqa: E402
from train.data import input_pipeline as ip  # noqa: E402
from _data_helpers import topo  # noqa: E402


@pytest.mark.parametrize(
    "name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))]
)
def test_mock_tfds_shapes_and_layout(name, shape):
  with tfds.testing.mock_data(num_examples=48):
    ds = ip.load_dataset(name, data_dir="/nonexistent/tfds")
  assert isinstance(
      ds.train, datasets.ArraySource
  )  # small: decoded once into memory
  assert ds.info.image_shape == shape and ds.info.num_classes == 10
  assert (ds.info.num_train, ds.info.num_eval) == (48, 48)
  batch = next(
      ip.train_batches(ds.train, 16, seed=0, **topo(pi=1, pc=2, ldc=2))
  )
  assert (
      batch["image"].shape == (2, 4, *shape)
      and batch["image"].dtype == np.uint8
  )
  assert batch["label"].shape == (2, 4) and batch["label"].dtype == np.int32
  assert ((batch["label"] >= 0) & (batch["label"] < 10)).all()
  ev = list(ip.eval_batches(ds.eval, 20, **topo(ldc=2)))
  assert [b["image"].shape for b in ev] == [(2, 10, *shape)] * 3
  assert sum(b["mask"].sum() for b in ev) == 48

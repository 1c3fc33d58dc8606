"""train/data/datasets.py: the datasets the job knows, their names and
static facts (where their files are looked for: test_data_dirs.py)."""

from __future__ import annotations

import pytest

from train.data import datasets
from train.data import input_pipeline as ip


def test_check_dataset_and_static_info():
  for name in (
      "mnist",
      "fashion_mnist",
      "cifar10",
      "cifar100",
      "imagenet2012",
      "cifar10_jpg",
  ):
    ip.check_dataset(name)
    info = ip.get_info(name)
    assert len(info.mean) == len(info.std) == info.image_shape[-1]
  ip.check_dataset("imagefolder:/some/where")
  assert ip.get_info("cifar100").num_classes == 100
  assert ip.get_info("imagenet2012").split_sizes == {
      "train": 1_281_167,
      "validation": 50_000,
  }
  with pytest.raises(ValueError, match="Unknown dataset"):
    ip.check_dataset("mnistt")

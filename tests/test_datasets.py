"""train/data/datasets.py: the datasets the job knows, their names and
static facts, and where their files are looked for."""

from __future__ import annotations

import os

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


def test_offline_copy_is_the_default_manual_dir(tmp_path, monkeypatch):
  """Without --manual_dir, a complete copy in $RDA_SHARED_DATA/<name> is used."""
  from train.data import datasets

  monkeypatch.delenv(datasets.MANUAL_DIR_ENV, raising=False)
  monkeypatch.setenv(datasets.SHARED_DATA_ENV, str(tmp_path))
  folder = tmp_path / "mnist"
  folder.mkdir()
  files = datasets.TFDS_SPECS["mnist"].manual_files
  for f in files[:-1]:
    (folder / f).write_bytes(b"")
  assert (
      datasets.resolve_manual_dir(None, "mnist") is None
  )  # incomplete copy: not used
  (folder / files[-1]).write_bytes(b"")
  assert datasets.resolve_manual_dir(None, "mnist") == str(folder)
  assert (
      datasets.resolve_manual_dir("/explicit", "mnist") == "/explicit"
  )  # the flag wins
  monkeypatch.setenv(datasets.MANUAL_DIR_ENV, "/from_env")
  assert datasets.resolve_manual_dir(None, "mnist") == "/from_env"


def test_the_shared_data_folder_defaults_to_beside_the_checkout(monkeypatch):
  """Without $RDA_SHARED_DATA the offline copies are looked for in
  ../shared/data beside the checkout (the folder holding train/), not
  beside train/ (which train/data/ once was)."""
  monkeypatch.delenv(datasets.SHARED_DATA_ENV, raising=False)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  want = os.path.normpath(os.path.join(repo, os.pardir, "shared", "data"))
  assert datasets.shared_data_dir() == (want if os.path.isdir(want) else None)

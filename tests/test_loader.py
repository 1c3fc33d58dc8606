"""train/data/loader.py: the Data the training loop consumes, and a dataset
that cannot be loaded as a one-line ConfigError."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
tfds = pytest.importorskip("tensorflow_datasets")

import jax.numpy as jnp  # noqa: E402

from train.data import loader as data_lib  # noqa: E402


def test_create_data_for_the_training_loop():
  import types

  cfg = types.SimpleNamespace(
      dataset="cifar10",
      data_dir="/nonexistent/tfds",
      manual_dir=None,
      batch_size=8,
      eval_batch=16,
      seed=0,
      train_split="train",
      eval_split="test",
  )
  with tfds.testing.mock_data(num_examples=40):
    data = data_lib.create_data(cfg)
  assert (data.num_classes, data.image_shape, data.num_train_examples) == (
      10,
      (32, 32, 3),
      40,
  )
  batch = next(data.train_batches(3))
  assert batch["image"].shape == (1, 8, 32, 32, 3) and isinstance(
      batch["image"], jax.Array
  )
  assert (
      sum(float(np.asarray(b["mask"]).sum()) for b in data.eval_batches()) == 40
  )
  x = data.preprocess(batch["image"][0], jax.random.key(0), True)
  assert x.shape == (8, 32, 32, 3) and x.dtype == jnp.float32


def test_a_damaged_archive_is_one_line_by_its_tfds_type(monkeypatch):
  """TFDS's checksum error is recognised by its type (where TFDS defines
  it), not by its class name: another error of that name passes through."""
  import sys
  import types

  from train import config as config_lib

  where = "tensorflow_datasets.core.download.download_manager"
  module = sys.modules.get(where)
  if module is None:  # TFDS not imported in this process: a stand-in.
    module = types.ModuleType(where)
    module.NonMatchingChecksumError = type(
        "NonMatchingChecksumError", (Exception,), {}
    )
    monkeypatch.setitem(sys.modules, where, module)
  cfg = types.SimpleNamespace(dataset="mnist", batch_size=8, seed=0)

  def raising(error):
    def load(_):
      raise error

    return load

  monkeypatch.setattr(
      data_lib,
      "_load",
      raising(
          module.NonMatchingChecksumError(
              "Artifact https://x/train-images-idx3-ubyte.gz, downloaded to "
              "...\n  * Got: UrlInfo(size=10, checksum='ab', "
              "filename='train-images-idx3-ubyte.gz')"
          )
      ),
  )
  with pytest.raises(config_lib.ConfigError) as e:
    data_lib.create_data(cfg)
  assert str(e.value) == (
      "Cannot prepare dataset 'mnist': train-images-idx3-ubyte.gz does not "
      "match its published checksum (truncated or damaged); replace it with "
      "the original archive (in --manual_dir or the TFDS download folder)."
  )
  namesake = type("NonMatchingChecksumError", (Exception,), {})
  monkeypatch.setattr(data_lib, "_load", raising(namesake("not TFDS")))
  with pytest.raises(namesake):
    data_lib.create_data(cfg)

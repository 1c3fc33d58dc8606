"""train/data/tfds_source.py: TFDS datasets: mock data, a missing dataset
offline (fails at once, saying how to supply it), real MNIST prepared and
read without TensorFlow."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from train.data import datasets  # noqa: E402
from train.data import decode  # noqa: E402
from train.data import input_pipeline as ip  # noqa: E402
from train.data import tfds_source  # noqa: E402
from _data_helpers import MNIST_DIR  # noqa: E402
from _data_helpers import MNIST_TEST_COUNTS  # noqa: E402
from _data_helpers import needs_mnist  # noqa: E402
from _data_helpers import run_python  # noqa: E402
from _data_helpers import topo  # noqa: E402


def test_mock_imagenet_host_crops():
  with tfds.testing.mock_data(num_examples=12):
    ds = ip.load_dataset(
        "imagenet2012", data_dir="/nonexistent/tfds", image_size=40
    )
    assert ds.info.eval_split == "validation" and ds.info.num_classes == 1000
    assert (
        ds.info.image_shape == (40, 40, 3)
        and ds.info.augmentation == datasets.AUG_FLIP
    )
    assert isinstance(
        ds.train, decode.TFDSImageSource
    )  # streamed, never all in memory
    a = ds.train.get_batch(np.arange(6), seeds=np.arange(6))
    b = ds.train.get_batch(np.arange(6), seeds=np.arange(6))
    c = ds.train.get_batch(np.arange(6), seeds=np.arange(6) + 100)
    e = ds.eval.get_batch(np.arange(6))
  assert a["image"].shape == (6, 40, 40, 3) and a["image"].dtype == np.uint8
  np.testing.assert_array_equal(
      a["image"], b["image"]
  )  # seeded crops are reproducible
  assert not np.array_equal(a["image"], c["image"])
  assert e["image"].shape == (6, 40, 40, 3)


def _assert_helpful(message):
  for needle in (
      "--manual_dir",
      datasets.MANUAL_DIR_ENV,
      "--data_dir",
      "array_record",
  ):
    assert needle in message, message


def test_missing_dataset_without_download_fails_fast(
    tmp_path, no_manual_env, monkeypatch
):
  calls = []
  monkeypatch.setattr(
      tfds_source, "probe_url", lambda url, timeout=4.0: calls.append(url)
  )
  with pytest.raises(ip.DatasetNotFoundError) as e:
    ip.load_dataset("cifar100", data_dir=tmp_path, download=False)
  assert not calls  # No network at all: nothing to wait for.
  _assert_helpful(str(e.value))
  assert "cifar-100-binary.tar.gz" in str(e.value)


def test_missing_dataset_offline_fails_fast(
    tmp_path, no_manual_env, monkeypatch
):
  calls = []
  monkeypatch.setattr(
      tfds_source,
      "probe_url",
      lambda url, timeout=4.0: calls.append(url) or "simulated",
  )
  with pytest.raises(ip.DatasetNotFoundError, match="offline") as e:
    ip.load_dataset("fashion_mnist", data_dir=tmp_path)
  assert calls  # One probe (with its timeout) decides, before any download.
  _assert_helpful(str(e.value))


def test_missing_dataset_really_offline(tmp_path, no_manual_env):
  """The real network probe: here (no internet) it must fail within seconds, not minutes."""
  if (
      tfds_source.probe_url(datasets.TFDS_SPECS["fashion_mnist"].probe_url)
      is None
  ):
    pytest.skip("this machine is online: TFDS would download fashion_mnist")
  start = time.perf_counter()
  with pytest.raises(ip.DatasetNotFoundError, match="offline"):
    ip.load_dataset("fashion_mnist", data_dir=tmp_path)
  assert time.perf_counter() - start < 20


def test_probe_of_unreachable_host_is_fast():
  start = time.perf_counter()
  reason = tfds_source.probe_url("http://host.invalid/file.gz", timeout=2.0)
  assert reason is not None and time.perf_counter() - start < 5


def test_imagenet_needs_manual_dir(tmp_path, no_manual_env):
  with pytest.raises(
      ip.DatasetNotFoundError, match="ILSVRC2012_img_train.tar"
  ) as e:
    ip.load_dataset("imagenet2012", data_dir=tmp_path)
  _assert_helpful(str(e.value))


def test_manual_dir_missing_files(tmp_path, monkeypatch):
  monkeypatch.setenv(datasets.MANUAL_DIR_ENV, str(tmp_path / "manual"))
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "train-images-idx3-ubyte.gz").write_bytes(b"")
  with pytest.raises(
      ip.DatasetNotFoundError, match="lacks train-labels-idx1-ubyte.gz"
  ) as e:
    ip.load_dataset("mnist", data_dir=tmp_path / "data")
  assert "t10k-images-idx3-ubyte.gz" in str(e.value)


@pytest.fixture(scope="module")
def mnist_dir(prepared_mnist):
  # Prepared once per session (tests/conftest.py); preparing again finds it.
  path = ip.prepare_dataset(
      "mnist", data_dir=prepared_mnist, manual_dir=MNIST_DIR
  )
  assert os.path.exists(os.path.join(path, "dataset_info.json"))
  return prepared_mnist


@needs_mnist
def test_real_mnist_prepared_and_read(mnist_dir):
  ds = ip.load_dataset("mnist", data_dir=mnist_dir, in_memory=False)
  assert (ds.info.num_train, ds.info.num_eval) == (60_000, 10_000)
  labels = np.concatenate(
      [
          b["label"][b["mask"] == 1]
          for b in ip.eval_batches(ds.eval, 1024, **topo(ldc=2))
      ]
  )
  np.testing.assert_array_equal(np.bincount(labels), MNIST_TEST_COUNTS)
  it = ip.train_batches(ds.train, 256, seed=0, **topo(ldc=2))
  batch = next(it)
  assert (
      batch["image"].shape == (2, 128, 28, 28, 1)
      and batch["image"].dtype == np.uint8
  )
  assert 20 < batch["image"].mean() < 50  # real digits (MNIST mean pixel ~33)
  # prepare is a no-op the second time
  start = time.perf_counter()
  ip.prepare_dataset("mnist", data_dir=mnist_dir)
  assert time.perf_counter() - start < 5


# Hides TensorFlow as if it were not installed. (`sys.modules['tensorflow'] = None` is not usable:
# TFDS/etils decide "TF is loaded" from `'tensorflow' in sys.modules` and then crash importing it.)
NO_TF = """
    import sys
    class _HideTF:
        def __init__(self, finder):
            self.finder = finder
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                return None
            find = getattr(self.finder, "find_spec", None)
            return find(name, path, target) if find else None
        def __getattr__(self, attr):
            return getattr(self.finder, attr)
    sys.meta_path[:] = [_HideTF(f) for f in sys.meta_path]
    try:
        import tensorflow
        raise SystemExit("tensorflow is still importable")
    except ImportError:
        pass
"""


@needs_mnist
def test_reading_needs_no_tensorflow(mnist_dir):
  out = run_python(NO_TF + f"""
    import json, numpy as np
    from train.data import input_pipeline as ip
    ds = ip.load_dataset("mnist", data_dir={mnist_dir!r}, in_memory=False)
    batches = list(ip.train_batches(ds.train, 64, seed=1, num_steps=3, process_index=0,
                                    process_count=1, local_device_count=1))
    ev = next(ip.eval_batches(ds.eval, 500, process_index=0, process_count=1, local_device_count=1))
    try:
        ip.prepare_dataset("fashion_mnist", data_dir={mnist_dir!r}, manual_dir={MNIST_DIR!r})
        prepare_error = None
    except ImportError as e:
        prepare_error = str(e)
    print(json.dumps({{
        "shape": list(batches[0]["image"].shape), "dtype": str(batches[0]["image"].dtype),
        "mean": float(np.mean([b["image"].mean() for b in batches])),
        "eval_labels": np.bincount(ev["label"].ravel(), minlength=10).tolist(),
        "tf_modules": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
        "prepare_error": prepare_error}}))
    """)
  assert out["tf_modules"] == []
  assert out["shape"] == [1, 64, 28, 28, 1] and out["dtype"] == "uint8"
  assert 20 < out["mean"] < 50 and sum(out["eval_labels"]) == 500
  assert "pip install 'rda-optax[prepare]'" in out["prepare_error"]

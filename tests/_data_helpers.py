"""Helpers of the data-layer tests (train/data/): where the real data is,
small sources, a Python subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from train.data import datasets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


SHARED = os.environ.get(
    "RDA_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")
)


MNIST_DIR = os.path.join(SHARED, "mnist")


CIFAR_JPG = os.path.join(SHARED, "cifar10-jpg.tar.gz")


HAVE_MNIST = all(
    os.path.exists(os.path.join(MNIST_DIR, f)) for f in datasets.MNIST_FILES
)


HAVE_CIFAR_JPG = os.path.exists(CIFAR_JPG)


needs_mnist = pytest.mark.skipif(
    not HAVE_MNIST,
    reason=f"real MNIST archives not found in {MNIST_DIR} "
    "(set RDA_SHARED_DATA to the shared data folder)",
)


needs_cifar_jpg = pytest.mark.skipif(
    not HAVE_CIFAR_JPG,
    reason=f"{CIFAR_JPG} not found "
    "(set RDA_SHARED_DATA to the shared data folder)",
)


# Official MNIST label counts.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def topo(pi=0, pc=1, ldc=1):
  return dict(process_index=pi, process_count=pc, local_device_count=ldc)


def index_source(n, shape=(2, 2, 1)):
  """An ArraySource whose label is the example index (and pixel 0 its low byte)."""
  images = np.zeros((n, *shape), np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  return datasets.ArraySource(images, np.arange(n, dtype=np.int32))


def run_python(code, env_extra=None, timeout=240):
  env = dict(
      os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", **(env_extra or {})
  )
  proc = subprocess.run(
      [sys.executable, "-c", textwrap.dedent(code)],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=timeout,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])

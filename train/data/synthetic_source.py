"""A synthetic dataset in memory: learnable, deterministic, instant.

``synthetic[:HxWxC][:classes][:augmentation]`` (default ``28x28x1:10``, no
augmentation): each class has a fixed random binary template (0 or 192); an
image is its class's template plus uniform noise in [0, 64), so a small
network learns it in a few steps. ``:flip`` or ``:crop_flip`` trains with
that on-device augmentation (:mod:`train.data.augment`), as CIFAR does.
Tests and benchmarks use it; it goes through the same batching as the real
datasets (:mod:`train.data.input_pipeline`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .datasets import AUG_NONE
from .datasets import SYNTHETIC_NAME
from .datasets import ArraySource
from .datasets import Dataset
from .datasets import DatasetInfo
from .datasets import is_synthetic  # noqa: F401  (export reads it)

NUM_TRAIN = 1024
NUM_EVAL = 200


def preprocess(images, key, train):
  """uint8 images -> float32 in [0, 1] (no augmentation, no normalisation)."""
  del key, train
  return images.astype(jnp.float32) / 255.0


def load_synthetic(
    name: str = 'synthetic',
    *,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_EVAL,
) -> Dataset:
  """The synthetic dataset ``name``.

  The images do not depend on any seed: the train split is always the
  same, and so is the eval split.

  Args:
    name: ``synthetic[:HxWxC][:classes][:augmentation]``.
    num_train: train examples.
    num_eval: eval examples.

  Returns:
    The dataset: pixels / 255 (its own ``preprocess``), or the same with the
    augmentation through the datasets' preprocessing.
  """
  m = SYNTHETIC_NAME.match(name)
  if not m:
    raise ValueError(f'Not a synthetic dataset name: {name!r}')
  h, w, c = (
      int(m.group(i)) if m.group(i) else d
      for i, d in ((1, 28), (2, 28), (3, 1))
  )
  classes = int(m.group(4)) if m.group(4) else 10
  rng = np.random.default_rng(1234)
  templates = rng.integers(0, 2, size=(classes, h, w, c), dtype=np.int64) * 192

  def make(n, offset):
    r = np.random.default_rng(offset)
    labels = r.integers(0, classes, size=n).astype(np.int32)
    noise = r.integers(0, 64, size=(n, h, w, c))
    images = (templates[labels] + noise).clip(0, 255).astype(np.uint8)
    return ArraySource(images, labels)

  info = DatasetInfo(
      name,
      classes,
      (h, w, c),
      'train',
      'test',
      num_train,
      num_eval,
      (0.0,) * c,
      (1.0,) * c,
      m.group(5) or AUG_NONE,
  )
  # Augmented: the datasets' preprocessing (mean 0, std 1: the same pixels).
  own = None if m.group(5) else preprocess
  return Dataset(info, make(num_train, 1), make(num_eval, 2), own)

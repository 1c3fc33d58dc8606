"""The datasets the training job knows, and what a loaded one looks like.

Static facts only, no I/O beyond looking for folders:

* :data:`DATASETS`: the :class:`DatasetInfo` of every named dataset (TFDS
  datasets and the CIFAR-10 JPEG copy); ``imagefolder:<path>`` and
  ``synthetic[:HxWxC][:classes]`` datasets get theirs when loaded;
  :data:`TEXT_DATASETS`: the :class:`TextSpec` of every text corpus
  (``shakespeare_char``: a character-level language-model task, loaded by
  :mod:`train.data.text_source`; :mod:`train.data.text_datasets`);
* which names a source can load (:func:`check_dataset`; light, for the
  command line's checks);
* the TFDS specs (file names of a manual download folder, a URL to probe;
  :mod:`train.data.tfds_specs`), the per-channel statistics
  :data:`MEAN_STD` and the augmentation kinds that :mod:`train.data.augment`
  applies on the device;
* where data lives: :func:`default_data_dir`, :func:`shared_data_dir`,
  :func:`resolve_manual_dir` (:mod:`train.data.data_dirs`);
* a loaded dataset: :class:`Dataset` of two random-access sources
  (:class:`Source`, e.g. :class:`ArraySource`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Protocol

import numpy as np

# The static facts of each kind, each in a module of its own; their names
# are this module's too (train.data.datasets.TFDS_SPECS, ...).
# pylint: disable=unused-import
from .data_dirs import MANUAL_DIR_ENV
from .data_dirs import PREPARE_HINT
from .data_dirs import SHARED_DATA_ENV
from .data_dirs import default_data_dir
from .data_dirs import resolve_manual_dir
from .data_dirs import shared_data_dir
from .text_datasets import SHAKESPEARE
from .text_datasets import TEXT_DATASETS
from .text_datasets import TextSpec
from .text_datasets import eval_size
from .text_datasets import is_text
from .text_datasets import text_eval_size
from .tfds_specs import MNIST_FILES
from .tfds_specs import TFDS_DATASETS
from .tfds_specs import TFDS_SPECS
from .tfds_specs import Archive
from .tfds_specs import TfdsSpec

# pylint: enable=unused-import

# Augmentation kinds (applied on the device by train.data.augment.preprocess).
AUG_NONE = 'none'  # Normalisation only (MNIST-like).
AUG_CROP_FLIP = 'crop_flip'  # 4-pixel-padded random crop + flip (CIFAR).
AUG_FLIP = 'flip'  # Flip only (ImageNet: the resized crop is on the host).

# Per-channel statistics of [0, 1]-scaled pixels.
MEAN_STD = {
    'mnist': ((0.1307,), (0.3081,)),
    'fashion_mnist': ((0.2860,), (0.3530,)),
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    'cifar100': ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    'imagenet': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class DatasetNotFoundError(FileNotFoundError):
  """The dataset is neither prepared nor obtainable.

  Offline without a manual folder, or a manual folder that lacks files.
  """


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static facts about a dataset, as delivered by this pipeline.

  Attributes:
    name: the dataset's name.
    num_classes: the number of labels.
    image_shape: the (H, W, C) of the uint8 images in the batches (for
      ImageNet the host-side crop size, 224 by default).
    train_split: the train split's name.
    eval_split: the eval split's name.
    num_train: examples in the train split.
    num_eval: examples in the eval split.
    mean: per-channel mean of [0, 1] pixels.
    std: per-channel standard deviation of [0, 1] pixels.
    augmentation: ``AUG_NONE``, ``AUG_CROP_FLIP`` or ``AUG_FLIP``.
    class_names: the class names, when known.
  """

  name: str
  num_classes: int
  image_shape: tuple[int, int, int]
  train_split: str
  eval_split: str
  num_train: int
  num_eval: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  augmentation: str
  class_names: tuple[str, ...] | None = None

  @property
  def split_sizes(self) -> dict[str, int]:
    return {self.train_split: self.num_train, self.eval_split: self.num_eval}


def _info(name, classes, shape, sizes, stats, augmentation, eval_split='test'):
  return DatasetInfo(
      name, classes, shape, 'train', eval_split, *sizes, *MEAN_STD[stats],
      augmentation,
  )  # fmt: skip


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _info('mnist', 10, (28, 28, 1), (60_000, 10_000), 'mnist', AUG_NONE),
        _info(
            'fashion_mnist',
            10,
            (28, 28, 1),
            (60_000, 10_000),
            'fashion_mnist',
            AUG_NONE,
        ),
        _info(
            'cifar10', 10, (32, 32, 3), (50_000, 10_000), 'cifar10',
            AUG_CROP_FLIP,
        ),  # fmt: skip
        _info(
            'cifar100', 100, (32, 32, 3), (50_000, 10_000), 'cifar100',
            AUG_CROP_FLIP,
        ),  # fmt: skip
        _info(
            'imagenet2012', 1000, (224, 224, 3), (1_281_167, 50_000),
            'imagenet', AUG_FLIP, eval_split='validation',
        ),  # fmt: skip
        # Lossy JPEG copy of CIFAR-10 (image folder); CIFAR-10 statistics,
        # see train.data.sources.load_dataset.
        _info(
            'cifar10_jpg', 10, (32, 32, 3), (50_000, 10_000), 'cifar10',
            AUG_CROP_FLIP,
        ),  # fmt: skip
    )
}


def check_splits(name: str, train_split: str, eval_split: str) -> None:
  """A text corpus's splits (no I/O): it trains on ``train`` and evaluates
  on :func:`text_eval_size`'s slice; image datasets are checked where they
  are loaded.

  Raises:
    ValueError: naming the splits it has.
  """
  if not is_text(name):
    return
  if train_split not in ('train', '', None):
    raise ValueError(
        f'--train_split {train_split!r}: {name} trains on its first '
        f'{1 - TEXT_DATASETS[name].eval_fraction:.0%} of characters, '
        "'train' (the held-out slice is --eval_split)."
    )
  text_eval_size(eval_split, TEXT_DATASETS[name].num_eval)


IMAGEFOLDER_PREFIX = 'imagefolder:'
# ``synthetic[:HxWxC][:classes][:augmentation]``: train.data.synthetic_source.
SYNTHETIC_NAME = re.compile(
    r'^synthetic(?::(\d+)x(\d+)x(\d+))?(?::(\d+))?'
    rf'(?::({AUG_FLIP}|{AUG_CROP_FLIP}))?$'
)


def is_synthetic(name: str) -> bool:
  """Whether ``name`` names a synthetic dataset."""
  return bool(SYNTHETIC_NAME.match(name))


def check_dataset(name: str) -> None:
  """Raises ValueError for a dataset name no source can load (no I/O)."""
  if name in DATASETS or is_text(name) or is_synthetic(name):
    return
  if name.startswith(IMAGEFOLDER_PREFIX) and len(name) > len(
      IMAGEFOLDER_PREFIX
  ):
    return
  raise ValueError(
      f'Unknown dataset {name!r}: use one of '
      f"{', '.join(sorted(DATASETS) + sorted(TEXT_DATASETS))} "
      "or 'imagefolder:<path>' (a <split>/<class>/<image> folder or "
      '.tar.gz).'
  )


def unknown_dataset_message(name: str) -> str:
  """The error message of a dataset name no source knows."""
  return (
      f'Unknown dataset {name!r}; known: '
      f'{sorted(DATASETS) + sorted(TEXT_DATASETS)} or '
      "'imagefolder:<path>'"
  )


def get_info(name: str) -> DatasetInfo:
  """Static metadata of a named dataset (no I/O).

  Args:
    name: a key of :data:`DATASETS`.

  Returns:
    Its :class:`DatasetInfo`.

  Raises:
    ValueError: for an unknown name, or an ``imagefolder:`` dataset (its
      metadata is known only after ``load_dataset``).
  """
  if name in DATASETS:
    return DATASETS[name]
  if name.startswith(IMAGEFOLDER_PREFIX):
    raise ValueError(
        f'{name!r}: metadata of an image folder is known only '
        'after loading it (use load_dataset(name).info)'
    )
  raise ValueError(unknown_dataset_message(name))


# ---------------------------------------------------------------------------
# Sources and loaded datasets.
# ---------------------------------------------------------------------------


class Source(Protocol):
  """A random-access split.

  ``get_batch`` returns uint8 images (n, H, W, C) and int32 labels (n,).
  """

  image_shape: tuple[int, int, int]

  def __len__(self) -> int:
    ...

  def get_batch(
      self, indices: np.ndarray, seeds: np.ndarray | None = None
  ) -> dict[str, np.ndarray]:
    ...


class ArraySource:
  """A split held in (possibly memory-mapped) numpy arrays.

  Args:
    images: uint8 NHWC images.
    labels: one label per image.
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    if images.ndim != 4 or images.dtype != np.uint8:
      raise ValueError(
          f'images must be uint8 NHWC, got {images.dtype} {images.shape}'
      )
    if len(images) != len(labels):
      raise ValueError(f'{len(images)} images but {len(labels)} labels')
    self.images = images
    self.labels = np.asarray(labels, np.int32)
    self.image_shape = tuple(int(d) for d in images.shape[1:])

  def __len__(self) -> int:
    return len(self.labels)

  def get_batch(self, indices, seeds=None):
    """The examples ``indices`` as ``{'image', 'label'}``."""
    del seeds  # Deterministic decoding; augmentation happens on the device.
    indices = np.asarray(indices, np.int64)
    return {
        'image': np.asarray(self.images[indices]),
        'label': self.labels[indices],
    }


@dataclasses.dataclass
class Dataset:
  """A loaded dataset: metadata plus the train and eval sources.

  Attributes:
    info: its metadata.
    train: the train split.
    eval: the eval split.
    preprocess: the device-side ``preprocess(images, key, train)`` of its
      batches; None: :func:`train.data.augment.preprocess` with ``info``.
  """

  info: DatasetInfo
  train: Source
  eval: Source
  preprocess: Callable[[Any, Any, bool], Any] | None = None

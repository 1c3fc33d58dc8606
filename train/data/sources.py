"""A dataset by name: which source loads or prepares it.

* TFDS datasets (``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``,
  ``imagenet2012``): :mod:`train.data.tfds_source`.
* Image folders (``cifar10_jpg``, found by :mod:`train.data.cifar_jpg_source`;
  ``imagefolder:<path>``): :mod:`train.data.folder_source`.
* ``synthetic[:HxWxC][:classes]``: :mod:`train.data.synthetic_source`.
* Text corpora (``shakespeare_char``, a language-model task, not images):
  :mod:`train.data.text_source`, batched by :mod:`train.data.text_pipeline`;
  :func:`load_dataset` and :func:`prepare_dataset` refuse them.

Every source gives a :class:`~train.data.datasets.Dataset` of two
random-access splits, batched by :mod:`train.data.input_pipeline`.
"""

from __future__ import annotations

from .datasets import DATASETS
from .datasets import IMAGEFOLDER_PREFIX
from .datasets import TFDS_SPECS
from .datasets import Dataset
from .datasets import check_dataset  # noqa: F401  (re-exported)
from .datasets import is_text
from .datasets import unknown_dataset_message
from .cifar_jpg_source import find_cifar10_jpg
from .folder_source import load_image_folder
from .folder_source import prepare_image_folder
from .synthetic_source import is_synthetic
from .synthetic_source import load_synthetic
from .tfds_source import load_tfds
from .tfds_source import prepare_tfds


def load_dataset(
    name: str,
    *,
    data_dir=None,
    manual_dir=None,
    download: bool = True,
    image_size: int | None = None,
    in_memory: bool | None = None,
    num_workers: int | None = None,
    max_per_class: int | None = None,
    cache_dir=None,
    train_split: str | None = None,
    eval_split: str | None = None,
) -> Dataset:
  """Loads a dataset by name, preparing it first if needed.

  Names: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``,
  ``imagenet2012`` (TFDS, array_record, read without TensorFlow),
  ``cifar10_jpg`` (the JPEG copy of CIFAR-10, found in
  ``manual_dir``/``RDA_MANUAL_DIR``/``data_dir``; normalised with the
  CIFAR-10 statistics), ``imagefolder:<path>`` (any
  ``<split>/<class>/<image>`` folder or tar archive), and
  ``synthetic[:HxWxC][:classes]`` (in memory; the other arguments do not
  apply).

  Args:
    name: the dataset.
    data_dir: the TFDS data folder (default ``TFDS_DATA_DIR`` or
      ``~/tensorflow_datasets``); image folders keep their cache there.
    manual_dir: folder with the original archives, used to prepare offline
      (default env ``RDA_MANUAL_DIR``).
    download: allow TFDS downloads.
    image_size: ImageNet crop size (default 224) or image-folder resize.
    in_memory: decode TFDS splits into RAM once (default: True when both
      splits fit in 4 GiB, i.e. MNIST/CIFAR; never for ImageNet).
    num_workers: decoding threads.
    max_per_class: image folders only: a subset.
    cache_dir: image folders only: the cache location.
    train_split: TFDS split name or slice (default ``info``'s: ``train``).
    eval_split: TFDS split name or slice (default ``info``'s: ``test``,
      ``validation`` for ImageNet).

  Returns:
    ``Dataset(info, train, eval)``.
  """
  if name in TFDS_SPECS:
    return load_tfds(
        name,
        data_dir=data_dir,
        manual_dir=manual_dir,
        download=download,
        image_size=image_size,
        in_memory=in_memory,
        num_workers=num_workers,
        train_split=train_split,
        eval_split=eval_split,
    )
  if name == 'cifar10_jpg':
    path = find_cifar10_jpg(manual_dir, data_dir)
    info = DATASETS['cifar10_jpg']
    return load_image_folder(
        path,
        name=name,
        cache_dir=cache_dir,
        data_dir=data_dir,
        image_size=image_size,
        max_per_class=max_per_class,
        num_workers=num_workers,
        mean_std=(info.mean, info.std),
        augmentation=info.augmentation,
    )
  if name.startswith(IMAGEFOLDER_PREFIX):
    return load_image_folder(
        name[len(IMAGEFOLDER_PREFIX) :],
        name=name,
        cache_dir=cache_dir,
        data_dir=data_dir,
        image_size=image_size,
        max_per_class=max_per_class,
        num_workers=num_workers,
    )
  if is_synthetic(name):
    return load_synthetic(name)
  if is_text(name):
    raise ValueError(_TEXT.format(name=name))
  raise ValueError(unknown_dataset_message(name))


def prepare_dataset(
    name: str,
    *,
    data_dir=None,
    manual_dir=None,
    download: bool = True,
    image_size: int | None = None,
    max_per_class: int | None = None,
) -> str:
  """Prepares a dataset once.

  TFDS datasets as array_record, image folders as their .npy cache.

  Args:
    name: the dataset (not a synthetic one: it needs no preparation).
    data_dir: see :func:`load_dataset`.
    manual_dir: see :func:`load_dataset`.
    download: see :func:`load_dataset`.
    image_size: see :func:`load_dataset`.
    max_per_class: see :func:`load_dataset`.

  Returns:
    The prepared folder.
  """
  if name in TFDS_SPECS:
    return prepare_tfds(
        name, data_dir=data_dir, manual_dir=manual_dir, download=download
    )
  if name == 'cifar10_jpg' or name.startswith(IMAGEFOLDER_PREFIX):
    path = (
        find_cifar10_jpg(manual_dir, data_dir)
        if name == 'cifar10_jpg'
        else name[len(IMAGEFOLDER_PREFIX) :]
    )
    return prepare_image_folder(
        path,
        data_dir=data_dir,
        image_size=image_size,
        max_per_class=max_per_class,
    )
  if is_text(name):
    raise ValueError(_TEXT.format(name=name))
  raise ValueError(unknown_dataset_message(name))


_TEXT = (
    '{name!r} is a text corpus, not images: load it with '
    'train.data.text_source.load_text (nothing to prepare; python -m '
    'train.data info {name} shows it).'
)

"""Image folders (the CIFAR-10 JPEG copy is found by :mod:`train.data.cifar_jpg_source`).

An image folder (``cifar10_jpg`` or ``imagefolder:<path>``) is
``root/<split>/<class>/<file>`` (``.jpg``/``.png``/...), as a directory or
inside a ``.tar``/``.tar.gz``. It is decoded once with Pillow into a uint8
``.npy`` cache (memory-mapped when read); the class index is the position
in the sorted list of class folder names (the cache:
:mod:`train.data.folder_cache`).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from .datasets import AUG_CROP_FLIP
from .datasets import AUG_FLIP
from .datasets import IMAGEFOLDER_PREFIX
from .datasets import ArraySource
from .datasets import Dataset
from .datasets import DatasetInfo
from .datasets import DatasetNotFoundError
from .folder_cache import build_image_folder_cache
from .folder_cache import image_folder_cache_dir
from .folder_cache import remove_superseded

log = logging.getLogger(__name__)

_EVAL_SPLIT_NAMES = ('test', 'val', 'validation')


def load_image_folder(
    path,
    *,
    name: str | None = None,
    cache_dir=None,
    data_dir=None,
    image_size: int | None = None,
    max_per_class: int | None = None,
    num_workers: int | None = None,
    mean_std=None,
    augmentation: str | None = None,
) -> Dataset:
  """Loads ``root/<split>/<class>/<image>`` (folder or tar) via a .npy cache.

  The train split is ``train``; the eval split the first of ``test``,
  ``val``, ``validation``.

  Args:
    path: the image folder or archive.
    name: the dataset's name (default ``imagefolder:<path>``).
    cache_dir: the cache (default
      ``<data_dir>/rda_imagefolder/<stem>-<hash>``, keyed on the source's
      sizes and times; a new default cache replaces the superseded ones of
      the same source and options).
    data_dir: the data folder (default TFDS's).
    image_size: resizes every image to this square.
    max_per_class: keeps the first files of each class and split.
    num_workers: decoding threads.
    mean_std: the normalisation (default the train split's statistics).
    augmentation: default crop+flip for images up to 64 px, flip only above.

  Returns:
    The dataset, memory-mapped from the cache.
  """
  path = os.path.expanduser(os.fspath(path))
  if not os.path.exists(path):
    raise DatasetNotFoundError(f'image folder {path} does not exist')
  name = name or IMAGEFOLDER_PREFIX + path
  default_cache = cache_dir is None
  if default_cache:
    cache_dir = image_folder_cache_dir(
        path, data_dir, image_size, max_per_class
    )
  cache_dir = os.fspath(cache_dir)
  if not os.path.exists(os.path.join(cache_dir, 'meta.json')):
    log.info('Decoding image folder %s into %s (once)', path, cache_dir)
    build_image_folder_cache(
        path,
        cache_dir,
        image_size=image_size,
        max_per_class=max_per_class,
        num_workers=num_workers,
    )
    if default_cache:
      remove_superseded(cache_dir)
  with open(os.path.join(cache_dir, 'meta.json')) as f:
    meta = json.load(f)
  splits = meta['splits']
  if 'train' not in splits:
    raise DatasetNotFoundError(
        f"{path}: no 'train' split (found {sorted(splits)})"
    )
  eval_split = next((s for s in _EVAL_SPLIT_NAMES if s in splits), None)
  if eval_split is None:
    raise DatasetNotFoundError(
        f'{path}: no eval split {_EVAL_SPLIT_NAMES} '
        f'(found {sorted(splits)})'
    )

  def source(split):
    images = np.load(
        os.path.join(cache_dir, f'{split}_images.npy'), mmap_mode='r'
    )
    labels = np.load(os.path.join(cache_dir, f'{split}_labels.npy'))
    return ArraySource(images, labels)

  train, evaluation = source('train'), source(eval_split)
  shape = tuple(splits['train']['image_shape'])
  if mean_std is None:
    mean_std = (tuple(splits['train']['mean']), tuple(splits['train']['std']))
  if augmentation is None:
    augmentation = AUG_CROP_FLIP if max(shape[:2]) <= 64 else AUG_FLIP
  info = DatasetInfo(
      name=name,
      num_classes=len(meta['classes']),
      image_shape=shape,
      train_split='train',
      eval_split=eval_split,
      num_train=len(train),
      num_eval=len(evaluation),
      mean=tuple(mean_std[0]),
      std=tuple(mean_std[1]),
      augmentation=augmentation,
      class_names=tuple(meta['classes']),
  )
  return Dataset(info, train, evaluation)


def prepare_image_folder(
    path, *, data_dir=None, image_size=None, max_per_class=None
) -> str:
  """Builds the default cache of an image folder unless it exists.

  Returns:
    The cache folder.
  """
  path = os.path.expanduser(path)
  cache_dir = image_folder_cache_dir(path, data_dir, image_size, max_per_class)
  if not os.path.exists(os.path.join(cache_dir, 'meta.json')):
    build_image_folder_cache(
        path, cache_dir, image_size=image_size, max_per_class=max_per_class
    )
    remove_superseded(cache_dir)
  return cache_dir

"""The CIFAR-10 JPEG copy (``cifar10_jpg``), found among the data folders.

It is an image folder (``train/<class>/*.jpg`` and ``test/<class>/*.jpg``,
as a directory or an archive), loaded by :mod:`train.data.folder_source`; this
module only finds it: in the manual folder, the data folder, or the shared
data folder.
"""

from __future__ import annotations

import os

from .datasets import MANUAL_DIR_ENV
from .datasets import DatasetNotFoundError
from .datasets import resolve_manual_dir
from .datasets import shared_data_dir
from .folder_cache import is_archive

_CIFAR10_JPG_NAMES = (
    'cifar10-jpg.tar.gz',
    'cifar10-jpg.tgz',
    'cifar10-jpg.tar',
    'cifar10-jpg',
    'cifar10_jpg',
)


def find_cifar10_jpg(manual_dir=None, data_dir=None) -> str:
  """Locates the CIFAR-10 JPEG copy.

  Args:
    manual_dir: the manual folder (see
      :func:`train.data.datasets.resolve_manual_dir`).
    data_dir: the data folder.

  Returns:
    The first of the manual folder, ``data_dir`` and the shared data folder
    that is the copy itself, or the copy under one of its usual names inside
    it.
  """
  candidates = [
      c
      for c in (resolve_manual_dir(manual_dir), data_dir, shared_data_dir())
      if c
  ]
  for base in candidates:
    base = os.path.expanduser(os.fspath(base))
    if (is_archive(base) and os.path.isfile(base)) or os.path.isdir(
        os.path.join(base, 'train')
    ):
      return base
    for fname in _CIFAR10_JPG_NAMES:
      if os.path.exists(os.path.join(base, fname)):
        return os.path.join(base, fname)
  raise DatasetNotFoundError(
      "Dataset 'cifar10_jpg' (CIFAR-10 as JPEG files, train/<class>/*.jpg "
      'and test/<class>/*.jpg) was not found in '
      f"{candidates or 'any folder'}: pass --manual_dir DIR (or "
      f'manual_dir=DIR, or {MANUAL_DIR_ENV}=DIR) where DIR is the folder or '
      f".tar.gz or contains one of {', '.join(_CIFAR10_JPG_NAMES)}; or use "
      "'imagefolder:<path>'."
  )

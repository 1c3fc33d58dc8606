"""Decoded TFDS splits, kept beside the prepared dataset.

Small TFDS datasets (MNIST, CIFAR) are decoded whole into memory when a run
loads them: 70,000 PNG images of MNIST take 5-15 s of a 2-core CPU, at every
start of a run. :func:`load_decoded` does it once per prepared split and
keeps the result as an uncompressed ``.npz`` in ``<prepared folder>/decoded/``
(MNIST: 55 MB, read in well under a second).

The cache is keyed on the split, the image shape and the names, sizes and
modification times of the split's prepared files, so preparing the dataset
again makes a new entry (the superseded ones are removed). The ``.npz`` (a zip
file) holds the CRC-32 of each array, checked at every read: a damaged entry
is decoded again, never used. A folder that cannot be written (a read-only data
folder) only loses the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
import zipfile
from typing import Callable

import numpy as np

from .datasets import ArraySource

log = logging.getLogger(__name__)

SUBDIR = 'decoded'
FORMAT = 1


def _fingerprint(folder: str, tfds_name: str, split: str) -> list | None:
  """Names, sizes and times of the files holding ``split`` (None: none)."""
  base = re.split(r'[\[+]', split, maxsplit=1)[0]
  prefix = f'{tfds_name}-{base}.'
  try:
    names = sorted(n for n in os.listdir(folder) if n.startswith(prefix))
  except OSError:
    return None
  if not names:
    return None
  out = []
  for n in names:
    st = os.stat(os.path.join(folder, n))
    out.append([n, st.st_size, st.st_mtime_ns])
  return out


def _read(path: str, num_examples: int, shape) -> ArraySource | None:
  try:
    with np.load(path) as z:
      images, labels = z['images'], z['labels']
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    # zipfile checks each array's CRC-32 as it reads it.
    log.warning(
        'Decoding again: cannot read the decoded cache %s (%s)', path, e
    )
    return None
  if (
      images.shape != (num_examples, *shape)
      or images.dtype != np.uint8
      or labels.shape != (num_examples,)
  ):
    log.warning('Decoding again: the decoded cache %s is damaged', path)
    return None
  return ArraySource(images, labels.astype(np.int32, copy=False))


def _write(path: str, data: ArraySource) -> None:
  tmp = f'{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(tmp, 'wb') as f:
      np.savez(f, images=data.images, labels=data.labels)
    os.replace(tmp, path)
  except OSError as e:
    log.info('Not caching the decoded split in %s: %s', path, e)
    if os.path.exists(tmp):
      os.remove(tmp)
    return
  stem = os.path.basename(path).rsplit('-', 1)[0]
  for name in os.listdir(os.path.dirname(path)):
    other = os.path.join(os.path.dirname(path), name)
    if name.startswith(stem + '-') and name.endswith('.npz') and other != path:
      try:
        os.remove(other)  # A superseded entry of the same split.
      except OSError:
        pass


def load_decoded(
    folder: str,
    tfds_name: str,
    split: str,
    num_examples: int,
    shape: tuple[int, ...],
    decode: Callable[[], ArraySource],
) -> ArraySource:
  """The split decoded into memory, through the cache in ``folder``.

  Args:
    folder: the prepared dataset's folder (``<data_dir>/<name>/<version>``).
    tfds_name: the TFDS name (the prefix of the prepared files).
    split: the split or slice, e.g. ``'train'``, ``'train[:90%]'``.
    num_examples: the split's length.
    shape: the decoded images' shape ``(H, W, C)``.
    decode: decodes the split when the cache cannot serve it.

  Returns:
    The decoded split.
  """
  files = _fingerprint(folder, tfds_name, split)
  if files is None:  # Not prepared files (e.g. tfds.testing.mock_data).
    return decode()
  key = json.dumps([FORMAT, split, list(shape), num_examples, files])
  digest = hashlib.sha256(key.encode()).hexdigest()[:16]
  slug = re.sub(r'[^A-Za-z0-9_.-]+', '_', split)
  path = os.path.join(folder, SUBDIR, f'{slug}-{digest}.npz')
  if os.path.exists(path):
    data = _read(path, num_examples, shape)
    if data is not None:
      return data
  data = decode()
  _write(path, data)
  return data

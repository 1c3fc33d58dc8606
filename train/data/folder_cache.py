"""The decoded cache of an image folder (:mod:`train.data.folder_source`).

An image folder, a directory or a ``.tar``/``.tar.gz``, is decoded once with
Pillow into uint8 ``.npy`` arrays (memory-mapped when read) in a cache
directory named for the folder and the options that change its contents;
a cache of a folder that changed since is superseded and removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from .datasets import DatasetNotFoundError
from .datasets import default_data_dir
from .decode import default_workers
from .decode import open_image
from .decode import to_hwc

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    '.jpg',
    '.jpeg',
    '.png',
    '.bmp',
    '.gif',
    '.webp',
    '.ppm',
    '.tif',
    '.tiff',
)
_CACHE_FORMAT_VERSION = 1
_ARCHIVE = r'\.(tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$'


def is_archive(path: str) -> bool:
  return bool(re.search(_ARCHIVE, path))


def _folder_key(path: str, image_size, max_per_class) -> str:
  stat = os.stat(path)
  parts = [
      os.path.abspath(path),
      str(stat.st_size),
      str(int(stat.st_mtime)),
      str(image_size),
      str(max_per_class),
      str(_CACHE_FORMAT_VERSION),
  ]
  if os.path.isdir(path):  # A copied/edited folder changes these.
    for split in sorted(os.listdir(path)):
      split_path = os.path.join(path, split)
      if not os.path.isdir(split_path):
        continue
      parts += [split, str(int(os.stat(split_path).st_mtime))]
      for cls in sorted(os.listdir(split_path)):  # Images added or removed.
        cls_path = os.path.join(split_path, cls)
        if os.path.isdir(cls_path):
          parts += [
              cls,
              str(int(os.stat(cls_path).st_mtime)),
              str(len(os.listdir(cls_path))),
          ]
  return hashlib.sha1('|'.join(parts).encode()).hexdigest()[:12]


def image_folder_cache_dir(
    path, data_dir=None, image_size=None, max_per_class=None
) -> str:
  """The default cache folder of an image folder.

  Args:
    path: the image folder or archive.
    data_dir: the data folder (default TFDS's).
    image_size: the resize of the cache, if any.
    max_per_class: the subset of the cache, if any.

  Returns:
    ``<data_dir>/rda_imagefolder/<stem>-<hash>``.
  """
  path = os.path.expanduser(os.fspath(path))
  stem = re.sub(_ARCHIVE, '', os.path.basename(path.rstrip('/')))
  key = _folder_key(path, image_size, max_per_class)
  return os.path.join(
      default_data_dir(data_dir), 'rda_imagefolder', f'{stem}-{key}'
  )


def _split_class_file(relpath: str):
  parts = [
      p for p in relpath.replace('\\', '/').split('/') if p not in ('', '.')
  ]
  if len(parts) < 3:
    return None
  split, cls, fname = parts[-3:]
  if fname.startswith('.') or not fname.lower().endswith(IMAGE_EXTENSIONS):
    return None
  return split, cls, fname


def _iter_image_files(path: str):
  """Yields (split, class, file_name, bytes) of every image under path."""
  if os.path.isdir(path):
    for dirpath, _, files in os.walk(path):
      for fname in files:
        full = os.path.join(dirpath, fname)
        key = _split_class_file(os.path.relpath(full, path))
        if key is not None:
          with open(full, 'rb') as f:
            yield (*key, f.read())
  elif is_archive(path):
    with tarfile.open(path, 'r|*') as archive:
      for member in archive:
        if member.isfile():
          key = _split_class_file(member.name)
          if key is not None:
            yield (*key, archive.extractfile(member).read())
  else:
    raise ValueError(f'{path} is neither a folder nor a .tar/.tar.gz archive')


def _channel_stats(
    images: np.ndarray, chunk: int = 4096
) -> tuple[list[float], list[float]]:
  """Per-channel mean and std of the [0, 1] pixels of uint8 NHWC images.

  Chunked, to keep the memory low.
  """
  total = np.zeros(images.shape[-1])
  squares = np.zeros(images.shape[-1])
  for start in range(0, len(images), chunk):
    part = images[start : start + chunk].astype(np.float32) / 255.0
    total += part.sum(axis=(0, 1, 2), dtype=np.float64)
    squares += np.square(part).sum(axis=(0, 1, 2), dtype=np.float64)
  count = max(1, images.size // images.shape[-1])
  mean = total / count
  std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
  return mean.tolist(), std.tolist()


def build_image_folder_cache(
    path,
    cache_dir,
    *,
    image_size: int | None = None,
    max_per_class: int | None = None,
    num_workers: int | None = None,
) -> str:
  """Decodes an image folder once into ``cache_dir``.

  The cache is a uint8 .npy per split plus meta.json; it is written to a
  temporary folder and renamed, so concurrent processes never see a partial
  cache.

  Args:
    path: the image folder or archive.
    cache_dir: the cache folder to make.
    image_size: resizes every image to this square (needed when sizes
      differ).
    max_per_class: keeps the first files (sorted by name) of each class and
      split.
    num_workers: decoding threads.

  Returns:
    ``cache_dir``.
  """
  path = os.fspath(path)
  cache_dir = os.fspath(cache_dir)
  files: dict[str, dict[str, dict[str, bytes]]] = {}
  for split, cls, fname, data in _iter_image_files(path):
    files.setdefault(split, {}).setdefault(cls, {})[fname] = data
  if not files:
    raise DatasetNotFoundError(
        f'no images found as <split>/<class>/<image> under {path}'
    )
  classes = sorted({c for split in files.values() for c in split})
  class_index = {c: i for i, c in enumerate(classes)}

  first_split = next(iter(files.values()))
  first = open_image(next(iter(next(iter(first_split.values())).values())))
  mode = 'L' if first.mode in ('1', 'L', 'I', 'I;16', 'F') else 'RGB'

  def decode(data: bytes) -> np.ndarray:
    image = open_image(data)
    if image.mode != mode:
      image = image.convert(mode)
    if image_size is not None and image.size != (image_size, image_size):
      image = image.resize((image_size, image_size), Image.BILINEAR)
    return to_hwc(np.asarray(image))

  tmp_dir = f'{cache_dir}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
  os.makedirs(tmp_dir)
  meta: dict[str, Any] = {
      'source': os.path.abspath(path),
      'classes': classes,
      'splits': {},
      'image_size': image_size,
      'max_per_class': max_per_class,
      'version': _CACHE_FORMAT_VERSION,
  }
  try:
    with ThreadPoolExecutor(num_workers or default_workers()) as pool:
      for split in sorted(files):
        blobs, labels = [], []
        for cls in sorted(files[split]):
          names = sorted(files[split][cls])[:max_per_class]
          blobs += [files[split][cls][n] for n in names]
          labels += [class_index[cls]] * len(names)
        chunks = [blobs[i : i + 1024] for i in range(0, len(blobs), 1024)]
        images = [
            im
            for part in pool.map(lambda c: [decode(b) for b in c], chunks)
            for im in part
        ]
        shapes = {im.shape for im in images}
        if len(shapes) != 1:
          raise ValueError(
              f'{path}/{split}: images of different sizes '
              f'{sorted(shapes)[:4]}...; pass image_size=N to resize them '
              'to N×N'
          )
        array = np.stack(images)
        np.save(os.path.join(tmp_dir, f'{split}_images.npy'), array)
        np.save(
            os.path.join(tmp_dir, f'{split}_labels.npy'),
            np.asarray(labels, np.int32),
        )
        mean, std = _channel_stats(array)
        meta['splits'][split] = {
            'num_examples': len(labels),
            'image_shape': list(array.shape[1:]),
            'mean': mean,
            'std': std,
        }
        del images, array
    with open(os.path.join(tmp_dir, 'meta.json'), 'w') as f:
      json.dump(meta, f, indent=1)
    os.makedirs(os.path.dirname(os.path.abspath(cache_dir)), exist_ok=True)
    try:
      os.rename(tmp_dir, cache_dir)
    except OSError:  # Another process finished first.
      if not os.path.exists(os.path.join(cache_dir, 'meta.json')):
        raise
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)
  return cache_dir


def remove_superseded(cache_dir: str) -> list[str]:
  """Removes the other default caches of the same source and options.

  A default cache is keyed on the source's size and modification times, so
  an edited, copied or re-mounted source gets a new one; the old ones are
  stale (they no longer match any source) and each holds a full decoded
  copy of the data. Processes still reading a removed cache keep their
  memory maps (the files live until unmapped).

  Returns:
    The folders removed.
  """
  with open(os.path.join(cache_dir, 'meta.json')) as f:
    meta = json.load(f)
  ident = lambda m: (
      m.get('source'),
      m.get('image_size'),
      m.get('max_per_class'),
  )
  parent = os.path.dirname(os.path.abspath(cache_dir))
  stem = os.path.basename(os.path.abspath(cache_dir)).rsplit('-', 1)[0]
  removed = []
  for other in sorted(os.listdir(parent)):
    folder = os.path.join(parent, other)
    if (
        folder == os.path.abspath(cache_dir)
        or '.tmp-' in other  # Another process's build in flight.
        or other.rsplit('-', 1)[0] != stem
    ):
      continue
    try:
      with open(os.path.join(folder, 'meta.json')) as f:
        stale = ident(json.load(f)) == ident(meta)
    except (OSError, ValueError):
      continue  # Not a cache of ours: left alone.
    if stale:
      log.info('Removing the superseded image cache %s', folder)
      shutil.rmtree(folder, ignore_errors=True)
      removed.append(folder)
  return removed

"""Host-side image decoding with Pillow, and the host-side crops.

* :func:`decode_fixed`: an encoded image to uint8 HWC, size unchanged.
* :func:`decode_crop_resize` with :func:`random_resized_crop_box` (train)
  or :func:`center_crop_box` (eval): the ImageNet crops, done at decode
  time because the images vary in size and cropping before resizing is what
  makes decoding cheap.
* :class:`TFDSImageSource`: a split of encoded records (a prepared TFDS
  split read with ``tfds.data_source``) decoded per batch in a thread pool.

No TensorFlow: Pillow is the only decoder needed.
"""

from __future__ import annotations

import io
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np
from PIL import Image

from .datasets import ArraySource


def default_workers() -> int:
  """Decoding threads: the usable CPUs, at most 32.

  Pillow releases the GIL while decoding.
  """
  if hasattr(os, 'sched_getaffinity'):
    cpus = len(os.sched_getaffinity(0))
  else:
    cpus = os.cpu_count() or 1
  return max(1, min(32, cpus))


def to_hwc(array: np.ndarray) -> np.ndarray:
  """Adds the channel axis to a 2-D (grey) image."""
  return array[:, :, None] if array.ndim == 2 else array


def open_image(data: bytes) -> Image.Image:
  """A lazily decoded Pillow image of encoded bytes."""
  return Image.open(io.BytesIO(data))


def png_bytes(image: Image.Image) -> bytes:
  """``image`` encoded as PNG."""
  buffer = io.BytesIO()
  image.save(buffer, format='PNG')
  return buffer.getvalue()


def decode_fixed(data: bytes, channels: int) -> np.ndarray:
  """Decodes an encoded image to uint8 HWC with the given channel count."""
  image = open_image(data)
  mode = 'L' if channels == 1 else 'RGB'
  if image.mode != mode:
    image = image.convert(mode)
  return to_hwc(np.asarray(image))


def random_resized_crop_box(
    rng: np.random.Generator,
    width: int,
    height: int,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    attempts: int = 10,
):
  """Inception-style crop box (x, y, w, h).

  The area fraction is uniform in ``scale`` and the log aspect ratio in
  ``log(ratio)``. After ``attempts`` failures falls back to the central
  crop with the aspect clipped to ``ratio`` (as torchvision's
  RandomResizedCrop).

  Args:
    rng: the random generator of the example.
    width: the image's width.
    height: the image's height.
    scale: the range of the crop's area fraction.
    ratio: the range of the crop's aspect ratio.
    attempts: tries before the fallback.

  Returns:
    The box ``(x, y, w, h)``.
  """
  area = width * height
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(attempts):
    target_area = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target_area * aspect)))
    h = int(round(math.sqrt(target_area / aspect)))
    if 0 < w <= width and 0 < h <= height:
      x = int(rng.integers(0, width - w + 1))
      y = int(rng.integers(0, height - h + 1))
      return x, y, w, h
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    w, h = int(round(height * ratio[1])), height
  else:
    w, h = width, height
  return (width - w) // 2, (height - h) // 2, w, h


def center_crop_box(
    width: int, height: int, image_size: int, crop_padding: int = 32
):
  """Central square of side ``image_size / (image_size + crop_padding)``
  times the short side, as a box ``(x, y, w, h)``.

  The same as the Flax ImageNet example (224 out of a 256 short side).
  """
  side = int(
      round(image_size / (image_size + crop_padding) * min(width, height))
  )
  side = max(1, side)
  return (width - side) // 2, (height - side) // 2, side, side


def decode_crop_resize(data: bytes, image_size: int, box_fn) -> np.ndarray:
  """Decodes a JPEG/PNG, crops ``box_fn(width, height)`` and resizes it.

  Uses Pillow's JPEG draft mode (DCT-domain downscaling) when the crop is
  much larger than the output, which makes ImageNet decoding several times
  cheaper.

  Args:
    data: the encoded image.
    image_size: the side of the square RGB output.
    box_fn: ``(width, height) -> (x, y, w, h)``, the crop.

  Returns:
    uint8 ``(image_size, image_size, 3)``.
  """
  image = open_image(data)
  width, height = image.size
  x, y, w, h = box_fn(width, height)
  # Largest power-of-two reduction that keeps the crop at least image_size
  # pixels wide/high.
  scale = min(w, h) / image_size
  if image.format == 'JPEG' and scale >= 2:
    image.draft(
        'RGB',
        (max(1, math.ceil(width / scale)), max(1, math.ceil(height / scale))),
    )
  sx, sy = image.size[0] / width, image.size[1] / height
  if image.mode != 'RGB':
    image = image.convert('RGB')
  box = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
  image = image.resize((image_size, image_size), Image.BICUBIC, box=box)
  return np.asarray(image)


class TFDSImageSource:
  """A prepared TFDS split read with ``tfds.data_source``; no TensorFlow.

  Records are ``{'image': encoded bytes, 'label': int}`` (what a TFDS
  ``data_source`` with ``SkipDecoding`` gives); images are fetched
  undecoded and decoded with Pillow in a thread pool of ``num_workers``.

  Args:
    data_source: a random-access sequence of records.
    image_shape: the (H, W, C) of the decoded images.
    crop: None: keep the stored (fixed) image size; ``'random_resized'``:
      train-time Inception crop resized to ``image_size`` (per-example seeds
      make it deterministic); ``'center'``: eval-time centre crop resized to
      ``image_size``.
    num_workers: decoding threads (default :func:`default_workers`).
  """

  def __init__(
      self,
      data_source: Sequence[Any],
      image_shape: tuple[int, int, int],
      *,
      crop: str | None = None,
      num_workers: int | None = None,
  ):
    if crop not in (None, 'random_resized', 'center'):
      raise ValueError(f'crop={crop!r}')
    self.data_source = data_source
    self.image_shape = tuple(image_shape)
    self.crop = crop
    self.num_workers = num_workers or default_workers()
    self._pool: ThreadPoolExecutor | None = None
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self.data_source)

  def _decode(self, data, seed) -> np.ndarray:
    if (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim >= 2
    ):
      # Already decoded (e.g. tfds.testing.mock_data without TF).
      image = to_hwc(data)
      if self.crop is None:
        return image
      data = png_bytes(
          Image.fromarray(image if image.shape[-1] == 3 else image[..., 0])
      )
    elif isinstance(data, np.ndarray):  # Scalar bytes object array.
      data = data.item()
    size = self.image_shape[0]
    if self.crop is None:
      return decode_fixed(data, self.image_shape[-1])
    if self.crop == 'center':
      return decode_crop_resize(
          data, size, lambda w, h: center_crop_box(w, h, size)
      )
    rng = np.random.default_rng(int(seed))
    return decode_crop_resize(
        data, size, lambda w, h: random_resized_crop_box(rng, w, h)
    )

  def _read(self, indices: np.ndarray, seeds: np.ndarray):
    keys = [int(i) for i in indices]
    try:
      items = self.data_source.__getitems__(keys)
    except TypeError:  # tfds.testing.mock_data's is unbound; same result.
      items = [self.data_source[k] for k in keys]
    images = np.empty((len(indices), *self.image_shape), np.uint8)
    labels = np.empty((len(indices),), np.int32)
    for k, (item, seed) in enumerate(zip(items, seeds)):
      image = self._decode(item['image'], seed)
      if image.shape != self.image_shape:
        raise ValueError(
            f'decoded image of shape {image.shape}, expected '
            f'{self.image_shape} (variable-size images need a crop mode)'
        )
      images[k] = image
      labels[k] = item['label']
    return images, labels

  def get_batch(self, indices, seeds=None):
    """The examples ``indices`` as ``{'image', 'label'}``.

    Args:
      indices: example indices.
      seeds: per-example seeds of the random crops (default: the indices).

    Returns:
      uint8 images (n, H, W, C) and int32 labels (n,).
    """
    indices = np.asarray(indices, np.int64)
    seeds = indices if seeds is None else np.asarray(seeds)
    n = len(indices)
    chunks = max(1, min(self.num_workers, n // 8))
    if chunks == 1:
      images, labels = self._read(indices, seeds)
    else:
      with self._lock:
        if self._pool is None:
          self._pool = ThreadPoolExecutor(
              self.num_workers, thread_name_prefix='rda-decode'
          )
      bounds = np.linspace(0, n, chunks + 1).astype(int)
      parts = list(
          self._pool.map(
              lambda ab: self._read(
                  indices[ab[0] : ab[1]], seeds[ab[0] : ab[1]]
              ),
              zip(bounds[:-1], bounds[1:]),
          )
      )
      images = np.concatenate([p[0] for p in parts])
      labels = np.concatenate([p[1] for p in parts])
    return {'image': images, 'label': labels}

  def to_memory(self, chunk: int = 2048) -> ArraySource:
    """Decodes the whole split once into an in-memory ArraySource."""
    n = len(self)
    images = np.empty((n, *self.image_shape), np.uint8)
    labels = np.empty((n,), np.int32)
    for start in range(0, n, chunk):
      batch = self.get_batch(np.arange(start, min(n, start + chunk)))
      images[start : start + chunk] = batch['image']
      labels[start : start + chunk] = batch['label']
    return ArraySource(images, labels)

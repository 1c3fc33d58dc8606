"""On-device augmentation and normalisation (pure JAX, batch-wise, jit/pmap).

The host pipeline delivers uint8 NHWC batches; the train step turns them into
float inputs with ``preprocess(images, key, dataset, train)``:

* ``mnist``, ``fashion_mnist``: normalisation only.
* ``cifar10``, ``cifar100``, ``cifar10_jpg``: train = random crop from the
  image zero-padded by 4 pixels on each side (in uint8, i.e. black padding,
  like torchvision's ``RandomCrop(32, padding=4)``) + random horizontal flip;
  eval = normalisation only.
* ``imagenet2012``: the Inception random-resized crop (train) and the resize +
  centre crop (eval) are done on the HOST at decode time, because the images
  vary in size and cropping before resizing is what makes decoding cheap; the
  device does the random horizontal flip (train) and the normalisation.

Every example gets its own random crop offset / flip from ``key``. Under
``pmap`` pass a different key per device, e.g. ``device_key(key, 'batch')``
(= fold_in of the device index).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import datasets


def normalize(images: jax.Array, mean, std, dtype=jnp.float32) -> jax.Array:
  """uint8 (or [0, 255] float) images -> ``(x / 255 - mean) / std``."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  x = images.astype(jnp.float32) * (1.0 / 255.0)
  return ((x - mean) / std).astype(dtype)


def random_flip(images: jax.Array, key: jax.Array) -> jax.Array:
  """Flips each image of an NHWC batch left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def random_crop(
    images: jax.Array, key: jax.Array, padding: int = 4
) -> jax.Array:
  """Random HxW crop of each NHWC image zero-padded by ``padding`` pixels.

  Offsets are uniform in [0, 2 * padding] along each axis, independently per
  example.
  """
  n, h, w, c = images.shape
  padded = jnp.pad(
      images, ((0, 0), (padding, padding), (padding, padding), (0, 0))
  )
  key_y, key_x = jax.random.split(key)
  ys = jax.random.randint(key_y, (n,), 0, 2 * padding + 1)
  xs = jax.random.randint(key_x, (n,), 0, 2 * padding + 1)
  zero = jnp.zeros((), ys.dtype)
  crop = lambda image, y, x: jax.lax.dynamic_slice(
      image, (y, x, zero), (h, w, c)
  )
  return jax.vmap(crop)(padded, ys, xs)


def random_crop_flip(
    images: jax.Array, key: jax.Array, padding: int = 4
) -> jax.Array:
  """CIFAR augmentation: padded random crop then random horizontal flip."""
  key_crop, key_flip = jax.random.split(key)
  return random_flip(random_crop(images, key_crop, padding), key_flip)


def device_key(key: jax.Array, axis_name: str) -> jax.Array:
  """A per-device key inside pmap: ``fold_in(key, axis_index(axis_name))``."""
  return jax.random.fold_in(key, jax.lax.axis_index(axis_name))


def _resolve(dataset) -> datasets.DatasetInfo:
  if isinstance(dataset, datasets.DatasetInfo):
    return dataset
  if isinstance(dataset, str):
    return datasets.get_info(dataset)
  raise TypeError(
      f'dataset must be a name or a DatasetInfo, got '
      f'{type(dataset).__name__}'
  )


def preprocess(
    images: jax.Array,
    key: jax.Array | None,
    dataset,
    train: bool,
    dtype=jnp.float32,
) -> jax.Array:
  """uint8 images (..., H, W, C) -> augmented (if ``train``), normalised.

  ``dataset``: a name (``'cifar10'``...) or a ``DatasetInfo`` (needed for
  ``imagefolder:`` datasets); it selects the augmentation and the mean/std
  and must be static under jit. Any leading batch dims are allowed (e.g.
  (N, H, W, C) per device inside pmap, or (devices, N, H, W, C)). ``key`` may
  be None when ``train`` is False.
  """
  info = _resolve(dataset)
  *lead, h, w, c = images.shape
  if train and info.augmentation != datasets.AUG_NONE:
    if key is None:
      raise ValueError('preprocess(train=True) needs a PRNG key')
    flat = images.reshape((-1, h, w, c))
    if info.augmentation == datasets.AUG_CROP_FLIP:
      flat = random_crop_flip(flat, key)
    elif info.augmentation == datasets.AUG_FLIP:
      flat = random_flip(flat, key)
    else:
      raise ValueError(f'unknown augmentation {info.augmentation!r}')
    images = flat.reshape((*lead, h, w, c))
  return normalize(images, info.mean, info.std, dtype)

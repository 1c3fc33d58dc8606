"""train/data/augment.py: the device-side augmentation and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from train.data import augment  # noqa: E402
from train.data import datasets  # noqa: E402
from train.data import input_pipeline as ip  # noqa: E402


def _tiny(n):
  image = (np.arange(1, 17, dtype=np.uint8) * 10).reshape(
      1, 4, 4, 1
  )  # distinct, non-zero, asymmetric
  return np.repeat(image, n, axis=0)


def test_random_crop_is_a_padded_crop_and_covers_all_offsets():
  images = _tiny(256)
  out = np.asarray(
      jax.jit(augment.random_crop, static_argnums=2)(
          images, jax.random.key(0), 1
      )
  )
  assert out.shape == images.shape and out.dtype == np.uint8
  padded = np.pad(images[0], ((1, 1), (1, 1), (0, 0)))
  offsets = []
  for crop in out:
    match = [
        (y, x)
        for y in range(3)
        for x in range(3)
        if np.array_equal(crop, padded[y : y + 4, x : x + 4])
    ]
    assert len(match) == 1
    offsets.append(match[0])
  assert set(offsets) == {(y, x) for y in range(3) for x in range(3)}


def test_random_flip_exact():
  images = _tiny(64)
  out = np.asarray(augment.random_flip(images, jax.random.key(1)))
  flipped = np.array(
      [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
  )
  kept = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
  assert (flipped ^ kept).all() and 10 < flipped.sum() < 54


def test_augmentation_determinism_and_shapes():
  images = np.random.default_rng(0).integers(
      0, 256, (8, 32, 32, 3), dtype=np.uint8
  )
  f = jax.jit(lambda x, k: augment.preprocess(x, k, "cifar10", True))
  a, b = f(images, jax.random.key(5)), f(images, jax.random.key(5))
  c = f(images, jax.random.key(6))
  assert a.shape == (8, 32, 32, 3) and a.dtype == jnp.float32
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  # leading dims (devices, batch) are fine
  assert f(images.reshape(2, 4, 32, 32, 3), jax.random.key(5)).shape == (
      2,
      4,
      32,
      32,
      3,
  )
  # per-example keys under vmap, as the train step does
  keys = jax.random.split(jax.random.key(0), 8)
  g = jax.jit(
      jax.vmap(lambda x, k: ip.preprocess(x[None], k, "cifar10", True)[0])
  )
  assert g(images, keys).shape == (8, 32, 32, 3)
  # pmap with a per-device key
  h = jax.pmap(
      lambda x, k: augment.preprocess(
          x, augment.device_key(k, "b"), "cifar10", True
      ),
      axis_name="b",
      in_axes=(0, None),
  )
  assert h(images[None], jax.random.key(0)).shape == (1, 8, 32, 32, 3)


def test_normalisation_and_eval_is_deterministic():
  images = np.full((2, 32, 32, 3), 255, np.uint8)
  images[1] = 0
  out = np.asarray(augment.preprocess(images, None, "cifar10", False))
  mean, std = np.array(datasets.MEAN_STD["cifar10"][0]), np.array(
      datasets.MEAN_STD["cifar10"][1]
  )
  np.testing.assert_allclose(out[0, 0, 0], (1 - mean) / std, rtol=1e-5)
  np.testing.assert_allclose(out[1, 5, 7], -mean / std, rtol=1e-5)
  mnist = np.asarray(
      augment.preprocess(
          np.zeros((1, 28, 28, 1), np.uint8), jax.random.key(0), "mnist", True
      )
  )
  np.testing.assert_allclose(
      mnist, -0.1307 / 0.3081, rtol=1e-5
  )  # no augmentation for MNIST
  img = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
  out = np.asarray(
      augment.preprocess(img, jax.random.key(2), "imagenet2012", True)
  )
  ref = np.asarray(augment.preprocess(img, None, "imagenet2012", False))
  for o, r in zip(out, ref):  # ImageNet on device: flip only
    assert np.allclose(o, r) or np.allclose(o, r[:, ::-1])
  assert (
      augment.preprocess(img, None, "imagenet2012", False, jnp.bfloat16).dtype
      == jnp.bfloat16
  )
  with pytest.raises(ValueError, match="PRNG key"):
    augment.preprocess(img, None, "cifar10", True)

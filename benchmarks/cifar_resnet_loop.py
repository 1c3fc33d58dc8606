"""A Flax user's CIFAR-10 ResNet-20 loop, for :mod:`benchmarks.target_sparsity`.

What a user with their own ``flax.linen`` training script writes: the
``TrainState`` of Flax's ImageNet example (with ``batch_stats``), random
crop (4-pixel padding) and flip, SGD settings as for a dense run (lr 0.1,
momentum 0.9, batch 128), and an optimizer swapped in. The images are the
CIFAR-10 JPEG copy of the shared data folder (``../shared/data``; a lossy
copy, so accuracies are close to but not the same experiment as published
CIFAR-10 numbers), decoded once into the data folder's image cache by
:func:`train.data.folder_source.load_image_folder`.
"""

from __future__ import annotations

import functools
from typing import Any

from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax

import models
import rda_optax
from train.data import cifar_jpg_source
from train.data import folder_source


class TrainState(train_state.TrainState):
  batch_stats: Any


def load_cifar10(data_dir=None, train_examples: int | None = None):
  """``(train, test, mean, std)``: uint8 NHWC arrays with labels, and the
  train split's channel statistics; ``train_examples`` keeps the first of a
  fixed random permutation of the train split (all classes)."""
  dataset = folder_source.load_image_folder(
      cifar_jpg_source.find_cifar10_jpg(data_dir=data_dir), data_dir=data_dir
  )
  train_x = np.asarray(dataset.train.images)
  train_y = np.asarray(dataset.train.labels)
  if train_examples:
    keep = np.random.default_rng(0).permutation(len(train_y))[:train_examples]
    train_x, train_y = train_x[keep], train_y[keep]
  test = (np.asarray(dataset.eval.images), np.asarray(dataset.eval.labels))
  mean = np.asarray(dataset.info.mean, np.float32)
  std = np.asarray(dataset.info.std, np.float32)
  return (train_x, train_y), test, mean, std


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Random 32x32 crops of the 4-pixel zero-padded images, flipped at
  random."""
  n = len(images)
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
  rows = dy[:, None] + np.arange(32)
  cols = dx[:, None] + np.arange(32)
  out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
  flip = rng.random(n) < 0.5
  out[flip] = out[flip, :, ::-1]
  return out


def create_state(tx, seed: int):
  model = models.create('resnet20')
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(seed), jnp.zeros((1, 32, 32, 3))
  )
  return TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      batch_stats=variables['batch_stats'],
      tx=tx,
  )


@jax.jit
def train_step(state, images, labels):
  def loss_fn(params):
    logits, updates = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats},
        images,
        train=True,
        mutable=['batch_stats'],
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, labels
    ).mean()
    return loss, updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params
  )
  state = state.apply_gradients(grads=grads)
  return state.replace(batch_stats=updates['batch_stats']), loss


@jax.jit
def eval_batch(state, images, labels):
  logits = state.apply_fn(
      {'params': state.params, 'batch_stats': state.batch_stats},
      images,
      train=False,
  )
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return loss.sum(), (jnp.argmax(logits, -1) == labels).sum()


def normalize(images, mean, std):
  return (images.astype(np.float32) / 255.0 - mean) / std


def train(tx, data, *, epochs: int, batch_size: int, seed: int):
  """Trains ResNet-20 with ``tx`` for ``epochs``; returns the final state."""
  (train_x, train_y), _, mean, std = data
  state = create_state(tx, seed)
  rng = np.random.default_rng(seed)
  steps = len(train_y) // batch_size
  for _ in range(epochs):
    order = rng.permutation(len(train_y))
    for i in range(steps):
      idx = np.sort(order[i * batch_size : (i + 1) * batch_size])
      images = normalize(augment(train_x[idx], rng), mean, std)
      state, _ = train_step(state, images, train_y[idx])
  return state


def evaluate(state, data, batch_size: int = 500):
  """``(loss, accuracy)`` of the exactly sparse model on the test split."""
  _, (test_x, test_y), mean, std = data
  sparse = state.replace(
      params=rda_optax.sparse_params(state.opt_state, state.params)
  )
  loss = correct = 0.0
  for i in range(0, len(test_y), batch_size):
    l, c = eval_batch(
        sparse,
        normalize(test_x[i : i + batch_size], mean, std),
        test_y[i : i + batch_size],
    )
    loss, correct = loss + float(l), correct + float(c)
  return loss / len(test_y), correct / len(test_y), sparse.params

"""Flax's linen MNIST example, trained to a target sparsity by rda-optax.

The CNN, ``TrainState`` loop and settings of flax/examples/mnist (SGD at 0.1,
momentum 0.9, batch 128, 10 epochs); the lines marked ``# rda-optax`` are all
that changed. MNIST comes from ``tfds.data_source`` (``--data_dir``: the TFDS
folder; no TensorFlow once prepared).

  python examples/linen_mnist.py --sparsity 0.95
"""

import argparse

from flax import linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rda_optax  # rda-optax
import tensorflow_datasets as tfds


class CNN(nn.Module):
  """A simple CNN model."""

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(features=32, kernel_size=(3, 3))(x)
    x = nn.relu(x)
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = nn.Conv(features=64, kernel_size=(3, 3))(x)
    x = nn.relu(x)
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))  # flatten
    x = nn.Dense(features=256)(x)
    x = nn.relu(x)
    x = nn.Dense(features=10)(x)
    return x


@jax.jit
def apply_model(state, images, labels):
  """Computes gradients, loss and accuracy for a single batch."""

  def loss_fn(params):
    logits = state.apply_fn({'params': params}, images)
    one_hot = jax.nn.one_hot(labels, 10)
    loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
    return loss, logits

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, logits), grads = grad_fn(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return grads, loss, accuracy


@jax.jit
def update_model(state, grads):
  return state.apply_gradients(grads=grads)


def train_epoch(state, train_ds, batch_size, rng):
  """Train for a single epoch."""
  steps_per_epoch = len(train_ds['image']) // batch_size
  perms = jax.random.permutation(rng, len(train_ds['image']))
  perms = perms[: steps_per_epoch * batch_size].reshape((steps_per_epoch, -1))
  epoch_loss, epoch_accuracy = [], []
  for perm in perms:
    grads, loss, accuracy = apply_model(
        state, train_ds['image'][perm, ...], train_ds['label'][perm, ...]
    )
    state = update_model(state, grads)
    epoch_loss.append(loss)
    epoch_accuracy.append(accuracy)
  return state, np.mean(epoch_loss), np.mean(epoch_accuracy)


def get_datasets(data_dir=None, train_split='train', test_split='test'):
  """Load MNIST train and test datasets into memory."""
  out = []
  for split in (train_split, test_split):
    source = tfds.data_source('mnist', split=split, data_dir=data_dir)
    examples = source.__getitems__(range(len(source)))
    out.append(
        {
            'image': np.stack([e['image'] for e in examples]) / np.float32(255),
            'label': np.array([e['label'] for e in examples]),
        }
    )
  return out


def create_train_state(rng, config, total_steps):
  """Creates initial `TrainState`."""
  cnn = CNN()
  params = cnn.init(rng, jnp.ones([1, 28, 28, 1]))['params']
  tx = rda_optax.sparse_training(  # rda-optax
      config.sparsity,  # rda-optax
      learning_rate=config.learning_rate,
      momentum=config.momentum,
      total_steps=total_steps,  # rda-optax
  )
  return train_state.TrainState.create(apply_fn=cnn.apply, params=params, tx=tx)


def train_and_evaluate(config) -> train_state.TrainState:
  """Execute model training and evaluation loop; returns the train state."""
  train_ds, test_ds = get_datasets(
      config.data_dir, config.train_split, config.test_split
  )
  rng = jax.random.key(0)
  rng, init_rng = jax.random.split(rng)
  steps_per_epoch = len(train_ds['image']) // config.batch_size
  state = create_train_state(
      init_rng, config, config.num_epochs * steps_per_epoch  # rda-optax
  )
  for epoch in range(1, config.num_epochs + 1):
    rng, input_rng = jax.random.split(rng)
    state, train_loss, train_accuracy = train_epoch(
        state, train_ds, config.batch_size, input_rng
    )
    sparse = rda_optax.with_sparse_params(state)  # rda-optax
    _, test_loss, test_accuracy = apply_model(
        sparse, test_ds['image'], test_ds['label']  # rda-optax
    )
    print(
        f'epoch:{epoch:3d}, train_loss: {train_loss:.4f}, train_accuracy: '
        f'{train_accuracy * 100:.2f}, test_loss: {test_loss:.4f}, '
        f'test_accuracy: {test_accuracy * 100:.2f}, '
        f'sparsity: {rda_optax.sparsity_summary(sparse.params)["regularized/sparsity"]:.4f}',  # rda-optax
        flush=True,
    )
  return state


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sparsity', type=float, default=0.95)
  parser.add_argument('--learning_rate', type=float, default=0.1)
  parser.add_argument('--momentum', type=float, default=0.9)
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--num_epochs', type=int, default=10)
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--train_split', default='train')
  parser.add_argument('--test_split', default='test')
  return train_and_evaluate(parser.parse_args(argv))


if __name__ == '__main__':
  main()

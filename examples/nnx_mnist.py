"""Flax NNX's MNIST tutorial, trained to a target sparsity by rda-optax.

This is the CNN (with batch norm and dropout), ``nnx.Optimizer`` and train /
eval steps of the Flax NNX MNIST tutorial, with SGD's settings (0.1,
momentum 0.9, batch 32, 1,200 steps): the lines marked ``# rda-optax`` are all
that changed. ``rda_optax.sparse_training`` takes SGD's settings and the
sparsity; evaluation runs on a copy of the model holding the exactly sparse
point (``rda_optax.with_sparse_params``).

  python examples/nnx_mnist.py --sparsity 0.95   # MNIST through TFDS
"""

import argparse
from functools import partial

from flax import nnx
import jax
import numpy as np
import optax
import rda_optax  # rda-optax
import tensorflow_datasets as tfds


class CNN(nnx.Module):
  """A simple CNN model."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
    self.batch_norm1 = nnx.BatchNorm(32, rngs=rngs)
    self.dropout1 = nnx.Dropout(rate=0.025, rngs=rngs)
    self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
    self.batch_norm2 = nnx.BatchNorm(64, rngs=rngs)
    self.avg_pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
    self.linear1 = nnx.Linear(3136, 256, rngs=rngs)
    self.dropout2 = nnx.Dropout(rate=0.025, rngs=rngs)
    self.linear2 = nnx.Linear(256, 10, rngs=rngs)

  def __call__(self, x):
    x = self.avg_pool(nnx.relu(self.batch_norm1(self.dropout1(self.conv1(x)))))
    x = self.avg_pool(nnx.relu(self.batch_norm2(self.conv2(x))))
    x = x.reshape(x.shape[0], -1)  # flatten
    x = nnx.relu(self.dropout2(self.linear1(x)))
    return self.linear2(x)


def loss_fn(model: CNN, batch):
  logits = model(batch['image'])
  loss = optax.softmax_cross_entropy_with_integer_labels(
      logits=logits, labels=batch['label']
  ).mean()
  return loss, logits


@nnx.jit
def train_step(model: CNN, optimizer: nnx.Optimizer, metrics, batch):
  """Train for a single step."""
  grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
  (loss, logits), grads = grad_fn(model, batch)
  metrics.update(loss=loss, logits=logits, labels=batch['label'])
  optimizer.update(model, grads)  # In-place updates.


@nnx.jit
def eval_step(model: CNN, metrics, batch):
  loss, logits = loss_fn(model, batch)
  metrics.update(loss=loss, logits=logits, labels=batch['label'])


def load(split, data_dir=None):
  """A split of MNIST in memory: float images (N, 28, 28, 1), int labels."""
  source = tfds.data_source('mnist', split=split, data_dir=data_dir)
  examples = source.__getitems__(range(len(source)))
  images = np.stack([e['image'] for e in examples]).astype(np.float32) / 255
  return {'image': images, 'label': np.array([e['label'] for e in examples])}


def batches(ds, batch_size, rng=None):
  """Batches of ``ds`` (shuffled with ``rng``), the last incomplete dropped."""
  order = np.arange(len(ds['label']))
  if rng is not None:
    rng.shuffle(order)
  for i in range(0, len(order) - batch_size + 1, batch_size):
    yield {k: v[order[i : i + batch_size]] for k, v in ds.items()}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sparsity', type=float, default=0.95)
  parser.add_argument('--learning_rate', type=float, default=0.1)
  parser.add_argument('--momentum', type=float, default=0.9)
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--train_steps', type=int, default=1200)
  parser.add_argument('--eval_every', type=int, default=200)
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--train_split', default='train')
  parser.add_argument('--test_split', default='test')
  args = parser.parse_args(argv)
  train_ds = load(args.train_split, args.data_dir)
  test_ds = load(args.test_split, args.data_dir)

  model = CNN(rngs=nnx.Rngs(0))
  tx = rda_optax.sparse_training(  # rda-optax
      args.sparsity,  # rda-optax
      learning_rate=args.learning_rate,
      momentum=args.momentum,
      total_steps=args.train_steps,  # rda-optax
  )
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  metrics = nnx.MultiMetric(
      accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average('loss')
  )
  rng, step, history = np.random.default_rng(0), 0, []
  while step < args.train_steps:
    for batch in batches(train_ds, args.batch_size, rng):
      model.train()
      train_step(model, optimizer, metrics, batch)
      step += 1
      if step % args.eval_every and step < args.train_steps:
        continue
      train = metrics.compute()
      metrics.reset()
      eval_model = rda_optax.with_sparse_params(model, optimizer)  # rda-optax
      eval_model.eval()
      for test_batch in batches(test_ds, 1000):
        eval_step(eval_model, metrics, test_batch)
      test = metrics.compute()
      metrics.reset()
      params = nnx.state(eval_model, nnx.Param)
      kernels = [x for x in jax.tree.leaves(params) if x.ndim > 1]
      zeros = sum(int((x == 0).sum()) for x in kernels)
      history.append(
          {
              'step': step,
              'train_loss': float(train['loss']),
              'test_accuracy': float(test['accuracy']),
              'kernel_sparsity': zeros / sum(x.size for x in kernels),
          }
      )
      print(', '.join(f'{k}: {v:.4f}' for k, v in history[-1].items()))
      if step >= args.train_steps:
        break
  return model, history


if __name__ == '__main__':
  main()

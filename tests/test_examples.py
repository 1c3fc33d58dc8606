"""examples/: the Flax linen and NNX MNIST scripts, each a standard Flax loop
with rda-optax swapped in, train to the sparsity asked on a small budget."""

import importlib.util
import os

import jax
import numpy as np
import pytest

pytest.importorskip('flax')
pytest.importorskip('tensorflow_datasets')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small budget: 2,560 training images (40 steps of 128, or 80 of 32).
SPLITS = ['--train_split', 'train[:2560]', '--test_split', 'test[:1000]']


def _load(name):
  spec = importlib.util.spec_from_file_location(
      f'example_{name}', os.path.join(REPO, 'examples', f'{name}.py')
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _changed_lines(name):
  with open(os.path.join(REPO, 'examples', f'{name}.py')) as f:
    return sum('# rda-optax' in line for line in f)


@pytest.mark.xla_default  # It runs more than it compiles.
def test_linen_train_state_example(prepared_mnist):
  example = _load('linen_mnist')
  state = example.main(
      ['--data_dir', prepared_mnist, '--num_epochs', '2', '--sparsity', '0.9']
      + SPLITS
  )
  sparse = example.rda_optax.with_sparse_params(state)
  kernels = [x for x in jax.tree.leaves(sparse.params) if x.ndim > 1]
  zeros = sum(int((x == 0).sum()) for x in kernels)
  assert zeros == round(0.9 * sum(x.size for x in kernels))
  _, test_ds = example.get_datasets(prepared_mnist, 'train[:8]', 'test[:1000]')
  _, _, accuracy = example.apply_model(
      sparse, test_ds['image'], test_ds['label']
  )
  assert float(accuracy) >= 0.8
  assert _changed_lines('linen_mnist') <= 10


@pytest.mark.xla_default  # It runs more than it compiles.
def test_nnx_optimizer_example(prepared_mnist):
  example = _load('nnx_mnist')
  _, history = example.main(
      [
          '--data_dir',
          prepared_mnist,
          '--train_steps',
          '80',
          '--eval_every',
          '40',
          '--sparsity',
          '0.9',
      ]
      + SPLITS
  )
  assert [h['step'] for h in history] == [40, 80]
  assert history[-1]['kernel_sparsity'] == pytest.approx(0.9, abs=1e-5)
  assert history[-1]['test_accuracy'] >= 0.8
  assert np.isfinite(history[-1]['train_loss'])
  assert _changed_lines('nnx_mnist') <= 10

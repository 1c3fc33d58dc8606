"""Fixtures shared by the test modules."""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get(
    'RDA_SHARED_DATA', os.path.join(REPO, '..', 'shared', 'data')
)
MNIST_DIR = os.path.join(SHARED_DATA, 'mnist')


def pytest_xdist_auto_num_workers(config):
  """`-n auto` (pyproject's addopts): one worker per usable core, at most
  four. Each worker holds JAX and TensorFlow, and the end-to-end tests start
  training subprocesses of their own, so a many-core machine with modest
  memory must not get one worker per core."""
  del config
  return max(1, min(len(os.sched_getaffinity(0)), 4))


@pytest.fixture(scope='session')
def prepared_mnist(tmp_path_factory):
  """A TFDS data folder with real MNIST prepared from the manual folder,
  once per session (each preparation takes 10-30 s); tests that check the
  preparation itself make their own."""
  from train.data import datasets  # pylint: disable=import-outside-toplevel
  from train.data import input_pipeline  # pylint: disable=import-outside-toplevel

  if not all(
      os.path.exists(os.path.join(MNIST_DIR, f)) for f in datasets.MNIST_FILES
  ):
    pytest.skip(
        f'real MNIST archives not found in {MNIST_DIR} (set RDA_SHARED_DATA '
        'to the shared data folder)'
    )
  data_dir = tmp_path_factory.mktemp('tfds_mnist')
  input_pipeline.prepare_dataset(
      'mnist', data_dir=str(data_dir), manual_dir=MNIST_DIR
  )
  return str(data_dir)

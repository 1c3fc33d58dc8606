"""Fixtures shared by the test modules."""

import os
import shutil
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get(
    'RDA_SHARED_DATA', os.path.join(REPO, '..', 'shared', 'data')
)
MNIST_DIR = os.path.join(SHARED_DATA, 'mnist')


def pytest_configure(config):
  """One XLA compilation cache for the session: the many short trainings of
  the suite (in the test processes and in the subprocesses they start)
  compile the same train and eval steps again and again; with the cache a
  repeated one loads in milliseconds instead of seconds. The cache lives in a
  fresh folder per session (the xdist workers and every subprocess inherit
  the variables), so no test reads what another session compiled. A cache
  dir set by the caller is used as it is."""
  if hasattr(config, 'workerinput') or os.environ.get(
      'JAX_COMPILATION_CACHE_DIR'
  ):
    return
  cache = tempfile.mkdtemp(prefix='rda-optax-xla-cache-')
  config.stash[_CACHE_KEY] = cache
  os.environ['JAX_COMPILATION_CACHE_DIR'] = cache
  # Every program, however small or quick to compile (the defaults skip
  # those under 1 s of compilation).
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'


def pytest_unconfigure(config):
  cache = config.stash.get(_CACHE_KEY, None)
  if cache:
    shutil.rmtree(cache, ignore_errors=True)


_CACHE_KEY = pytest.StashKey[str]()


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

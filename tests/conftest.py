"""Fixtures shared by the test modules."""

import contextlib
import fcntl
import os
import shutil
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get(
    'RDA_SHARED_DATA', os.path.join(REPO, '..', 'shared', 'data')
)
MNIST_DIR = os.path.join(SHARED_DATA, 'mnist')


# XLA:CPU's optimizing backend (LLVM at -O2 and its expensive passes) is most
# of what the suite spends: its many short trainings compile far more than
# they run. The session compiles with JAX's `jax_disable_most_optimizations`
# (XLA's backend at level 0; the xdist workers and the training subprocesses
# inherit it through the environment): 19% less CPU time over the suite,
# 25% on the ResNet tests (2-core AMD EPYC, 2026-12-07; the whole suite
# 10:09 -> 7:53), every test passing at both levels. Tests marked
# ``xla_default`` compile at XLA's default level, as users do (the
# `_xla_level` fixture below): the tests that assert bit-identical results
# across compiled programs (only the optimizing backend could break those: it
# contracts a*b+c into fused multiply-adds fusion by fusion) and the few that
# run more than they compile. RDA_TEST_XLA_DEFAULT_LEVEL=1 runs the whole
# suite at the default level.
XLA_DEFAULT_ENV = 'RDA_TEST_XLA_DEFAULT_LEVEL'
NO_OPTIMIZATIONS_ENV = 'JAX_DISABLE_MOST_OPTIMIZATIONS'


def _compile_without_xla_optimizations():
  if os.environ.get(XLA_DEFAULT_ENV):
    os.environ.pop(NO_OPTIMIZATIONS_ENV, None)
  else:
    os.environ.setdefault(NO_OPTIMIZATIONS_ENV, '1')


def optimizations_disabled() -> bool:
  """Whether this session compiles without XLA's optimizations (JAX's own
  reading of the variable)."""
  value = os.environ.get(NO_OPTIMIZATIONS_ENV, '')
  return value.lower() in ('1', 'true', 't', 'yes', 'y', 'on')


@pytest.fixture(autouse=True)
def _xla_level(request):
  """An ``xla_default`` test compiles at XLA's default level: the flag is
  not part of JAX's in-memory compilation caches, so they are cleared on
  the way in and out (the persistent cache keys on the level)."""
  if request.node.get_closest_marker('xla_default') is None or not (
      optimizations_disabled()
  ):
    yield
    return
  import jax  # pylint: disable=import-outside-toplevel

  jax.config.update('jax_disable_most_optimizations', False)
  jax.clear_caches()
  try:
    yield
  finally:
    jax.config.update('jax_disable_most_optimizations', True)
    jax.clear_caches()


def pytest_configure(config):
  """XLA's level for the session (see NO_OPTIMIZATIONS_ENV; the xdist
  workers and the training subprocesses inherit it).

  One XLA compilation cache for the session: the many short trainings of
  the suite (in the test processes and in the subprocesses they start)
  compile the same train and eval steps again and again; with the cache a
  repeated one loads in milliseconds instead of seconds. The cache lives in a
  fresh folder per session (the xdist workers and every subprocess inherit
  the variables), so no test reads what another session compiled. A cache
  dir set by the caller is used as it is."""
  if not hasattr(config, 'workerinput'):
    _compile_without_xla_optimizations()
  if hasattr(config, 'workerinput') or os.environ.get(
      'JAX_COMPILATION_CACHE_DIR'
  ):
    return
  cache = tempfile.mkdtemp(prefix='rda-optax-xla-cache-')
  config.stash[_CACHE_KEY] = cache
  os.environ['JAX_COMPILATION_CACHE_DIR'] = cache
  # Results a test helper computes once per session (tests/_session_cache.py).
  os.environ['RDA_TEST_SESSION_CACHE'] = os.path.join(cache, 'results')
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


@contextlib.contextmanager
def session_once(tmp_path_factory, name: str):
  """Makes ``name`` once per test session, shared by the xdist workers.

  Yields ``(folder, made)``: a folder common to every worker of the session
  (under pytest's base temporary folder) and whether it already holds the
  finished work. The first worker to enter does the work inside the block
  while the others wait on a file lock; the folder is marked done when the
  block exits without an error.
  """
  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent  # The workers' base folders share this parent.
  folder = root / f'shared-{name}'
  with open(root / f'shared-{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    done = folder / '.done'
    made = done.exists()
    folder.mkdir(exist_ok=True)
    yield folder, made
    done.touch()


# The session's real-MNIST run: the default job shortened to 3 x 100 steps
# (λ doubled so that it sparsifies in them), preparing MNIST from the manual
# folder on its way.
REAL_MNIST_ARGS = (
    '--steps_per_epoch',
    '100',
    '--epochs',
    '2',
    '--asr_epochs',
    '1',
    '--lam',
    '1e-3',
)


@pytest.fixture(scope='session')
def real_mnist_run(tmp_path_factory):
  """``python -m train`` on real MNIST from the manual folder, once per
  session and shared by the xdist workers: MNIST is prepared by this run
  (10-30 s: the only preparation of the session), which then trains for
  300 steps.

  Returns:
    A dict: ``data_dir`` (the prepared TFDS folder), ``workdir``, and the
    run's ``stdout`` and ``stderr``.
  """
  # pylint: disable-next=import-outside-toplevel
  from _train_driver import run_train
  from train.data import datasets  # pylint: disable=import-outside-toplevel

  if not all(
      os.path.exists(os.path.join(MNIST_DIR, f)) for f in datasets.MNIST_FILES
  ):
    pytest.skip(
        f'real MNIST archives not found in {MNIST_DIR} (set RDA_SHARED_DATA '
        'to the shared data folder)'
    )
  with session_once(tmp_path_factory, 'real_mnist') as (folder, made):
    out = {
        'data_dir': str(folder / 'tfds'),
        'workdir': str(folder / 'run'),
    }
    if not made:
      proc = run_train(
          [
              '--manual_dir',
              MNIST_DIR,
              '--data_dir',
              out['data_dir'],
              *REAL_MNIST_ARGS,
              '--workdir',
              out['workdir'],
          ],
          devices=None,
          timeout=600,
      )
      (folder / 'stdout').write_text(proc.stdout)
      (folder / 'stderr').write_text(proc.stderr)
  out['stdout'] = (folder / 'stdout').read_text()
  out['stderr'] = (folder / 'stderr').read_text()
  return out


@pytest.fixture(scope='session')
def prepared_mnist(real_mnist_run):
  """A TFDS data folder with real MNIST prepared from the manual folder,
  once per session (by :func:`real_mnist_run`); tests that check the
  preparation itself make their own."""
  return real_mnist_run['data_dir']


@pytest.fixture(scope='session')
def tiny_one_device_run(tmp_path_factory):
  """The run directory of ``_train_driver.TINY_ARGS`` on one device, made
  once per session: the reference of the multi-device and multi-host
  tests."""
  # pylint: disable-next=import-outside-toplevel
  from _train_driver import TINY_ARGS, run_train

  with session_once(tmp_path_factory, 'tiny_one_device') as (folder, made):
    run = str(folder / 'run')
    if not made:
      run_train([*TINY_ARGS, '--workdir', run], devices=1, tiny_bn=True)
  return run


@pytest.fixture
def no_manual_env(monkeypatch, tmp_path_factory):
  """No manual folder anywhere: neither the env variable nor an offline copy."""
  from train.data import datasets  # pylint: disable=import-outside-toplevel

  monkeypatch.delenv(datasets.MANUAL_DIR_ENV, raising=False)
  monkeypatch.setenv(
      datasets.SHARED_DATA_ENV,
      str(tmp_path_factory.mktemp('no_shared_data')),
  )

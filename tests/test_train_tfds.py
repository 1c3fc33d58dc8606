"""The training loop on the project's input pipeline (TFDS).

* ``tfds.testing.mock_data``: a few steps on mock CIFAR-10 (random images of
  the real shapes), through the real pipeline's sharded batches, eval masks
  and device-side augmentation (random crop + flip, per-example keys).
* Real MNIST from ``$RDA_SHARED_DATA/mnist`` (default ``<repo>/../shared/data``;
  skipped when absent): the default
  preset (LeNet-300-100, RDA then ASR) shortened to 2 + 1 epochs reaches
  >= 90% test top-1 with >= 30% of the weights exactly zero (measured:
  93.7% at 57% sparsity, about 25 s on a 2-core CPU including preparing
  MNIST from the archives).
"""

import os

import numpy as np
import pytest

from _train_driver import REPO, TinyBN, final_variables, run_train
from train import config as config_lib
from train import metrics as metrics_lib
from train import train as train_lib

tfds = pytest.importorskip('tensorflow_datasets')
pytest.importorskip('train.data.input_pipeline')

SHARED_DATA = os.environ.get(
    'RDA_SHARED_DATA', os.path.join(os.path.dirname(REPO), 'shared', 'data')
)
MNIST_DIR = os.path.join(SHARED_DATA, 'mnist')


def test_a_few_steps_on_mock_cifar10(tmp_path):
  cfg = config_lib.get_config(
      None,
      method='rda',
      dataset='cifar10',
      data_dir=str(tmp_path / 'tfds'),
      batch_size=8,
      eval_batch_size=16,
      epochs=1,
      asr_epochs=1,
      lam=1e-2,
      gamma=2.0,
      init_scale=2.0,
      workdir=str(tmp_path / 'run'),
      progress=False,
      async_checkpointing=False,
      log_every_steps=1,
  )
  with tfds.testing.mock_data(num_examples=24):
    state = train_lib.train_and_evaluate(cfg, model=TinyBN())
  assert int(state.step) == 6  # 24 // 8 = 3 steps per epoch, 1 + 1 epochs.
  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  assert [r['step'] for r in evals] == [3, 6]
  assert all(np.isfinite(r['test_loss']) for r in evals)
  assert 0 < evals[-1]['sparsity'] < 1
  assert os.path.exists(os.path.join(cfg.workdir, 'report', 'accuracy.png'))


def test_short_real_mnist_run_learns_and_sparsifies(real_mnist_run):
  """The default job on real MNIST from its archives: prepared on the way,
  with a clean console (the run is the session's, see conftest)."""
  run, stdout = real_mnist_run['workdir'], real_mnist_run['stdout']
  # What a log file gets (no terminal): our lines, no library noise, no bars.
  console = stdout + real_mnist_run['stderr']
  assert 'Preparing mnist once, from the manual folder' in console
  for noise in (
      'Downloading and preparing',
      'has no dataset_info.json',
      'oneDNN',
      'absl::InitializeLog',
      'Dl Completed',
      '\r',
  ):
    assert noise not in console, (noise, console[:2000])
  evals = [l for l in stdout.splitlines() if l.startswith('epoch ')]
  assert len(evals) == 3 and all('test top-1' in l for l in evals)
  last = metrics_lib.read_records(run, 'eval')[-1]
  assert last['phase'] == 'asr' and last['epoch'] == pytest.approx(3.0)
  assert last['step'] == 300
  assert last['test_top1'] >= 0.90, last
  assert last['sparsity'] >= 0.30, last
  params = final_variables(run)['params']
  zeros = sum(
      int((np.asarray(p) == 0).sum())
      for p in [params[k]['kernel'] for k in params]
  )
  assert zeros > 0
  assert config_lib.load_config(run).model == 'lenet300_100'


@pytest.mark.skipif(
    not os.path.isdir(MNIST_DIR),
    reason=f'MNIST archives not found in {MNIST_DIR}',
)
def test_a_truncated_archive_is_a_one_line_error(tmp_path, capsys):
  import shutil
  from train import cli

  manual = tmp_path / 'manual'
  shutil.copytree(MNIST_DIR, manual)
  bad = manual / 'train-images-idx3-ubyte.gz'
  with open(bad, 'r+b') as f:
    f.truncate(bad.stat().st_size // 2)
  status = cli.main(
      [
          '--manual_dir',
          str(manual),
          '--data_dir',
          str(tmp_path / 'tfds'),
          '--workdir',
          str(tmp_path / 'run'),
          '--no-progress',
      ]
  )
  err = capsys.readouterr().err
  assert status == 2
  line = [l for l in err.splitlines() if l.startswith('python -m train:')][0]
  assert (
      'train-images-idx3-ubyte.gz does not match its published checksum' in line
  )

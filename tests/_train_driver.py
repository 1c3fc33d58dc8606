"""Helpers for the training tests, and a subprocess driver.

As a script: ``python tests/_train_driver.py [--tiny_bn] [--mock_data N] --
ARGS`` runs ``python -m train ARGS``, optionally with :class:`TinyBN` (a small
conv net with cross-device batch norm) instead of a model of ``models/``, and
inside ``tfds.testing.mock_data(num_examples=N)``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import flax.linen as nn
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable


class TinyBN(nn.Module):
  """Conv-BN-ReLU x2, mean pool, dense: small, with batch-norm statistics."""

  num_classes: int = 10
  axis_name: str | None = 'batch'

  @nn.compact
  def __call__(self, x, train: bool = False):
    for f, s in ((8, 1), (8, 2)):
      x = nn.Conv(f, (3, 3), strides=s, use_bias=False)(x)
      x = nn.BatchNorm(
          use_running_average=not train,
          momentum=0.9,
          axis_name=self.axis_name if train else None,
      )(x)
      x = nn.relu(x)
    x = x.mean(axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


def run_cli(argv, capsys):
  """``(exit status, stderr)`` of ``python -m train ARGV``, in-process."""
  from train import cli  # pylint: disable=import-outside-toplevel

  status = cli.main(argv)
  err = capsys.readouterr().err
  return status, err


# Runs of TINY_ARGS on other device counts (or processes) match the one-device
# run to |a - b| <= MATCH_ATOL + MATCH_RTOL |b|: the gradient mean is reduced
# in another order (per-device means, then pmean), so they agree to float32
# rounding, not bit for bit. Observed differences are about 1e-7, except
# where rounding moves a pre-activation across ReLU's kink: a random crop's
# zero border gives a whole block of pixels the same batch-normalized value,
# and where that value sits within rounding of 0 the block's gradient
# switches on or off at once. On a Zen 5 EPYC (2026-12-08) that moved the
# first layer's channel 0 by up to 1.3e-5 between 1 and 8 devices and between 1
# device and 2 processes (every other weight within 4e-8; without the crops
# every weight is within 6e-8); a wrong reduction moves every weight by far
# more.
MATCH_RTOL, MATCH_ATOL = 1e-4, 3e-5

# A few steps of RDA then ASR of TinyBN (cross-device batch norm) on
# synthetic 28x28 images with the CIFAR augmentation (random crop and flip),
# evaluated in batches of 48 of its 200 examples (a padded last batch): the
# device-count tests compare runs of it.
TINY_ARGS = (
    '--method',
    'rda',
    '--dataset',
    'synthetic:28x28x1:10:crop_flip',
    '--batch_size',
    '32',
    '--eval_batch_size',
    '48',
    '--steps_per_epoch',
    '2',
    '--epochs',
    '1',
    '--asr_epochs',
    '1',
    '--lam',
    '3e-3',
    '--gamma',
    '2',
    '--init_scale',
    '2',
    '--no-progress',
    '--no-report',
    '--log_every_steps',
    '1',
)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def env_with_devices(n: int | None) -> dict[str, str]:
  env = dict(os.environ)
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  env['JAX_PLATFORMS'] = 'cpu'
  flags = [
      f
      for f in env.get('XLA_FLAGS', '').split()
      if 'force_host_platform_device_count' not in f
  ]
  if n:
    flags.append(f'--xla_force_host_platform_device_count={n}')
  env['XLA_FLAGS'] = ' '.join(flags)
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  return env


def train_cmd(
    args,
    tiny_bn: bool = False,
    mock_data: int = 0,
    block_before_save: tuple[int, str] | None = None,
) -> list[str]:
  """The command line of a training job.

  ``block_before_save=(step, marker)``: the job stops at the checkpoint of
  ``step``, before writing it and after every earlier write has finished,
  creates the file ``marker`` and blocks there (for a test to kill it).
  """
  if tiny_bn or mock_data or block_before_save:
    opts = ['--tiny_bn'] if tiny_bn else []
    if mock_data:
      opts += ['--mock_data', str(mock_data)]
    if block_before_save:
      opts += ['--block_before_save', *map(str, block_before_save)]
    return [
        PYTHON,
        os.path.join(REPO, 'tests', '_train_driver.py'),
        *opts,
        '--',
        *args,
    ]
  return [PYTHON, '-m', 'train', *args]


def run_train(
    args,
    *,
    devices: int | None = 1,
    tiny_bn: bool = False,
    mock_data: int = 0,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess:
  """Runs a training job in a fresh process with ``devices`` CPU devices.

  ``tiny_bn``: train :class:`TinyBN`; ``mock_data``: inside
  ``tfds.testing.mock_data(num_examples=mock_data)``.
  """
  proc = subprocess.run(
      train_cmd(args, tiny_bn, mock_data),
      cwd=REPO,
      env=env_with_devices(devices),
      capture_output=True,
      text=True,
      timeout=timeout,
  )
  if check and proc.returncode != 0:
    raise AssertionError(
        f'training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
        f'{proc.stderr[-6000:]}'
    )
  return proc


def final_variables(workdir: str) -> dict:
  from train import checkpoint as ckpt_lib

  return ckpt_lib.load_variables(workdir)


def full_checkpoint(workdir: str, step: int | None = None):
  from train import checkpoint as ckpt_lib

  c = ckpt_lib.Checkpoints(
      os.path.join(workdir, 'checkpoints'), read_only=True, async_save=False
  )
  try:
    return c.restore_raw(step)
  finally:
    c.close()


def flat(tree) -> dict[str, np.ndarray]:
  import jax

  return {
      jax.tree_util.keystr(k): np.asarray(v)
      for k, v in jax.tree_util.tree_leaves_with_path(tree)
  }


def _block_before_save(block_step: int, marker: str) -> None:
  """Makes the checkpoint save of ``block_step`` wait for the writes in
  flight, create ``marker`` and block forever: a known point to kill at."""
  from train import checkpoint as ckpt_lib

  save = ckpt_lib.Checkpoints.save

  def blocking_save(self, step, tree, **kwargs):
    if step == block_step:
      self.wait()
      with open(marker, 'w') as f:
        f.write(str(step))
      while True:
        time.sleep(60)
    return save(self, step, tree, **kwargs)

  ckpt_lib.Checkpoints.save = blocking_save


def main(argv: list[str]) -> int:
  opts = argv[: argv.index('--')] if '--' in argv else []
  args = argv[argv.index('--') + 1 :] if '--' in argv else argv
  mock = None
  if '--mock_data' in opts:
    import tensorflow_datasets as tfds

    n = int(opts[opts.index('--mock_data') + 1])
    mock = tfds.testing.mock_data(num_examples=n)
    mock.__enter__()
  if '--block_before_save' in opts:
    i = opts.index('--block_before_save')
    _block_before_save(int(opts[i + 1]), opts[i + 2])
  from train import cli

  if '--tiny_bn' not in opts:
    return cli.main(args)
  from train import config as config_lib
  from train import config_checks
  from train import launch
  from train import train as train_lib

  try:
    cfg, explicit, _ = cli.parse_config(args)
    # As train.launch does, with TinyBN for the model: each check once.
    config_checks.check(cfg, explicit)
    launch.initialize_distributed(cfg)
    model = TinyBN()
    train_lib.check(cfg, model=model)
    train_lib.train_and_evaluate(cfg, model=model, checked=True)
  except config_lib.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except
    if not isinstance(getattr(e, 'exit_status', None), int):
      raise
    print(f'error: {e}', file=sys.stderr)  # As cli.main does.
    return e.exit_status
  finally:
    if mock is not None:
      mock.__exit__(None, None, None)
  return 0


if __name__ == '__main__':
  sys.path.insert(0, REPO)
  sys.exit(main(sys.argv[1:]))

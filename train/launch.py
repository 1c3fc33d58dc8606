"""What ``python -m train`` does once its options have passed the checks.

:mod:`train.cli` parses and checks the options without JAX (so a bad value
is answered at once), then hands over to :func:`main` here, which imports
the numerical stack: multi-host initialization, the checks that need JAX
(devices, the model's parameters), then the run, ``--print_config`` or
``--eval_export``. The run trusts those checks
(``train_and_evaluate(cfg, checked=True)``).
"""

from __future__ import annotations

import sys
from typing import Any

import jax

from . import config as config_lib
from . import methods
from . import selection
from . import train as train_lib
from .data import datasets
from .export import reader


def initialize_distributed(cfg: config_lib.Config) -> None:
  """``jax.distributed.initialize`` when the config names several processes."""
  if cfg.num_processes <= 1 and not cfg.coordinator_address:
    return
  if (
      cfg.num_processes <= 1
      or cfg.process_id < 0
      or not cfg.coordinator_address
  ):
    raise config_lib.ConfigError(
        'Multi-host training needs --coordinator_address HOST:PORT, '
        '--num_processes N (> 1) and --process_id I (0 <= I < N); got '
        f'{cfg.coordinator_address!r}, {cfg.num_processes}, {cfg.process_id}.'
    )
  if cfg.process_id >= cfg.num_processes:
    raise config_lib.ConfigError(
        f'--process_id {cfg.process_id} must be < --num_processes '
        f'{cfg.num_processes}.'
    )
  # CPU collectives across processes need Gloo (no effect on GPU / TPU).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(
      cfg.coordinator_address,
      num_processes=cfg.num_processes,
      process_id=cfg.process_id,
  )


def print_config(cfg: config_lib.Config) -> None:
  """``--print_config``: the checked config, with the data folders in effect.

  ``data_dir`` and ``manual_dir`` show what the job would use when they are
  not given (``TFDS_DATA_DIR``, ``RDA_MANUAL_DIR``, the offline copy in
  ``RDA_SHARED_DATA``). A han (or han_adamw) config may lack ``--init_from`` (a note says
  the run needs it).
  """
  selection.check_model(cfg)
  name = cfg.dataset.split(':')[0]
  if not cfg.data_dir and name in datasets.DATASETS and name != 'cifar10_jpg':
    cfg = cfg.replace(data_dir=datasets.default_data_dir(None))
  if not cfg.manual_dir:
    cfg = cfg.replace(manual_dir=datasets.resolve_manual_dir(None, name))
  print(cfg.to_json())
  if methods.get(cfg.method).from_run and not cfg.init_from:
    print(
        f'note: --method {cfg.method} prunes a trained model: running it '
        'needs --init_from RUN_DIR of a dense (sgd, adamw) or rda run.',
        file=sys.stderr,
    )


def main(cfg: config_lib.Config, explicit: set[str], args: Any) -> None:
  """The run (or ``--print_config`` / ``--eval_export``) of a checked config.

  Raises:
    ConfigError: a check that needs JAX failed (multi-host settings, a batch
      the devices do not divide, an unknown model, a ``--select`` matching
      none of its parameters, ...).
    Diverged: the run diverged.
  """
  if args.print_config:
    print_config(cfg)
  elif args.eval_export:
    reader.evaluate_export(args.eval_export, cfg, explicit)
  else:
    initialize_distributed(cfg)
    train_lib.check(cfg)
    train_lib.train_and_evaluate(cfg, checked=True)

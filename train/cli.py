"""Command line of ``python -m train``.

Examples::

  python -m train                                   # default: LeNet-300-100 / MNIST, RMDA + ASR
  python -m train --preset cifar10_resnet18 --workdir runs/c10_r18
  python -m train --model resnet18 --dataset cifar10 --method rda \\
      --asr_epochs 2 --lam 1e-6 --gamma 1.0 --init_scale 10 --epochs 10 \\
      --batch_size 128 --regularizer l1 --workdir runs/x
  python -m train --method han --init_from runs/dense --prune_sparsity 0.95 \\
      --lr 0.01 --epochs 20 --workdir runs/han
  python -m train --list_presets
  python -m train --preset cifar10_vgg16 --print_config

Every field of :class:`train.config.Config` is a flag (``--name value``;
booleans ``--name`` / ``--no-name``; tuples comma-separated, e.g.
``--lr_boundaries 100,150``). Flags override the preset (``default`` when
``--preset`` is not given) or a saved config (``--config RUN_DIR/config.json``).

Multi-host: ``--coordinator_address HOST:PORT --num_processes N --process_id
I`` (or the env variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``) call ``jax.distributed.initialize`` before anything else
touches the devices (with Gloo collectives on CPU).

Errors in the options (unknown model, dataset, method or preset, ASR
without a sparse phase, a batch not divisible across devices, a run directory
of a different config, ...) stop with exit status 2 and a message saying
what to change, before any work starts. A run whose loss becomes NaN or
infinite stops at the next log with exit status 3, keeping its last good
checkpoint.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import sys
import textwrap
from typing import Any

from . import config as config_lib
from . import config_checks
from . import methods


def field_doc(name: str) -> str:
  """The docstring written under a field (used as CLI help)."""
  return _FIELD_DOCS.get(name, '')


def _parse_field_docs() -> dict[str, str]:
  try:
    src = textwrap.dedent(inspect.getsource(config_lib.Config))
  except (OSError, TypeError):
    return {}
  body = ast.parse(src).body[0].body
  docs = {}
  for a, b in zip(body, body[1:]):
    if (
        isinstance(a, ast.AnnAssign)
        and isinstance(a.target, ast.Name)
        and isinstance(b, ast.Expr)
        and isinstance(b.value, ast.Constant)
        and isinstance(b.value.value, str)
    ):
      docs[a.target.id] = ' '.join(b.value.value.split())
  return docs


_FIELD_DOCS = _parse_field_docs()


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m train',
      description='Train a sparse network (RDA, Prox-SGD, ASR, magnitude '
      'pruning baselines) on a TFDS dataset.',
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument(
      '--preset',
      default=None,
      help='Preset to start from: ' + ', '.join(sorted(config_lib.PRESETS)),
  )
  parser.add_argument(
      '--config',
      default=None,
      help="JSON config to start from (a run's config.json "
      'or run directory) instead of a preset.',
  )
  parser.add_argument(
      '--list_presets', action='store_true', help='List the presets and exit.'
  )
  parser.add_argument(
      '--print_config',
      action='store_true',
      help='Print the resolved config as JSON and exit.',
  )
  parser.add_argument(
      '--eval_export',
      default=None,
      metavar='EXPORT_DIR',
      help='Evaluate a model exported by python -m '
      'train.export on the test split of its dataset (or of '
      '--dataset; the data options apply) and exit.',
  )
  group = parser.add_argument_group(
      'config (train.config.Config; defaults are those of the default preset)'
  )
  defaults = config_lib.get_config()
  for name, field in config_lib.FIELDS.items():
    help_text = field_doc(name) or name
    if name == 'method':  # The methods, as train.methods declares them.
      help_text = (
          '; '.join(f'{m.name}: {m.summary}' for m in methods.METHODS.values())
          + '.'
      )
    value = getattr(defaults, name)
    if isinstance(value, tuple):
      value = ','.join(f'{v:g}' for v in value)
    help_text += f' (default: {value!r})' if value != '' else ' (default: none)'
    help_text = help_text.replace('%', '%%')  # argparse %-formats help.
    kind = str(field.type)
    if kind.startswith('bool'):
      group.add_argument(
          f'--{name}',
          action=argparse.BooleanOptionalAction,
          default=argparse.SUPPRESS,
          help=help_text,
      )
    else:
      group.add_argument(
          f'--{name}',
          default=argparse.SUPPRESS,
          metavar=name.upper(),
          help=help_text,
      )
  return parser


def parse_config(
    argv: list[str] | None = None,
) -> tuple[config_lib.Config | None, set[str], Any]:
  """``(config, explicitly_set_fields, args)`` from the command line.

  The config is None for ``--list_presets``.

  Raises:
    ConfigError: unknown preset, a value of the wrong type, ...
  """
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.list_presets:
    return None, set(), args
  explicit = {k: v for k, v in vars(args).items() if k in config_lib.FIELDS}
  values = {
      k: config_lib.coerce(config_lib.FIELDS[k], v) for k, v in explicit.items()
  }
  if args.config and args.preset:
    raise config_lib.ConfigError('Give --preset or --config, not both.')
  if args.config:
    cfg = config_lib.load_config(args.config).replace(**values)
  else:
    cfg = config_lib.get_config(args.preset, **values)
  # Multi-host settings from the environment when not given as flags.
  env = {
      'coordinator_address': 'JAX_COORDINATOR_ADDRESS',
      'num_processes': 'JAX_NUM_PROCESSES',
      'process_id': 'JAX_PROCESS_ID',
  }
  for name, var in env.items():
    if name not in explicit and os.environ.get(var):
      cfg = cfg.replace(
          **{name: config_lib.coerce(config_lib.FIELDS[name], os.environ[var])}
      )
  return cfg, set(explicit), args


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
  import jax  # pylint: disable=import-outside-toplevel
  # CPU collectives across processes need Gloo (no effect on GPU / TPU).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(
      cfg.coordinator_address,
      num_processes=cfg.num_processes,
      process_id=cfg.process_id,
  )


def check(cfg: config_lib.Config, explicit: set[str]) -> None:
  """All checks that need no devices: options, model, dataset, run dir."""
  from . import data as data_lib  # pylint: disable=import-outside-toplevel
  from . import train as train_lib  # pylint: disable=import-outside-toplevel

  config_checks.validate(cfg, explicit)
  train_lib.check_model(cfg)
  data_lib.check_dataset(cfg)
  config_checks.check_workdir(cfg)


def print_config(cfg: config_lib.Config, explicit: set[str]) -> None:
  """``--print_config``: the checked config, with the data folders in effect.

  ``data_dir`` and ``manual_dir`` show what the job would use when they are
  not given (``TFDS_DATA_DIR``, ``RDA_MANUAL_DIR``, the offline copy in
  ``RDA_SHARED_DATA``). A han config may lack ``--init_from`` (a note says
  the run needs it).
  """
  from .data import datasets  # pylint: disable=import-outside-toplevel
  from . import train as train_lib  # pylint: disable=import-outside-toplevel

  config_checks.validate(cfg, explicit, need_init_from=False)
  train_lib.check_model(cfg)
  name = cfg.dataset.split(':')[0]
  if not cfg.data_dir and name in datasets.DATASETS and name != 'cifar10_jpg':
    cfg = cfg.replace(data_dir=datasets.default_data_dir(None))
  if not cfg.manual_dir:
    cfg = cfg.replace(manual_dir=datasets.resolve_manual_dir(None, name))
  print(cfg.to_json())
  if cfg.method == 'han' and not cfg.init_from:
    print(
        'note: --method han prunes a trained model: running it needs '
        '--init_from RUN_DIR of a dense (sgd) or rda run.',
        file=sys.stderr,
    )


def describe_preset(name: str) -> str:
  """One line: model / dataset / method, epochs, and the preset's settings."""
  p = config_lib.PRESETS[name]
  cfg = config_lib.get_config(name)
  epochs = f'{cfg.epochs:g}' + (
      f' + {cfg.asr_epochs:g} ASR' if cfg.asr_epochs else ''
  )
  shown = ('model', 'dataset', 'method', 'epochs', 'asr_epochs')
  ignored = methods.get(cfg.method).ignores  # Values for other methods.
  if not p:  # The default job: the dataclass defaults its method reads.
    p = {
        k: getattr(cfg, k)
        for k in sorted(methods.get(cfg.method).reads - {'lr_schedule'})
        + ['asr_optimizer', 'asr_lr', 'asr_lr_schedule']
        if k in config_lib.FIELDS
        and getattr(cfg, k) not in ((), '')
        and not (k in ('lam2', 'scale_lam') and not getattr(cfg, k))
        and not (k == 'scale_penalty' and not cfg.scale_lam)
    }
  rest = ' '.join(
      f'--{k} {v}'
      for k, v in p.items()
      if k not in shown
      and k not in ('log_every_steps', 'eval_every_epochs')
      and k not in ignored
  )
  return (
      f'{name:28s} {cfg.model} / {cfg.dataset} / {cfg.method}, '
      f'{epochs} epochs: {rest}'
  )


def main(argv: list[str] | None = None) -> int:
  """Entry point of ``python -m train``; returns the exit status."""
  try:
    cfg, explicit, args = parse_config(argv)
    if cfg is None:
      for name in sorted(config_lib.PRESETS):
        print(describe_preset(name))
      return 0
    if args.print_config:
      print_config(cfg, explicit)
      return 0
    if args.eval_export:
      from .export import reader  # pylint: disable=import-outside-toplevel

      reader.evaluate_export(args.eval_export, cfg, explicit)
      return 0
    check(cfg, explicit)
    initialize_distributed(cfg)
    from . import train as train_lib  # pylint: disable=import-outside-toplevel

    train_lib.check_runtime(cfg)
    train_lib.train_and_evaluate(cfg)
  except config_lib.ConfigError as e:
    print(f'python -m train: error: {e}', file=sys.stderr)
    return 2
  except config_lib.Diverged as e:
    print(f'python -m train: error: {e}', file=sys.stderr)
    return 3
  except Exception as e:  # pylint: disable=broad-except
    # Failures that stop a run with a status of their own (a checkpoint
    # that cannot be written: train.checkpoint.WriteFailed, 4).
    if not isinstance(getattr(e, 'exit_status', None), int):
      raise
    print(f'python -m train: error: {e}', file=sys.stderr)
    return e.exit_status
  return 0

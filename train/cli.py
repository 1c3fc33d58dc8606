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
of a different config, ...) stop with exit status 2 and a one-line message
saying what to change, before any work starts: every check that needs no
JAX (each value, the dataset's name, the run directory) before JAX is even
imported, then those of the devices and the model. Each runs once. A run whose loss becomes NaN or
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

from . import complete
from . import config as config_lib
from . import config_checks
from . import methods
from . import regularizers


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


def option_help(name: str) -> str:
  """The help of ``--name``: its field's docstring, with the methods and
  regularizers that read it (or, for ``--method`` and ``--regularizer``,
  every entry of the table) as the tables declare them."""
  tables = {'method': methods.METHODS, 'regularizer': regularizers.REGULARIZERS}
  if name in tables:
    return '; '.join(f'{e.name}: {e.summary}' for e in tables[name].values())
  text = field_doc(name) or name
  if name in methods.METHOD_OPTIONS:
    text += f' [--method {" | ".join(methods.reading(name))}]'
  regs = [r.name for r in regularizers.REGULARIZERS.values() if name in r.reads]
  if regs:
    text += f' [--regularizer {" | ".join(regs)}]'
  return text


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
      metavar='DIR',
      help='Evaluate a model exported by python -m train.export (its '
      'folder, or the run directory holding it in export/) on the test '
      'split of its dataset (or of --dataset; the data options apply) and '
      'exit.',
  )
  group = parser.add_argument_group(
      'config (train.config.Config; defaults are those of the default preset)'
  )
  defaults = config_lib.get_config()
  for name, field in config_lib.FIELDS.items():
    help_text = option_help(name)
    value = getattr(defaults, name)
    if isinstance(value, tuple):
      value = ','.join(f'{v:g}' for v in value)
    if '(default: ' not in help_text:  # (some docs say where it comes from)
      help_text += (
          ' (default: none)'
          if value in ('', None)
          else f' (default: {value!r})'
      )
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


def _is_number(token: str) -> bool:
  """'-1e-3', '-inf', '-1,2' (a tuple): numbers, not options."""
  try:
    for value in token.split(','):
      float(value)
  except ValueError:
    return False
  return True


def attach_negative_values(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> list[str]:
  """``--lam -1e-3`` as ``--lam=-1e-3``, for every option that takes a value.

  argparse reads a token that starts with ``-`` as an option unless it looks
  like ``-1`` or ``-0.5``, so ``--lam -1e-3`` (or ``-inf``, ``-1,2``) would
  end in "expected one argument" and the whole usage; attached, the value
  reaches the checks, whose one line names the option.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  takes_value = {
      flag
      for action in parser._actions  # pylint: disable=protected-access
      if action.nargs is None
      and not isinstance(action, argparse.BooleanOptionalAction)
      for flag in action.option_strings
  }
  out, i = [], 0
  while i < len(argv):
    token = argv[i]
    value = argv[i + 1] if i + 1 < len(argv) else ''
    if token in takes_value and value.startswith('-') and _is_number(value):
      out.append(f'{token}={value}')
      i += 2
    else:
      out.append(token)
      i += 1
  return out


def parse_config(
    argv: list[str] | None = None,
) -> tuple[config_lib.Config | None, set[str], Any]:
  """``(config, explicitly_set_fields, args)`` from the command line.

  The config is None for ``--list_presets``.

  Raises:
    ConfigError: unknown preset, a value of the wrong type, ...
  """
  parser = build_parser()
  args = parser.parse_args(attach_negative_values(parser, argv))
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


def flag_words(name: str, value: Any) -> list[str]:
  """The command-line words that set ``name`` to ``value``, as the parser
  reads them: a boolean is ``--name`` or ``--no-name``; a tuple is its
  values, comma-separated."""
  if isinstance(value, bool):
    return [f'--{name}' if value else f'--no-{name}']
  if isinstance(value, (tuple, list)):
    value = ','.join(str(v) for v in value)
  return [f'--{name}', str(value)]


def flags(values: dict[str, Any]) -> tuple[str, ...]:
  """The command-line words of ``values`` (option -> value), in order."""
  return tuple(w for k, v in values.items() for w in flag_words(k, v))


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
      ' '.join(flag_words(k, v))
      for k, v in p.items()
      if k not in shown
      and k not in ('log_every_steps', 'eval_every_epochs')
      and k not in ignored
      # No ASR phase: its options would do nothing.
      and not (k.startswith('asr_') and not cfg.asr_epochs)
  )
  return (
      f'{name:{max(map(len, config_lib.PRESETS))}s} {cfg.model} / '
      f'{cfg.dataset} / {cfg.method}, '
      f'{epochs} epochs: {rest}'
  )


def main(argv: list[str] | None = None) -> int:
  """Entry point of ``python -m train``; returns the exit status.

  Every check that needs no JAX runs first, once
  (:func:`train.config_checks.check`), so a bad option is answered before
  the numerical stack loads; :func:`train.launch.main` then does the rest.
  """
  try:
    cfg, explicit, args = parse_config(argv)
    if cfg is None:
      for name in sorted(config_lib.PRESETS):
        print(describe_preset(name))
      return 0
    if args.eval_export:  # The config gives data options only.
      config_checks.check_values(cfg)
    else:
      config_checks.check(cfg, explicit, printing=args.print_config)
      steps = None if args.print_config else complete.finished(cfg)
      if steps is not None:  # The same command again: answered at once.
        report = complete.report_text(cfg.workdir)
        print(
            f'{cfg.workdir} is already complete ({steps} steps): nothing to '
            'train.'
            + (' Its report follows;' if report else '')
            + ' use another --workdir to train again.',
            flush=True,
        )
        if report:
          print(report, flush=True)
        return 0
    from . import launch  # pylint: disable=import-outside-toplevel

    launch.main(cfg, explicit, args)
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

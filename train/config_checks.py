"""Checks of a config before any work: options, and the run directory.

Static (they need neither devices nor data, nor JAX): :func:`validate`
refuses invalid or contradictory options with a message that names the fix
(each option's range and choices are data, :data:`RANGES` and
:data:`CHOICES`; each method's and regularizer's own checks are in its
table entry), and :func:`check_workdir` refuses to resume a run directory
made by a config that differs in what is trained. :func:`check` runs them
all once, as the command line does before it imports JAX.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from typing import Any, Callable, Collection

from . import methods
from . import regularizers
from .data import datasets
from .config import FIELDS, SCHEDULED, Config, ConfigError

# Fields that do not change the trained parameters: they may differ when a run
# directory is resumed.
NON_SEMANTIC_FIELDS = frozenset(
    {
        'workdir',
        'data_dir',
        'manual_dir',
        'eval_batch_size',
        'eval_every_epochs',
        'log_every_steps',
        'checkpoint_every_steps',
        'keep_checkpoints',
        'stop_at_step',
        'async_checkpointing',
        'progress',
        'report',
        'coordinator_address',
        'num_processes',
        'process_id',
    }
)


def semantic_diff(a: Config, b: Config) -> list[tuple[str, Any, Any]]:
  """Fields outside NON_SEMANTIC_FIELDS where ``a`` and ``b`` differ."""
  out = []
  for name in FIELDS:
    if name in NON_SEMANTIC_FIELDS:
      continue
    va, vb = getattr(a, name), getattr(b, name)
    if va != vb:
      out.append((name, va, vb))
  return out


# ---------------------------------------------------------------------------
# Validation (static: needs neither devices nor data, nor JAX).
# ---------------------------------------------------------------------------

SCHEDULES = ('constant', 'piecewise', 'cosine', 'warmup_cosine', 'linear')
SCHEDULES += ('warmup',)
# The options with a fixed set of values (the tables themselves for methods
# and regularizers: an entry added to them is a choice).
CHOICES: dict[str, Collection[str]] = {
    'method': methods.METHODS,
    'regularizer': regularizers.REGULARIZERS,
    'groups': ('output', 'input'),
    'tl1_group_prox': ('search', 'composition'),
    'group_solver': ('newton', 'pgd'),
    'prune_scope': ('layer', 'global'),
    'dtype': ('float32', 'bfloat16', 'float16'),
    'scale_penalty': regularizers.SCALE_PENALTIES,
    'nm_schedule': regularizers.NM_SCHEDULES,
    'asr_optimizer': ('same', 'sgd'),
    'asr_lr_schedule': ('constant', 'cosine'),
    **{f'{h}_schedule': SCHEDULES for h in SCHEDULED},
}
_AT_LEAST_0 = (lambda v: v >= 0, '>= 0')
_POSITIVE = (lambda v: v > 0, 'positive')
_UNIT = (lambda v: 0 <= v < 1, 'in [0, 1)')
# The numbers' ranges (of every element, for a tuple): field -> (test, what
# the message says the value must be).
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(
        (
            'epochs',
            'asr_epochs',
            'warmup_epochs',
            'lam',
            'lam2',
            'scale_lam',
            'weight_decay',
            'asr_weight_decay',
            'eval_batch_size',
            'steps_per_epoch',
            'gmp_begin_epoch',
            'init_scale',
            'stop_at_step',
            'checkpoint_every_steps',
            'seed',
            'num_processes',
        ),
        _AT_LEAST_0,
    ),
    'restart_epochs': (lambda v: v >= 0, 'epochs >= 0'),
    'lr_scales': (lambda v: v >= 0, 'factors >= 0'),
    'lam_scales': (lambda v: v >= 0, 'factors >= 0'),
    'gamma_scales': (lambda v: v > 0, 'positive factors'),
    **dict.fromkeys(
        (
            'batch_size',
            'context',
            'lr',
            'asr_lr',
            'tl1_a',
            'log_every_steps',
            'eval_every_epochs',
        ),
        _POSITIVE,
    ),
    'gamma': (lambda v: v > 0, 'positive (RDA steps with 1/(gamma*sqrt(n)))'),
    'momentum': _UNIT,
    'label_smoothing': _UNIT,
    'keep_checkpoints': (
        lambda v: v >= 2,
        '>= 2 (the previous checkpoint must survive a write interrupted by '
        'a kill)',
    ),
}


def _values(cfg: Config, name: str) -> tuple[Any, ...]:
  value = getattr(cfg, name)
  return value if isinstance(value, tuple) else (value,)


def check_values(cfg: Config) -> None:
  """Each option alone: its choices, a finite number, its range."""
  for name, choices in CHOICES.items():
    if getattr(cfg, name) not in choices:
      raise ConfigError(
          f'Unknown {name} {getattr(cfg, name)!r}: --{name} must be one of '
          f'{", ".join(choices)}.'
      )
  for name, f in FIELDS.items():
    if str(f.type).startswith(('float', 'tuple')) and not all(
        math.isfinite(v) for v in _values(cfg, name)
    ):
      raise ConfigError(
          f'--{name} must be a finite number, got {getattr(cfg, name)!r}.'
      )
  for name, (ok, what) in RANGES.items():
    if not all(ok(v) for v in _values(cfg, name)):
      value = getattr(cfg, name)
      value = list(value) if isinstance(value, tuple) else value
      raise ConfigError(f'--{name} must be {what}, got {value}.')
  try:
    re.compile(cfg.select)
  except re.error as e:
    raise ConfigError(
        f'--select {cfg.select!r} is not kernels, conv, dense or a valid '
        f'regular expression: {e}'
    ) from e


def _check_schedule(cfg: Config, h: str) -> None:
  _, _, kind, bounds, scales = cfg.schedule(h)
  if kind == 'piecewise':
    if not bounds or len(bounds) != len(scales):
      raise ConfigError(
          f'--{h}_schedule piecewise needs --{h}_boundaries (epochs) and '
          f'--{h}_scales (factors) of the same length, got {list(bounds)} '
          f'and {list(scales)}, e.g. --{h}_boundaries 100,150 '
          f'--{h}_scales 0.1,0.1.'
      )
    if any(b < 0 for b in bounds) or list(bounds) != sorted(bounds):
      raise ConfigError(
          f'--{h}_boundaries must be increasing epochs >= 0, '
          f'got {list(bounds)}.'
      )
  elif kind == 'linear':
    if len(scales) != 1 or bounds:
      raise ConfigError(
          f'--{h}_schedule linear takes one end factor: '
          f'--{h}_scales 0.01 (and no boundaries).'
      )
  elif bounds or scales:
    raise ConfigError(
        f'--{h}_boundaries / --{h}_scales are for a piecewise '
        f'or linear schedule; --{h}_schedule is {kind}.'
    )


def _check_asr(cfg: Config, method: methods.Method, makes_zeros: bool) -> None:
  """ASR retrains the exact zeros of a sparse phase before it."""
  if cfg.asr_epochs <= 0:
    return
  if not method.sparse:
    sparse = [m.name for m in methods.METHODS.values() if m.sparse]
    raise ConfigError(
        f'ASR (--asr_epochs {cfg.asr_epochs:g}) retrains the zeros of a '
        f'sparse phase, but --method {cfg.method} has none: use --method '
        f'{" / ".join(sparse)} with --lam > 0, or set --asr_epochs 0.'
    )
  if cfg.epochs <= 0:
    raise ConfigError(
        'ASR without a sparse phase: --asr_epochs > 0 needs '
        '--epochs > 0 of the sparse method before it.'
    )
  if not makes_zeros:
    raise ConfigError(
        'ASR without a sparse phase: with --regularizer '
        f'{cfg.regularizer} and --lam {cfg.lam:g} the {cfg.method} phase '
        'makes no zeros to freeze; set --lam > 0 (and a regularizer), '
        '--target_sparsity > 0 (--regularizer sparsity), --nm N:M '
        '(--regularizer nm) or --asr_epochs 0.'
    )


def validate(
    cfg: Config,
    explicit: frozenset[str] | set[str] = frozenset(),
    *,
    need_init_from: bool = True,
) -> Config:
  """Checks a config for errors that need neither devices nor data.

  Light: it reads the config and the tables (:mod:`train.methods`,
  :mod:`train.regularizers`) only, and imports no JAX, so the command line
  answers a bad option at once.

  Args:
    cfg: the config.
    explicit: names of the fields the user set explicitly (CLI / overrides);
      options that the chosen method ignores are errors only when explicit
      (a preset may carry values other methods use).
    need_init_from: whether a method that starts from a run (han) without
      ``--init_from`` is an error (not when only printing the config).

  Returns:
    ``cfg`` unchanged.

  Raises:
    ConfigError: naming the option and the fix.
  """
  explicit = frozenset(explicit)
  check_values(cfg)
  for h in SCHEDULED:
    _check_schedule(cfg, h)
  if cfg.epochs + cfg.asr_epochs <= 0:
    raise ConfigError('Nothing to train: --epochs and --asr_epochs are both 0.')
  if cfg.asr_weight_decay and cfg.asr_optimizer != 'sgd':
    raise ConfigError(
        '--asr_weight_decay is the decay of --asr_optimizer sgd; with '
        f'--asr_optimizer {cfg.asr_optimizer} ASR retrains with the main '
        "phase's method, whose decay is --weight_decay."
    )
  if not cfg.workdir:
    raise ConfigError('--workdir is required.')
  method = methods.get(cfg.method)
  reg = regularizers.get(cfg.regularizer)
  _check_asr(cfg, method, reg.makes_zeros(cfg) or cfg.scale_lam > 0)
  bad = sorted(explicit & method.ignores)
  if bad:  # Options the chosen method ignores, when set explicitly.
    raise ConfigError(
        f'--method {cfg.method} does not use {", ".join("--" + b for b in bad)}'
        '; drop them or choose the method that does ('
        f'{methods.options_summary()}).'
    )
  # Each method's and (for a method with one) regularizer's own checks.
  checks = [method.check]
  if 'regularizer' in method.reads:
    checks.append(reg.check)
  for check in filter(None, checks):
    try:
      check(cfg, explicit)
    except ValueError as e:
      raise ConfigError(str(e)) from e
  if method.from_run and not cfg.init_from and need_init_from:
    raise ConfigError(
        f'--method {cfg.method} prunes a trained model then fine-tunes it: '
        'pass --init_from RUN_DIR of a dense (sgd, adamw) or rda run.'
    )
  return cfg


def check(
    cfg: Config,
    explicit: frozenset[str] | set[str] = frozenset(),
    *,
    printing: bool = False,
) -> Config | None:
  """Every check of a run that needs no JAX, once: the options
  (:func:`validate`), the dataset's name, ``--init_from`` and the run
  directory (:func:`check_workdir_path`, :func:`check_workdir`).

  Args:
    cfg: the config.
    explicit: the options set explicitly (see :func:`validate`).
    printing: only printing the config (``--print_config``): a han config
      may lack ``--init_from``, and the run directory may hold another run.

  Returns:
    The config stored in the run directory, or None (a new run, or
    ``printing``).

  Raises:
    ConfigError: naming the option and the fix.
  """
  validate(cfg, explicit, need_init_from=not printing)
  try:
    datasets.check_dataset(cfg.dataset)
    datasets.check_splits(cfg.dataset, cfg.train_split, cfg.eval_split)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  if cfg.init_from and not os.path.isdir(cfg.init_from):
    raise ConfigError(f'--init_from {cfg.init_from!r} is not a directory.')
  check_workdir_path(cfg.workdir)
  return None if printing else check_workdir(cfg)


def check_workdir_path(workdir: str) -> None:
  """``workdir`` is a directory, or one that can be created (nothing is left
  behind by the check)."""
  path = os.path.abspath(workdir)
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise ConfigError(
          f'--workdir {workdir!r} is a file, not a directory: '
          'choose another path.'
      )
    if not os.access(path, os.W_OK):
      raise ConfigError(f'--workdir {workdir!r} is not writable.')
    return
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise ConfigError(
        f'--workdir {workdir!r}: {parent!r} is a file, so the '
        'run directory cannot be created under it.'
    )
  try:
    probe = tempfile.mkdtemp(dir=parent, prefix='.rda_probe_')
    os.rmdir(probe)
  except OSError as e:
    raise ConfigError(
        f'--workdir {workdir!r} cannot be created under '
        f'{parent!r}: {e.strerror or e}.'
    ) from e


def check_workdir(cfg: Config) -> Config | None:
  """Checks that ``cfg.workdir`` is new or was made by an equivalent config.

  Returns:
    The config stored in the run directory, or None for a new run.

  Raises:
    ConfigError: the run directory holds a run of a different config.
  """
  path = os.path.join(cfg.workdir, 'config.json')
  if not os.path.exists(path):
    ckpts = os.path.join(cfg.workdir, 'checkpoints')
    if os.path.isdir(ckpts) and any(n.isdigit() for n in os.listdir(ckpts)):
      raise ConfigError(
          f'The run directory {cfg.workdir} has checkpoints but no '
          'config.json, so nothing says which config made them: restore its '
          'config.json, or choose a new --workdir.'
      )
    return None
  try:
    with open(path) as f:
      stored = Config.from_dict(json.load(f))
  except (OSError, ValueError, TypeError) as e:
    raise ConfigError(f'Cannot read the run config {path}: {e}') from e
  diffs = semantic_diff(stored, cfg)
  if diffs:
    lines = '\n'.join(f'  --{k}: run has {a!r}, now {b!r}' for k, a, b in diffs)
    raise ConfigError(
        f'The run directory {cfg.workdir} holds a run of a different config:\n'
        f'{lines}\nResume it with the same options (e.g. --config {path} '
        '--stop_at_step 0), or choose a new --workdir.'
    )
  return stored

"""Checks of a config before any work: options, and the run directory.

Static (they need neither devices nor data): :func:`validate` refuses
invalid or contradictory options with a message that names the fix, and
:func:`check_workdir` refuses to resume a run directory made by a config
that differs in what is trained.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

from . import methods
from .config import (
    ASR_LR_SCHEDULES,
    ASR_OPTIMIZERS,
    DTYPES,
    FIELDS,
    GROUPS,
    PRUNE_SCOPES,
    REGULARIZERS,
    SCHEDULED,
    SCHEDULES,
    Config,
    ConfigError,
)

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
# Validation (static: needs neither devices nor data).
# ---------------------------------------------------------------------------


def _choice(name: str, value: str, choices) -> None:
  if value not in choices:
    raise ConfigError(
        f'Unknown {name} {value!r}. Choose one of: {", ".join(choices)}.'
    )


def validate(
    cfg: Config,
    explicit: frozenset[str] | set[str] = frozenset(),
    *,
    need_init_from: bool = True,
) -> Config:
  """Checks a config for errors that need neither devices nor data.

  Args:
    cfg: the config.
    explicit: names of the fields the user set explicitly (CLI / overrides);
      options that the chosen method ignores are errors only when explicit
      (a preset may carry values other methods use).
    need_init_from: whether ``--method han`` without ``--init_from`` is an
      error (not when only printing the config).

  Returns:
    ``cfg`` unchanged.

  Raises:
    ConfigError: naming the option and the fix.
  """
  _choice('method', cfg.method, tuple(methods.METHODS))
  _choice('regularizer', cfg.regularizer, REGULARIZERS)
  _choice('groups', cfg.groups, GROUPS)
  _choice('tl1_group_prox', cfg.tl1_group_prox, ('search', 'composition'))
  _choice('prune_scope', cfg.prune_scope, PRUNE_SCOPES)
  _choice('dtype', cfg.dtype, DTYPES)
  for name, f in FIELDS.items():
    value = getattr(cfg, name)
    values = value if isinstance(value, tuple) else (value,)
    if str(f.type).startswith(('float', 'tuple')) and not all(
        math.isfinite(v) for v in values
    ):
      raise ConfigError(f'--{name} must be a finite number, got {value!r}.')
  _choice('asr_optimizer', cfg.asr_optimizer, ASR_OPTIMIZERS)
  _choice('asr_lr_schedule', cfg.asr_lr_schedule, ASR_LR_SCHEDULES)
  if not math.isfinite(cfg.asr_lr) or cfg.asr_lr <= 0:
    raise ConfigError(f'--asr_lr must be positive, got {cfg.asr_lr}.')
  if cfg.asr_weight_decay and cfg.asr_optimizer != 'sgd':
    raise ConfigError(
        '--asr_weight_decay is the decay of --asr_optimizer sgd; with '
        f'--asr_optimizer {cfg.asr_optimizer} ASR retrains with the main '
        "phase's method, whose decay is --weight_decay."
    )
  if any(e < 0 for e in cfg.restart_epochs):
    raise ConfigError(
        f'--restart_epochs must be epochs >= 0, got '
        f'{list(cfg.restart_epochs)}.'
    )
  for h in SCHEDULED:
    _, _, kind, bounds, scales = cfg.schedule(h)
    _choice(f'{h}_schedule', kind, SCHEDULES)
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
  if cfg.batch_size <= 0 or cfg.eval_batch_size < 0:
    raise ConfigError(f'--batch_size must be positive, got {cfg.batch_size}.')
  for name in (
      'epochs',
      'asr_epochs',
      'warmup_epochs',
      'lam',
      'lam2',
      'scale_lam',
      'weight_decay',
      'asr_weight_decay',
      'label_smoothing',
      'steps_per_epoch',
      'gmp_begin_epoch',
      'init_scale',
      'stop_at_step',
      'checkpoint_every_steps',
  ):
    if getattr(cfg, name) < 0:
      raise ConfigError(f'--{name} must be >= 0, got {getattr(cfg, name)}.')
  if cfg.epochs + cfg.asr_epochs <= 0:
    raise ConfigError('Nothing to train: --epochs and --asr_epochs are both 0.')
  if not math.isfinite(cfg.lr) or cfg.lr <= 0:
    raise ConfigError(f'--lr must be positive, got {cfg.lr}.')
  if cfg.gamma <= 0:
    raise ConfigError(
        f'--gamma must be positive, got {cfg.gamma} '
        '(RDA steps with 1/(gamma*sqrt(n))).'
    )
  if not 0 <= cfg.momentum < 1:
    raise ConfigError(f'--momentum must be in [0, 1), got {cfg.momentum}.')
  if cfg.scale_penalty not in methods.SCALE_PENALTIES:
    raise ConfigError(
        f'--scale_penalty must be one of {", ".join(methods.SCALE_PENALTIES)}'
        f', got {cfg.scale_penalty!r}.'
    )
  if cfg.tl1_a <= 0:
    raise ConfigError(f'--tl1_a must be positive, got {cfg.tl1_a}.')
  if cfg.log_every_steps <= 0:
    raise ConfigError('--log_every_steps must be positive.')
  if cfg.eval_every_epochs <= 0:
    raise ConfigError('--eval_every_epochs must be positive.')
  if cfg.keep_checkpoints < 2:
    raise ConfigError(
        f'--keep_checkpoints must be >= 2 (got {cfg.keep_checkpoints}): the '
        'previous checkpoint must survive a write interrupted by a kill.'
    )
  if not cfg.workdir:
    raise ConfigError('--workdir is required.')

  sparse = methods.METHODS[cfg.method].sparse
  if cfg.regularizer == 'sparsity':
    has_reg = cfg.target_sparsity > 0
    if not 0 <= cfg.target_sparsity < 1:
      raise ConfigError(
          f'--target_sparsity must be in [0, 1), got ' f'{cfg.target_sparsity}.'
      )
    end = methods.target_end_epoch(cfg)
    if not 0 <= cfg.target_begin_epoch <= end <= cfg.epochs:
      raise ConfigError(
          f'--regularizer sparsity needs 0 <= --target_begin_epoch '
          f'({cfg.target_begin_epoch:g}) <= --target_end_epoch ({end:g}) <= '
          f'--epochs ({cfg.epochs:g}).'
      )
  elif cfg.regularizer == 'nm':
    has_reg = True  # A constraint: N:M from the end of its ramp.
  else:
    has_reg = cfg.regularizer != 'none' and (cfg.lam > 0 or cfg.lam2 > 0)
  has_reg = has_reg or cfg.scale_lam > 0
  # ASR needs a sparse phase that made exact zeros.
  if cfg.asr_epochs > 0:
    if not sparse:
      raise ConfigError(
          f'ASR (--asr_epochs {cfg.asr_epochs:g}) retrains the zeros of a '
          f'sparse phase, but --method {cfg.method} has none: use --method '
          f'{" / ".join(m.name for m in methods.METHODS.values() if m.sparse)}'
          ' with --lam > 0, or set --asr_epochs 0.'
      )
    if cfg.epochs <= 0:
      raise ConfigError(
          'ASR without a sparse phase: --asr_epochs > 0 needs '
          '--epochs > 0 of the sparse method before it.'
      )
    if not has_reg:
      raise ConfigError(
          'ASR without a sparse phase: with --regularizer '
          f'{cfg.regularizer} and --lam {cfg.lam:g} the {cfg.method} phase '
          'makes no zeros to freeze; set --lam > 0 (and a regularizer), '
          '--target_sparsity > 0 (--regularizer sparsity) or --asr_epochs 0.'
      )
  method = methods.get(cfg.method)
  if method.check is not None:
    try:
      method.check(cfg)
    except ValueError as e:
      raise ConfigError(str(e)) from e
  if method.from_run:
    if not cfg.init_from and need_init_from:
      raise ConfigError(
          f'--method {cfg.method} prunes a trained model then fine-tunes it: '
          'pass --init_from RUN_DIR of a dense (sgd) or rda run.'
      )
    if not 0 <= cfg.prune_sparsity < 1:
      raise ConfigError(
          f'--prune_sparsity must be in [0, 1), got {cfg.prune_sparsity}.'
      )
  if cfg.method == 'gmp':
    if not 0 <= cfg.gmp_sparsity < 1:
      raise ConfigError(
          f'--gmp_sparsity must be in [0, 1), got {cfg.gmp_sparsity}.'
      )
    end = methods.gmp_end_epoch(cfg)
    if not cfg.gmp_begin_epoch <= end <= cfg.epochs:
      raise ConfigError(
          f'gmp needs --gmp_begin_epoch ({cfg.gmp_begin_epoch:g}) <= '
          f'--gmp_end_epoch ({end:g}) <= --epochs ({cfg.epochs:g}).'
      )
    if cfg.gmp_frequency <= 0:
      raise ConfigError('--gmp_frequency must be positive.')
  if cfg.init_from and not os.path.isdir(cfg.init_from):
    raise ConfigError(f'--init_from {cfg.init_from!r} is not a directory.')
  check_workdir_path(cfg.workdir)

  # Options the chosen method ignores, when set explicitly.
  bad = sorted(set(explicit) & method.ignores)
  if bad:
    raise ConfigError(
        f'--method {cfg.method} does not use {", ".join("--" + b for b in bad)}'
        '; drop them or choose the method that does ('
        f'{methods.options_summary()}).'
    )
  # The constraint has no λ; the target options mean nothing without it.
  target_opts = {'target_sparsity', 'target_begin_epoch', 'target_end_epoch'}
  if cfg.regularizer == 'sparsity' and set(explicit) & {'lam', 'lam2'}:
    raise ConfigError(
        '--regularizer sparsity constrains the sparsity itself and has no '
        'strength: drop --lam / --lam2 and set --target_sparsity (and its '
        'ramp, --target_begin_epoch / --target_end_epoch).'
    )
  if cfg.regularizer == 'nm':  # The ramp of N:M (check_nm); no target.
    target_opts = target_opts - {'target_begin_epoch', 'target_end_epoch'}
  if cfg.regularizer != 'sparsity' and set(explicit) & target_opts:
    bad = ', '.join('--' + o for o in sorted(set(explicit) & target_opts))
    raise ConfigError(
        f'{bad} set the target of --regularizer sparsity, but the '
        f'regularizer is {cfg.regularizer}: add --regularizer sparsity, or '
        f'drop them and set --lam.'
    )
  try:
    methods.check_nm(cfg, explicit)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  if cfg.regularizer == 'sparse_group_lasso' and cfg.lam2 == 0 and sparse:
    raise ConfigError(
        '--regularizer sparse_group_lasso needs --lam2 > 0 '
        '(the group strength; --lam is the l1 strength).'
    )
  return cfg


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

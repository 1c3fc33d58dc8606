"""Configuration of `python -m train`: one dataclass, its fields and files.

A run is described by a :class:`Config`. It starts from a preset
(:data:`train.presets.PRESETS`; ``default`` when none is named) and command-line overrides
replace single fields (:mod:`train.cli`). The resolved config is written to
``<workdir>/config.json``; re-running with the same ``workdir`` resumes the
run and refuses a config that differs in any field that changes what is
trained (:data:`train.config_checks.NON_SEMANTIC_FIELDS` lists the ones that
may change).
The checks of a config before any work are :mod:`train.config_checks`.

Epoch-valued options (``epochs``, ``*_boundaries``, ``warmup_epochs``, ...)
are converted to steps with the number of steps per epoch,
``num_train_examples // batch_size`` (or ``steps_per_epoch`` when set).

Why a dataclass and argparse rather than ``ml_collections`` and absl flags
(as flax/examples use): each field is declared once, with its type, its
default and its docstring, and the CLI flags, the ``--help`` text, type
coercion, validation and the ``config.json`` of a run all derive from that
declaration; ``ml_collections`` would add a second source of defaults
(``get_config()`` files beside the dataclass) and a dependency, and absl's
global flag registry gets in the way of calling ``train.cli.main(argv)``
several times in one process, as the tests do. Presets play the role of the
examples' config files (:mod:`train.presets`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from . import methods

# The values of the fields (coerce, ConfigError, ScheduleSpec) are in a
# module of their own; their names are this module's too.
from .config_values import ConfigError
from .config_values import ScheduleSpec
from .config_values import coerce
from .methods import SCHEDULED
from .presets import PRESETS


class Diverged(RuntimeError):
  """Training produced a non-finite loss; the message says what to change."""


@dataclasses.dataclass
class Config:
  """Everything a training run depends on. Field docs double as CLI help."""

  # --- What to train -------------------------------------------------------
  model: str = 'lenet300_100'
  """Model name of `models.create` (lenet5, lenet300_100, resnet18, vgg16, ...)."""
  dataset: str = 'mnist'
  """TFDS dataset name (mnist, cifar10, cifar100, imagenet2012, ...), or a
  text corpus for a character-level language model (shakespeare_char)."""
  method: str = 'rmda'
  """The training method, one of train.methods.METHODS (listed by --help)."""

  # --- Data ----------------------------------------------------------------
  data_dir: str | None = None
  """TFDS data directory, where datasets are prepared and read (MNIST takes
  about 130 MB there: the prepared dataset and its extracted archives).
  (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)"""
  manual_dir: str | None = None
  """TFDS manual download folder (e.g. ../shared/data/mnist); env RDA_MANUAL_DIR."""
  train_split: str = 'train'
  """TFDS split (or slice, e.g. 'train[:90%]') to train on."""
  eval_split: str = 'test'
  """TFDS split to evaluate on ('test'; ImageNet: 'validation'); a text
  corpus: its held-out slice 'test', or its beginning for a quicker look
  ('test[:5%]', 'test[:20000]' characters)."""
  batch_size: int = 128
  """Global batch size (all devices of all hosts)."""
  eval_batch_size: int = 0
  """Global eval batch size; 0 = batch_size."""
  context: int = 128
  """Language models (--dataset shakespeare_char): characters per window,
  the model's context (a batch is --batch_size windows)."""

  # --- Phases --------------------------------------------------------------
  epochs: float = 8.0
  """Epochs of the main phase (the sparse phase of a sparse method)."""
  asr_epochs: float = 4.0
  """Epochs of adaptive sparse retraining after the main phase (0 = none)."""
  asr_restart: bool = True
  """Restart the inner optimizer's state (RDA's centre, sum and count) at ASR
  (measured better: benchmarks/asr_restart.py)."""
  asr_optimizer: str = 'sgd'
  """ASR retrains with: same (the sparse method, restarted per --asr_restart)
  or sgd (SGD with --momentum at --asr_lr), the zeros frozen either way."""
  asr_lr: float = 0.03
  """Learning rate of --asr_optimizer sgd."""
  asr_lr_schedule: str = 'cosine'
  """constant | cosine (to 0 over the ASR phase), for --asr_optimizer sgd."""
  asr_weight_decay: float = 0.0
  """ℓ2 weight decay of --asr_optimizer sgd (the selected leaves; the frozen
  zeros stay zero). --weight_decay is the main phase's, and ASR's only with
  --asr_optimizer same."""
  steps_per_epoch: int = 0
  """Override the steps per epoch (0 = train examples // batch_size); for tests."""

  # --- Hyper-parameters (each can be a schedule) ---------------------------
  lr: float = 0.2
  """Learning rate of the methods that take one."""
  lr_schedule: str = 'constant'
  """constant | piecewise | cosine | warmup_cosine | linear | warmup (linear
  from 0 over --warmup_epochs, then constant)."""
  lr_boundaries: tuple[float, ...] = ()
  """Epochs where the piecewise schedule multiplies by the matching scale."""
  lr_scales: tuple[float, ...] = ()
  """Factors for piecewise (one per boundary); for linear: the end factor."""
  warmup_epochs: float = 0.0
  """Warm-up epochs of warmup_cosine (any of lr / gamma / lam)."""
  momentum: float = 0.9
  """Momentum μ of the SGD-based methods; rmda interpolates with c = 1 − μ
  (0: no momentum, exact zeros at every step)."""
  nesterov: bool = False
  """Nesterov momentum for the SGD-based methods and --asr_optimizer sgd."""
  restart_epochs: tuple[float, ...] = ()
  """rmda: epochs at which to restart the dual averaging from the current
  weights (e.g. where the learning rate drops)."""
  weight_decay: float = 0.0
  """ℓ2 weight decay added to the gradient of the selected leaves."""
  adamw_weight_decay: float = 0.0
  """Decoupled weight decay ω of the AdamW-based methods (adamw, prox_adamw,
  gmp_adamw, han_adamw): w ← (1 − η·ω)·w on the selected leaves."""
  split_optimizer: str = 'adam'
  """splitting: optimizer of the dense weights W: adam (at --lr) or sgd
  (--lr, --momentum, --nesterov)."""
  beta: float = 2.5
  """splitting: coupling β of W and its sparse copy V (paper 001: 2.5)."""
  beta_growth: float = 1.25
  """splitting: β is multiplied by this every --beta_every_epochs."""
  beta_every_epochs: float = 0.0
  """splitting: epochs between increases of β (0 = constant β)."""
  gamma: float = 1.0
  """RDA's γ (β_n = γ√n)."""
  gamma_schedule: str = 'constant'
  """Schedule of γ: constant | piecewise | cosine | warmup_cosine | linear | warmup."""
  gamma_boundaries: tuple[float, ...] = ()
  """Epochs where the piecewise γ schedule multiplies by the matching scale."""
  gamma_scales: tuple[float, ...] = ()
  """Factors of the piecewise γ schedule (linear: one end factor)."""
  lam: float = 5e-4
  """Regularization strength λ (ℓ1 / ℓ0 / TL1 / group strength)."""
  lam_schedule: str = 'constant'
  """Schedule of λ: constant | piecewise | cosine | warmup_cosine | linear | warmup."""
  lam_boundaries: tuple[float, ...] = ()
  """Epochs where the piecewise λ schedule multiplies by the matching scale."""
  lam_scales: tuple[float, ...] = ()
  """Factors of the piecewise λ schedule (linear: one end factor)."""

  # --- Regularizer and leaf selection --------------------------------------
  regularizer: str = 'l1'
  """The penalty of the sparse methods, one of train.regularizers.REGULARIZERS
  (listed by --help)."""
  lam2: float = 0.0
  """Group strength λ₂ (λ₂ Σ √n_g ‖w_g‖) of the regularizers and methods
  with a group term."""
  groups: str = 'output'
  """Groups of group penalties: output (channels / neurons) or input."""
  target_sparsity: float = 0.9
  """--regularizer sparsity: the sparsity the constraint reaches (global or
  per-layer ranking: --prune_scope), along Zhu & Gupta's cubic ramp."""
  target_begin_epoch: float = 0.0
  """--regularizer sparsity: epoch where the ramp starts (sparsity 0 before)."""
  target_end_epoch: float = -1.0
  """--regularizer sparsity: epoch where --target_sparsity is reached
  (-1 = 3/4 of --epochs)."""
  nm: str = ''
  """N:M sparsity, e.g. 2:4 (at most N nonzeros in every M consecutive
  weights along each kernel's input axis): the constraint of --regularizer
  nm, or the pattern that gmp / gmp_adamw / han / han_adamw prune to by
  magnitude instead of --gmp_sparsity / --prune_sparsity."""
  nm_schedule: str = 'n'
  """How N:M is reached gradually (--regularizer nm and gmp): n (N from M
  down to N, Zhu & Gupta's cubic) or fraction (the share of groups held to
  N:M from 0 to 1)."""
  group_solver: str = 'newton'
  """ramda / prox_adamw with group_lasso or sparse_group_lasso: how the
  subproblem in the preconditioner's norm is solved, newton (exactly, a
  handful of passes) or pgd (the RAMDA reference code's inexact
  proximal-gradient loop, as the paper's experiments; about ten times
  slower)."""
  tl1_a: float = 1.0
  """The `a` of transformed ℓ1."""
  tl1_group_prox: str = 'search'
  """tl1 with a group term (--lam2): its prox, search (exact up to a
  tolerance) or composition (TL1 then group thresholding: faster, approximate)."""
  scale_lam: float = 0.0
  """ℓ1 strength on the batch-norm scales γ (network slimming), beside
  --regularizer on the selected kernels: a zero γ makes its channel a
  constant, which `python -m train.export` removes (models with batch norm;
  0 = off). Zero scales are frozen by ASR."""
  scale_penalty: str = 'l1'
  """--scale_lam's penalty: l1 (each scale alone, network slimming) or
  channel (group lasso over the scales and shifts of the batch norms after
  every layer writing a channel, a residual stream's channel one group: a
  zero group is an exactly zero channel the export always removes)."""
  select: str = 'kernels'
  """Leaves regularized / frozen / pruned: kernels (ndim > 1; for the
  transformers gpt_char and vit_cifar their weight kernels only,
  models.kernel_mask: embeddings, positions and norms stay dense), conv,
  dense, or a regular expression searched in the leaf path ('Conv_0/kernel')."""

  # --- Initialization ------------------------------------------------------
  init_scale: float = 0.0
  """RDA's uniform init scale s (variance s/fan_in) for the kernels, for the
  methods that read it (0 = the method's default: s = 2 for rda, the model's
  init for rmda); the others start from the model's default init, as the
  paper does for Prox-SGD."""
  init_from: str = ''
  """Run directory (or checkpoint directory) whose params / batch stats start
  this run; required by han."""

  # --- Pruning baselines ---------------------------------------------------
  prune_sparsity: float = 0.9
  """han: sparsity of the one-shot magnitude pruning of --init_from."""
  prune_scope: str = 'global'
  """global | layer magnitude threshold of the pruning methods and of
  --regularizer sparsity; global is the stronger baseline on every measured
  sparsity level (docs/results.md)."""
  gmp_sparsity: float = 0.9
  """gmp: final sparsity."""
  gmp_begin_epoch: float = 0.0
  """gmp: epoch where pruning starts (sparsity 0 until then)."""
  gmp_end_epoch: float = -1.0
  """gmp: epoch where the final sparsity is reached (-1 = 3/4 of --epochs)."""
  gmp_frequency: int = 100
  """gmp: steps between mask updates."""

  # --- Model ---------------------------------------------------------------
  dtype: str = 'float32'
  """Compute dtype of the model: float32 | bfloat16 | float16."""
  label_smoothing: float = 0.0
  """Label smoothing of the cross-entropy (0 = none)."""

  # --- Run -----------------------------------------------------------------
  workdir: str = 'runs/default'
  """Run directory: config, metrics, checkpoints, report; an existing one resumes."""
  seed: int = 0
  """Random seed of the initialization, the data order and augmentation."""
  log_every_steps: int = 100
  """Steps between training-metric records (loss, accuracy, sparsity, rates)."""
  eval_every_epochs: float = 1.0
  """Epochs between evaluations (each also writes a checkpoint)."""
  checkpoint_every_steps: int = 0
  """Checkpoint every this many steps (besides each eval); 0 = at evals only."""
  stop_at_step: int = 0
  """Stop (with a checkpoint) after this step, to continue in a later session
  with the same --workdir; 0 = train to the end."""
  keep_checkpoints: int = 3
  """Checkpoints kept (at least 2, so an interrupted write never loses all)."""
  async_checkpointing: bool = True
  """Write checkpoints in the background (Orbax async)."""
  progress: bool = True
  """tqdm progress bar on process 0."""
  report: bool = True
  """Write the final report (table + PNG plots) at the end."""

  # --- Multi-host ----------------------------------------------------------
  coordinator_address: str = ''
  """host:port of process 0 for jax.distributed.initialize (env JAX_COORDINATOR_ADDRESS)."""
  num_processes: int = 0
  """Number of processes (env JAX_NUM_PROCESSES); 0 = single process."""
  process_id: int = -1
  """This process's index (env JAX_PROCESS_ID)."""

  # -------------------------------------------------------------------------
  def replace(self, **changes: Any) -> 'Config':
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(self).items()
    }

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> 'Config':
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(names))
    if unknown:
      raise ConfigError(
          f'Unknown config fields {unknown}; known: {sorted(names)}'
      )
    return cls(**{k: coerce(names[k], v) for k, v in d.items()})

  def schedule(self, name: str) -> ScheduleSpec:
    """The schedule of ``name`` (one of :data:`SCHEDULED`)."""
    if name not in SCHEDULED:
      raise KeyError(f'{name!r} has no schedule; scheduled: {SCHEDULED}.')
    return ScheduleSpec(
        name,
        getattr(self, name),
        getattr(self, f'{name}_schedule'),
        getattr(self, f'{name}_boundaries'),
        getattr(self, f'{name}_scales'),
    )

  @property
  def eval_batch(self) -> int:
    return self.eval_batch_size or self.batch_size

  @property
  def effective_init_scale(self) -> float:
    """The RDA init scale used for the kernels (0 = model default init)."""
    default = methods.get(self.method).init_scale_default
    if default is None:
      return 0.0
    return self.init_scale or default


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def get_config(preset: str | None = None, **overrides: Any) -> Config:
  """The config of a preset (``default`` when None) with field overrides."""
  name = preset or 'default'
  if name not in PRESETS:
    raise ConfigError(
        f'Unknown preset {name!r}. Known presets: {", ".join(sorted(PRESETS))}.'
    )
  values = dict(PRESETS[name])
  unknown = sorted(set(overrides) - set(FIELDS))
  if unknown:
    raise ConfigError(f'Unknown config fields {unknown}.')
  values.update(overrides)
  method = values.get('method', Config.method)
  known = methods.METHODS.get(method)
  if known is not None and not known.sparse and 'asr_epochs' not in overrides:
    # A preset's ASR phase belongs to its sparse method: another method
    # (one not Method.sparse) has no zeros of its own to retrain.
    values['asr_epochs'] = 0.0
  return Config.from_dict(values)


def write_config(cfg: Config, path: str) -> None:
  """Writes the resolved config as JSON (atomically)."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(cfg.to_json() + '\n')
  os.replace(tmp, path)


def load_config(path: str) -> Config:
  """Reads a config JSON file (a run's ``config.json`` or a directory)."""
  if os.path.isdir(path):
    path = os.path.join(path, 'config.json')
  try:
    with open(path) as f:
      return Config.from_dict(json.load(f))
  except (OSError, ValueError) as e:
    raise ConfigError(f'Cannot read config {path}: {e}') from e

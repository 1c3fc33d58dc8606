"""Accuracy against sparsity: every method, several strengths, several seeds.

One command per setting runs the whole sweep (method × hyper-parameter
variant × strength × seed), each run a plain ``python -m train`` command, at
the same total epoch budget for every method. Runs already finished are
skipped, so an interrupted sweep resumes where it stopped (and a run killed
midway resumes from its own checkpoint).

    python benchmarks/frontier.py lenet300                 # the whole sweep
    python benchmarks/frontier.py lenet300 --seeds 0 --methods rmda han_global
    python benchmarks/frontier.py lenet300 --report        # tables + plot only
    python benchmarks/frontier.py lenet300 --list          # the commands, no runs
    python benchmarks/frontier.py cifar_resnet8 --seeds 0 --methods han_global \
        --strengths 0.95                                   # one point (+ parent)

Writes ``<out>/results.json`` (one record per run: method, variant,
strength, seed, final test top-1, kernel sparsity, the exact command),
``<out>/frontier.png`` (accuracy against sparsity, one curve per method,
mean ± std over seeds) and ``<out>/frontier.md`` (the tables).

**How methods are compared.** For each sparsity level L and method, the
candidates are the (variant, strength) points whose mean sparsity over seeds
is at least L; the method's entry is the best mean accuracy among them (so a
regularization method that overshoots L is compared at its higher sparsity,
never the other way round), a point never losing to one measured over fewer
seeds (see ``at_levels``). Every method's grid of variants is chosen on the
same test split, with comparable effort (see ``SETTINGS``); pruning methods
hit L exactly. Dense SGD at the full budget is the reference.
"""

from __future__ import annotations

import argparse
from concurrent import futures
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from train import metrics as train_metrics  # pylint: disable=wrong-import-position

LEVELS = (0.90, 0.95, 0.97, 0.98, 0.99, 0.995)


@dataclasses.dataclass(frozen=True)
class Run:
  """One ``python -m train`` run of the sweep."""

  method: str  # Curve name (rmda, rda, han_global, ...).
  variant: str  # Hyper-parameters other than the strength.
  strength: float  # λ, or the target sparsity of a pruning method.
  seed: int
  flags: tuple[str, ...]
  needs: 'Run | None' = None  # A run whose directory --init_from names.

  @property
  def name(self) -> str:
    return f'{self.method}/{self.variant}/{self.strength:g}/seed{self.seed}'


def _flags(d: dict[str, Any]) -> tuple[str, ...]:
  out = []
  for k, v in d.items():
    if isinstance(v, bool):
      out.append(f'--{k}' if v else f'--no-{k}')
    else:
      out += [f'--{k}', str(v)]
  return tuple(out)


@dataclasses.dataclass(frozen=True)
class Setting:
  """A model / dataset / budget and each method's grid."""

  base: dict[str, Any]  # model, dataset, batch size, ...
  epochs: float  # The total budget of every method.
  sparse_epochs: float  # Sparse phase (then ASR) / dense phase of han.
  lams: dict[str, tuple[float, ...]]  # Strength grids of rmda, rda, prox.
  variants: dict[str, dict[str, dict[str, Any]]]
  levels: tuple[float, ...] = LEVELS
  note: str = ''
  plot_depth: float = 15.0  # How far below dense the plot may reach (points).

  def runs(
      self, seeds, methods=None, strengths=None, variants=None
  ) -> list[Run]:
    """The sweep's runs (optionally only some methods, strengths, variants)."""
    out = self._runs(seeds, methods)
    if variants:
      keep_v = lambda r: r.variant in variants or r.variant == 'parent'
      out = [r for r in out if keep_v(r)]
    if strengths:
      keep = lambda r: r.method == 'dense' or any(
          math.isclose(r.strength, s, rel_tol=1e-6) for s in strengths
      )
      needed = {r.needs for r in out if keep(r) and r.needs is not None}
      out = [r for r in out if keep(r) or r in needed]
    return out

  def _runs(self, seeds, methods=None) -> list[Run]:
    out = []
    ft = self.epochs - self.sparse_epochs
    for method, variants in self.variants.items():
      if (
          methods
          and method not in methods
          and not (
              method == 'dense' and any(m.startswith('han') for m in methods)
          )
      ):
        continue
      for vname, v in variants.items():
        for seed in seeds:
          common = {**self.base, 'seed': seed}
          if method == 'dense':
            out.append(
                Run(
                    method,
                    vname,
                    0.0,
                    seed,
                    _flags(
                        {
                            **common,
                            'method': 'sgd',
                            'epochs': self.epochs,
                            'asr_epochs': 0,
                            **v,
                        }
                    ),
                )
            )
          elif method.startswith('han'):
            parent = Run(
                'dense',
                'parent',
                0.0,
                seed,
                _flags(
                    {
                        **common,
                        'method': 'sgd',
                        'epochs': self.sparse_epochs,
                        'asr_epochs': 0,
                        **self.variants['dense']['cosine'],
                    }
                ),
            )
            if parent not in out:
              out.append(parent)
            for level in self.levels:
              out.append(
                  Run(
                      method,
                      vname,
                      level,
                      seed,
                      _flags(
                          {
                              **common,
                              'method': 'han',
                              'epochs': ft,
                              'asr_epochs': 0,
                              'prune_sparsity': level,
                              **v,
                          }
                      ),
                      needs=parent,
                  )
              )
          elif method == 'rmda_target':
            # RMDA whose prox is the projection onto the level (--regularizer
            # sparsity): a pruning-style target, a sparse phase then ASR.
            for level in self.levels:
              out.append(
                  Run(
                      method,
                      vname,
                      level,
                      seed,
                      _flags(
                          {
                              **common,
                              'method': 'rmda',
                              'regularizer': 'sparsity',
                              'epochs': self.sparse_epochs,
                              'asr_epochs': ft,
                              'target_sparsity': level,
                              **_ASR_SAME,
                              **v,
                          }
                      ),
                  )
              )
          elif method == 'gmp':
            for level in self.levels:
              out.append(
                  Run(
                      method,
                      vname,
                      level,
                      seed,
                      _flags(
                          {
                              **common,
                              'method': 'gmp',
                              'epochs': self.epochs,
                              'asr_epochs': 0,
                              'gmp_sparsity': level,
                              **v,
                          }
                      ),
                  )
              )
          else:  # Regularization methods: a λ grid, sparse phase then ASR.
            for lam in self.lams[method]:
              out.append(
                  Run(
                      method,
                      vname,
                      lam,
                      seed,
                      _flags(
                          {
                              **common,
                              'method': method,
                              'epochs': self.sparse_epochs,
                              'asr_epochs': ft,
                              'lam': lam,
                              **_ASR_SAME,
                              **v,
                          }
                      ),
                  )
              )
    return out


# Every run names the options it relies on: the default preset's values
# (e.g. its ASR by SGD) must not leak into another method's runs.
# ASR by SGD as the CIFAR recipe's fine-tuning (lr 0.03, cosine).
_CIFAR_ASR = {
    'asr_optimizer': 'sgd',
    'asr_lr': 0.03,
    'asr_lr_schedule': 'cosine',
}

_ASR_SAME = {'asr_optimizer': 'same', 'asr_restart': True}


def _geom(lo: float, hi: float, n: int) -> tuple[float, ...]:
  return tuple(
      float(f'{lo * (hi / lo) ** (i / (n - 1)):.3g}') for i in range(n)
  )


_DENSE = {'cosine': {'lr': 0.1, 'momentum': 0.9, 'lr_schedule': 'cosine'}}


def _han(lrs, scope):
  return {
      f'lr{lr:g}': {'lr': lr, 'lr_schedule': 'cosine', 'prune_scope': scope}
      for lr in lrs
  }


def _rmda_target(
    lr,
    begin,
    end,
    asr_lr=0.03,
    lr_schedule=None,
    weight_decay=0.0,
    asr_weight_decay=None,
):
  """RMDA projected on the level (global ranking), the ramp from ``begin``
  to ``end`` (epochs), then ASR by SGD at ``asr_lr`` (cosine); with
  ``weight_decay`` in both phases (``asr_weight_decay``: ASR's own)."""
  schedule = {'lr_schedule': lr_schedule} if lr_schedule else {}
  if asr_weight_decay is None:
    asr_weight_decay = weight_decay
  decay = {'weight_decay': weight_decay} if weight_decay else {}
  if asr_weight_decay:
    decay['asr_weight_decay'] = asr_weight_decay
  return {
      'lr': lr,
      **schedule,
      **decay,
      'momentum': 0.9,
      'init_scale': 0.0,
      'prune_scope': 'global',
      'target_begin_epoch': begin,
      'target_end_epoch': end,
      'asr_optimizer': 'sgd',
      'asr_lr': asr_lr,
      'asr_lr_schedule': 'cosine',
  }


def _gmp(ends, lr=0.1, begin=1.0):
  return {
      f'end{e:g}': {
          'lr': lr,
          'lr_schedule': 'cosine',
          'gmp_begin_epoch': begin,
          'gmp_end_epoch': e,
          'prune_scope': 'global',
          'gmp_frequency': 50,
      }
      for e in ends
  }


SETTINGS: dict[str, Setting] = {
    # LeNet-300-100 on MNIST, 12 epochs in all (8 + 4).
    'lenet300': Setting(
        base={'model': 'lenet300_100', 'dataset': 'mnist', 'batch_size': 128},
        epochs=12.0,
        sparse_epochs=8.0,
        plot_depth=4.0,
        # Extra λ fill the widest sparsity gaps of the geometric grid (the
        # comparison takes a point at or above each level).
        lams={
            'rmda': tuple(
                sorted(_geom(1e-4, 2e-3, 12) + (3.4e-4, 4.1e-4, 4.5e-4, 1.5e-3))
            ),
            'rda': _geom(5e-4, 5e-3, 5),
            'prox_sgd': _geom(1e-4, 2e-3, 5),
        },
        variants={
            'dense': _DENSE,
            # benchmarks/tuning/lenet300_rmda_*.txt: He init, η = 0.2,
            # μ = 0.9, then 4 epochs of frozen-zero SGD (0.03, cosine).
            'rmda': {
                'default': {
                    'lr': 0.2,
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    'asr_optimizer': 'sgd',
                    'asr_lr': 0.03,
                    'asr_lr_schedule': 'cosine',
                },
            },
            # RMDA projected on the level (--regularizer sparsity), the ramp
            # over the first 6 of its 8 epochs, then ASR as rmda's.
            'rmda_target': {'default': _rmda_target(0.2, 0.0, 6.0)},
            # Fine-tuning lr 0.003 was worse than 0.01 at every level; the
            # grid goes past the best rate (0.2) at every level.
            'han_global': _han((0.01, 0.03, 0.1, 0.2, 0.4), 'global'),
            'gmp': {
                **_gmp((6.0, 9.0)),
                **{
                    f'{k}_lr0.2': dict(v, lr=0.2)
                    for k, v in _gmp((6.0,)).items()
                },
            },
            # benchmarks/tuning/lenet300_rda_1.txt: γ < 1 diverges; γ = 1,
            # s = 1, with ASR as in the paper (RDA restarted) or by SGD.
            'rda': {
                'paper': {'gamma': 1.0, 'init_scale': 1.0},
                'sgd_asr': {
                    'gamma': 1.0,
                    'init_scale': 1.0,
                    'asr_optimizer': 'sgd',
                    'asr_lr': 0.03,
                    'asr_lr_schedule': 'cosine',
                },
            },
            'prox_sgd': {'momentum': {'lr': 0.1, 'momentum': 0.9}},
            # Per-layer ranking is far behind global at every level (seed 0,
            # lr 0.003-0.03); its best fine-tuning rate there.
            'han_layer': _han((0.1,), 'layer'),
        },
    ),
    # LeNet-5-Caffe on MNIST, 30 epochs in all (20 + 10). This model (no
    # ReLU after its convolutions) diverges with SGD at lr 0.1 and at 0.03
    # (momentum 0.9, step 100): SGD-based runs use Han et al.'s 0.01.
    'lenet5': Setting(
        base={
            'model': 'lenet5',
            'dataset': 'mnist',
            'batch_size': 128,
            'eval_every_epochs': 5,
        },
        epochs=30.0,
        sparse_epochs=20.0,
        lams={
            'rmda': _geom(2e-4, 1.2e-3, 6),
            'rda': _geom(1e-3, 3e-2, 5),
            'prox_sgd': _geom(1e-4, 2e-3, 4),
        },
        variants={
            'dense': {
                'cosine': {'lr': 0.01, 'momentum': 0.9, 'lr_schedule': 'cosine'}
            },
            'rmda': {
                'default': {
                    'lr': 0.05,
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    'asr_optimizer': 'sgd',
                    'asr_lr': 0.01,
                    'asr_lr_schedule': 'cosine',
                },
            },
            # The preset mnist_lenet5_rmda's recipe (ASR at 0.03), the
            # level reached along the ramp from epoch 1 to 15.
            'rmda_target': {'default': _rmda_target(0.05, 1.0, 15.0)},
            'han_global': _han((0.003, 0.01), 'global'),
            'gmp': _gmp((15.0, 22.0), lr=0.01),
            'rda': {'paper': {'gamma': 10.0, 'init_scale': 1.0}},
            'prox_sgd': {'momentum': {'lr': 0.01, 'momentum': 0.9}},
            'han_layer': _han((0.003, 0.01), 'layer'),
        },
    ),
    # CIFAR-10 at CPU scale: the JPEG copy of CIFAR-10 in ../shared/data
    # (cifar10_jpg), He et al.'s ResNet-8 (78k parameters; 30 epochs take
    # about 25 minutes on 2 cores, ResNet-20's take 70), 30 epochs (20 + 10),
    # random crop and flip. Dense SGD and Han's parent use the usual CIFAR
    # recipe (lr 0.1, momentum 0.9, cosine, weight decay 5e-4 on kernels).
    'cifar_resnet8': Setting(
        base={
            'model': 'resnet8',
            'dataset': 'cifar10_jpg',
            'batch_size': 128,
            'eval_every_epochs': 5,
        },
        epochs=30.0,
        sparse_epochs=20.0,
        lams={
            'rmda': _geom(1e-4, 3.2e-3, 6),
            'rda': (),
            'prox_sgd': _geom(2.5e-4, 2e-3, 4),
        },
        levels=(0.90, 0.95, 0.97, 0.98),
        plot_depth=16.0,
        variants={
            'dense': {
                'cosine': {
                    'lr': 0.1,
                    'momentum': 0.9,
                    'lr_schedule': 'cosine',
                    'weight_decay': 5e-4,
                }
            },
            'rmda': {
                'default': {
                    'lr': 0.1,
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    **_CIFAR_ASR,
                },
                # The learning rate annealed through the sparse phase too
                # (cosine over the run), as the dense baseline's is.
                'cosine': {
                    'lr': 0.1,
                    'lr_schedule': 'cosine',
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    **_CIFAR_ASR,
                },
                # η = 1.0, the rate that made the projected RMDA work here
                # (lr1_cosine below; MDA's interpolation does not amplify
                # the step as SGD's momentum does).
                'lr1_cosine': {
                    'lr': 1.0,
                    'lr_schedule': 'cosine',
                    'momentum': 0.9,
                    'init_scale': 0.0,
                    **_CIFAR_ASR,
                },
            },
            # Prox-SGD: the dense recipe's SGD (lr 0.1 cosine, momentum 0.9)
            # with the ℓ1 prox instead of weight decay, then ASR as RMDA's.
            'prox_sgd': {
                'cosine': {
                    'lr': 0.1,
                    'lr_schedule': 'cosine',
                    'momentum': 0.9,
                    **_CIFAR_ASR,
                },
            },
            # RMDA projected on the target sparsity (global ranking), the
            # ramp from epoch 1 to 15 as gmp's, then ASR as above.
            # lr1_cosine: η = lr / (1 − μ) of the dense run's SGD (MDA's
            # interpolation does not amplify the step as SGD's momentum
            # does: η = 0.1 trains like SGD at 0.01), cosine as dense.
            'rmda_target': {
                'default': _rmda_target(0.1, 1.0, 15.0),
                'lr1_cosine': _rmda_target(
                    1.0, 1.0, 15.0, lr_schedule='cosine'
                ),
                # The dense recipe's weight decay (5e-4) in both phases, as
                # gmp and Han have it.
                'lr1_cosine_wd': _rmda_target(
                    1.0, 1.0, 15.0, lr_schedule='cosine', weight_decay=5e-4
                ),
                # ASR as gradual pruning's SGD after its ramp: the rate it
                # has there (0.05 at epoch 15 of its cosine) and its weight
                # decay, in ASR only (RMDA's dual sum does not take it).
                'lr1_cosine_ftgmp': _rmda_target(
                    1.0,
                    1.0,
                    15.0,
                    asr_lr=0.05,
                    lr_schedule='cosine',
                    asr_weight_decay=5e-4,
                ),
            },
            'han_global': {
                k: dict(v, weight_decay=5e-4)
                for k, v in _han((0.01, 0.03), 'global').items()
            },
            'gmp': {
                k: dict(v, weight_decay=5e-4)
                for k, v in _gmp((15.0,), lr=0.1).items()
            },
        },
    ),
}


def _cifar_accelerator(model: str, epochs: int) -> Setting:
  """CIFAR-10 (the JPEG copy) on an accelerator: ``cifar_resnet8``'s recipe
  with its schedules scaled to ``epochs`` (30 there: sparse phase 20 + ASR
  10, pruning ramps from epoch 1 to 15), bfloat16 compute, 90-98%.

  One point per method and level; the ResNet-8 grids chose the variants
  (RMDA projected at η = 1.0, fine-tuning rates 0.01 and 0.03, the ramp
  ending half-way).
  """
  f = epochs / 30
  return Setting(
      base={
          'model': model,
          'dataset': 'cifar10_jpg',
          'batch_size': 128,
          'dtype': 'bfloat16',
          'eval_every_epochs': max(1, epochs // 3),
      },
      epochs=float(epochs),
      sparse_epochs=20 * f,
      lams={'rmda': (), 'rda': (), 'prox_sgd': ()},
      levels=(0.90, 0.95, 0.97, 0.98),
      plot_depth=16.0,
      note=(
          'CIFAR-10 as JPEG (../shared/data, quality 75), not the official '
          'archives; an accelerator-scale budget, one seed unless stated.'
      ),
      variants={
          'dense': SETTINGS['cifar_resnet8'].variants['dense'],
          'rmda_target': {
              'lr1_cosine': _rmda_target(
                  1.0, 1.0 * f, 15.0 * f, lr_schedule='cosine'
              )
          },
          'han_global': SETTINGS['cifar_resnet8'].variants['han_global'],
          'gmp': {
              k: dict(v, weight_decay=5e-4)
              for k, v in _gmp((15.0 * f,), lr=0.1, begin=1.0 * f).items()
          },
      },
  )


# ResNet-18 (11M parameters) at a few budgets, for whatever time an
# accelerator allows: `cifar_resnet18_e<epochs>`.
for _e in (15, 30, 60, 90):
  SETTINGS[f'cifar_resnet18_e{_e}'] = _cifar_accelerator('resnet18', _e)


# ---------------------------------------------------------------------------
# Running.
# ---------------------------------------------------------------------------


def run_dir(out: str, run: Run) -> str:
  path = os.path.join(out, 'runs', run.name.replace('/', '_'))
  rel = os.path.relpath(path, ROOT)
  return path if rel.startswith('..') else rel  # Commands run in ROOT.


def command(out: str, run: Run) -> list[str]:
  cmd = ['python', '-m', 'train', *run.flags, '--workdir', run_dir(out, run)]
  if run.needs is not None:
    cmd += ['--init_from', run_dir(out, run.needs)]
  return cmd


def finished(out: str, run: Run) -> dict[str, Any] | None:
  """The final eval record of a finished run, else None."""
  folder = os.path.join(ROOT, run_dir(out, run))
  done_file = os.path.join(folder, 'frontier_done')
  if not os.path.exists(done_file):
    return None  # Not run, or interrupted (its checkpoint resumes it).
  with open(done_file) as f:
    ran = json.load(f).get('command')
  # The flags must match; the run directory may be spelled relative to
  # another checkout (a sweep run from a second worktree with --out).
  if ran is not None and _flags_of(ran) != _flags_of(
      ' '.join(command(out, run))
  ):
    raise RuntimeError(
        f'{folder} was run with other flags than the sweep now gives '
        f'({ran!r}); remove it to run it again.'
    )
  evals = train_metrics.read_records(folder, 'eval')
  return evals[-1] if evals else None


def execute(out: str, run: Run, env: dict[str, str] | None = None):
  """Runs ``run`` (unless finished) with ``env`` added to the environment;
  returns its final eval record."""
  rec = finished(out, run)
  if rec is not None:
    return rec
  cmd = command(out, run)
  t0 = time.perf_counter()
  env = dict(
      os.environ,
      **(env or {}),
      PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
  )
  proc = subprocess.run(
      [sys.executable, *cmd[1:], '--no-progress', '--no-report'],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
  )
  if proc.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
  wall = time.perf_counter() - t0
  with open(os.path.join(ROOT, run_dir(out, run), 'frontier_done'), 'w') as f:
    json.dump(
        {
            'wall_s': wall,
            'command': ' '.join(command(out, run)),
            **provenance(),
        },
        f,
    )
  return finished(out, run)


def machine() -> str:
  """This machine in words: OS, CPU model and count, accelerators.

  Reads no JAX (a sweep's parent process must not take an accelerator's
  memory from the runs it starts): the GPUs come from ``nvidia-smi``.
  """
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          cpu = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  words = f'{platform.platform()}, {cpu}, {os.cpu_count()} CPUs'
  try:
    gpus = subprocess.run(
        ['nvidia-smi', '--query-gpu=name', '--format=csv,noheader'],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split('\n')
  except (OSError, subprocess.SubprocessError):
    gpus = []
  gpus = [g.strip() for g in gpus if g.strip()]
  if gpus:
    words += ', ' + ', '.join(
        f'{gpus.count(g)} × {g}' for g in dict.fromkeys(gpus)
    )
  return words


def _git(*args: str) -> str:
  return subprocess.run(
      ['git', *args],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=30,
      check=True,
  ).stdout.strip()


def provenance() -> dict[str, Any]:
  """Where and when a run finished, and the code it ran: machine, UTC
  date-time, git commit (with ``+changes`` when the tree was modified)."""
  commit = None
  try:
    commit = _git('rev-parse', '--short', 'HEAD')
    if _git('status', '--porcelain', '--untracked-files=no'):
      commit += '+changes'
  except (OSError, subprocess.SubprocessError):
    pass
  return {
      'machine': machine(),
      'date': datetime.datetime.now(datetime.timezone.utc).strftime(
          '%Y-%m-%d %H:%M UTC'
      ),
      'commit': commit,
  }


def _flags_of(cmd: str) -> str:
  """A run's command without its run directory (which depends on --out)."""
  return cmd.split(' --workdir ')[0]


def collect(out: str, runs) -> list[dict[str, Any]]:
  """The records of ``runs``: from their run folders, else from the
  results.json already in ``out``.

  Run folders are not committed (checkpoints), so a fresh checkout has the
  published results.json alone: a record whose folder is absent is kept
  when its command is the one the sweep gives now, so re-running part of a
  sweep on another machine never drops the rest of its results.
  """
  path = os.path.join(out, 'results.json')
  old = {}
  if os.path.exists(path):
    with open(path) as f:
      old = {_flags_of(r['command']): r for r in json.load(f)}
  records = []
  for run in runs:
    rec = finished(out, run)
    if rec is not None:
      records.append(record(out, run, rec))
    elif (key := _flags_of(' '.join(command(out, run)))) in old:
      records.append(old[key])
  return records


def execute_all(out: str, runs: list[Run], jobs: int = 1) -> list:
  """Runs ``runs``, ``jobs`` at a time, each after the run it needs.

  Returns the (run, error) of the runs that failed (and of those that
  needed them); the others still run.
  """
  if jobs < 1:
    raise ValueError(f'--jobs must be at least 1, got {jobs}.')
  env = {}
  if jobs > 1 and not {
      'XLA_PYTHON_CLIENT_MEM_FRACTION',
      'XLA_PYTHON_CLIENT_PREALLOCATE',
  } & set(os.environ):
    # Each JAX process takes 75% of an accelerator's memory by default.
    env['XLA_PYTHON_CLIENT_MEM_FRACTION'] = f'{0.9 / jobs:.3f}'
  pending, running, failed, done = list(runs), {}, [], set()
  n = 0

  def report(run, rec):
    nonlocal n
    n += 1
    print(
        f'[{n}/{len(runs)}] {run.name}: top-1 {rec["test_top1"]:.4f} '
        f'sparsity {rec["sparsity"]:.4f}',
        flush=True,
    )

  with futures.ThreadPoolExecutor(jobs) as pool:
    while pending or running:
      for run in list(pending):
        if len(running) >= jobs:
          break
        if run.needs is not None and run.needs in pending + list(
            running.values()
        ):
          continue  # Its parent has not finished yet.
        pending.remove(run)
        if run.needs is not None and run.needs not in done:
          failed.append((run, f'{run.needs.name} failed'))
          continue
        running[pool.submit(execute, out, run, env)] = run
      if not running:
        continue
      finished_now, _ = futures.wait(
          running, return_when=futures.FIRST_COMPLETED
      )
      for fut in finished_now:
        run = running.pop(fut)
        try:
          rec = fut.result()
        except Exception as e:  # pylint: disable=broad-except
          if jobs == 1:
            raise
          failed.append((run, str(e)))
          print(f'FAILED {run.name}: {e}', file=sys.stderr, flush=True)
        else:
          done.add(run)
          report(run, rec)
  return failed


def record(out: str, run: Run, rec: dict[str, Any]) -> dict[str, Any]:
  with open(os.path.join(ROOT, run_dir(out, run), 'frontier_done')) as f:
    done = json.load(f)
  wall = done.get('wall_s')
  # Where and when it ran (runs made before these were recorded have none).
  where = {k: done[k] for k in ('machine', 'date', 'commit') if k in done}
  return {
      'method': run.method,
      'variant': run.variant,
      'strength': run.strength,
      'seed': run.seed,
      'test_top1': rec['test_top1'],
      'sparsity': rec['sparsity'],
      'total_sparsity': rec.get('total_sparsity'),
      'epoch': rec['epoch'],
      'wall_s': wall,
      **where,
      'command': ' '.join(command(out, run)),
  }


# ---------------------------------------------------------------------------
# Tables and plot.
# ---------------------------------------------------------------------------


def by_point(records) -> dict[tuple, list]:
  """(method, variant, strength) -> the records of that point (its seeds)."""
  groups: dict[tuple, list] = {}
  for r in records:
    groups.setdefault((r['method'], r['variant'], r['strength']), []).append(r)
  return groups


def aggregate(records):
  """(method, variant, strength) -> mean/std of accuracy and sparsity."""
  out = {}
  for key, rs in by_point(records).items():
    acc = [r['test_top1'] for r in rs]
    sp = [r['sparsity'] for r in rs]
    out[key] = {
        'acc': statistics.mean(acc),
        'acc_std': statistics.stdev(acc) if len(acc) > 1 else 0.0,
        'sparsity': statistics.mean(sp),
        'sparsity_std': statistics.stdev(sp) if len(sp) > 1 else 0.0,
        'seeds': len(rs),
    }
  return out


# A point counts for a level it misses by less than 0.01 percentage point:
# pruning to s keeps n − round(s·n) weights, one weight short of s on
# ResNet-8's 77k kernel weights (96.99974% for 97%).
LEVEL_TOLERANCE = 1e-4


def at_levels(agg, levels):
  """method -> level -> (acc, acc_std, sparsity, variant, strength, seeds).

  At each level L, a method's candidates are its points whose mean sparsity
  reaches L. Within L's band (below the next level), those measured over
  the most seeds are eligible and the most accurate of them is taken; a
  point above the band (or, when the band is empty, the best of those)
  replaces it only when it is more accurate over at least as many seeds.
  So the best of several one-seed points is not compared against a mean
  over three seeds (it would be biased upward), a three-seed point at a
  higher level does not stand in for the point at L itself, and a method
  is never compared below its sparsity.
  """
  levels = sorted(levels)
  bands = {
      level: levels[i + 1] if i + 1 < len(levels) else math.inf
      for i, level in enumerate(levels)
  }
  candidates: dict[str, dict[float, list]] = {}
  for (method, variant, strength), a in agg.items():
    if method == 'dense' and variant == 'parent':
      continue
    point = (
        a['acc'],
        a['acc_std'],
        a['sparsity'],
        variant,
        strength,
        a['seeds'],
    )
    for level in levels:
      # Dense SGD is the reference, shown at the first level only.
      if (
          level == levels[0]
          if method == 'dense'
          else a['sparsity'] + LEVEL_TOLERANCE >= level
      ):
        candidates.setdefault(method, {}).setdefault(level, []).append(point)
  table: dict[str, dict[float, tuple]] = {}
  for method, by_level in candidates.items():
    for level, points in by_level.items():
      band = [p for p in points if p[2] + LEVEL_TOLERANCE < bands[level]]
      pick = max(band or points, key=lambda p: (p[5], p[0]))
      # A point above the band replaces it when it is more accurate over at
      # least as many seeds (the overshooting method compared at its
      # higher sparsity).
      above = [
          p
          for p in points
          if p not in band and p[5] >= pick[5] and p[0] > pick[0]
      ]
      table.setdefault(method, {})[level] = max(
          above, key=lambda p: p[0], default=pick
      )
  return table


def per_seed(records) -> list[str]:
  """Markdown rows of every point run with more than one seed, seed by seed.

  The mean ± std of the level table hides whether one method is ahead in
  every seed or only on average; this table shows it.
  """
  groups = {
      key: {r['seed']: r['test_top1'] for r in rs}
      for key, rs in by_point(records).items()
      if len(rs) > 1
  }
  if not groups:
    return []
  seeds = sorted({s for v in groups.values() for s in v})
  lines = [
      'Test top-1 seed by seed (every point run with more than one seed):',
      '',
      '| method / variant / strength | '
      + ' | '.join(f'seed {s}' for s in seeds)
      + ' |',
      '|---|' + '---:|' * len(seeds),
  ]
  for (method, variant, strength), accs in sorted(groups.items()):
    cells = [f'{accs[s]:.2%}' if s in accs else '—' for s in seeds]
    lines.append(
        f'| {method} / {variant} / {strength:g} | ' + ' | '.join(cells) + ' |'
    )
  return lines + ['']


def runs_made_on(records) -> list[str]:
  """Lines naming the machines, dates and commits of the runs."""
  by_machine: dict[str, list[dict[str, Any]]] = {}
  unknown = 0
  for r in records:
    if r.get('machine'):
      by_machine.setdefault(r['machine'], []).append(r)
    else:
      unknown += 1
  lines = []
  for name, recs in by_machine.items():
    days = sorted({r['date'][:10] for r in recs if r.get('date')})
    commits = sorted({r['commit'] for r in recs if r.get('commit')})
    when = (
        ''
        if not days
        else f', {days[0]}'
        if len(days) == 1
        else f', {days[0]} to {days[-1]}'
    )
    lines.append(
        f'- {len(recs)} run{"s" * (len(recs) > 1)} on {name}{when}'
        + (f', commit {", ".join(commits)}' if commits else '')
    )
  if unknown:
    lines.append(
        f'- {unknown} run{"s" * (unknown > 1)} made before machines were '
        'recorded per run (docs/results.md dates them)'
    )
  return ['Runs:', '', *lines, ''] if lines else []


def markdown(setting_name, setting, records, agg) -> str:
  table = at_levels(agg, setting.levels)
  methods = [
      m
      for m in (
          'rmda',
          'rmda_target',
          'rda',
          'prox_sgd',
          'gmp',
          'han_global',
          'han_layer',
      )
      if m in table
  ]
  lines = [
      f'Setting `{setting_name}`: {setting.base}, {setting.epochs:g} '
      f'epochs for every method.',
      '',
      *runs_made_on(records),
      f'This report: {machine()}, JAX on {_device()}; '
      f'{datetime.date.today()}.',
      '',
  ]
  if setting.note:
    lines += [setting.note, '']
  if 'dense' in table:
    d = table['dense'][setting.levels[0]]
    lines += [
        f'Dense SGD reference: {d[0]:.2%} ± {d[1]:.2%} '
        f'({d[5]} seed{"s" * (d[5] > 1)}).',
        '',
    ]
  lines.append('| sparsity ≥ | ' + ' | '.join(methods) + ' |')
  lines.append('|---:|' + '---:|' * len(methods))
  most = max((e[5] for m in methods for e in table[m].values()), default=0)
  for level in setting.levels:
    cells = []
    for m in methods:
      e = table[m].get(level)
      seeds = (
          ''
          if e is None or e[5] == most
          else f' ({e[5]} seed{"s" * (e[5] > 1)})'
      )
      cells.append(
          '—' if e is None else f'{e[0]:.2%} ± {e[1]:.2%} @ {e[2]:.2%}{seeds}'
      )
    lines.append(f'| {level:.1%} | ' + ' | '.join(cells) + ' |')
  lines += [
      '',
      'Each cell: mean test top-1 ± std over seeds @ mean kernel '
      'sparsity, the best point of the method whose mean sparsity is '
      'at least the level. The point chosen (variant, strength):',
      '',
  ]
  for m in methods:
    chosen = ', '.join(
        f'{lv:.1%}: {e[3]} / {e[4]:g}' for lv, e in sorted(table[m].items())
    )
    lines.append(f'- {m}: {chosen}')
  lines.append('')
  lines += per_seed(records)
  lines += [
      'Sparsity and accuracy against the strength λ of each '
      'regularization method (mean over seeds): how to pick λ for a '
      'target sparsity.',
      '',
  ]
  for (m, variant), pts in lambda_curves(agg).items():
    lines.append(
        f'| {m} / {variant}: λ | '
        + ' | '.join(f'{lam:g}' for lam, _ in pts)
        + ' |'
    )
    lines.append('|---|' + '---:|' * len(pts))
    lines.append(
        '| sparsity | '
        + ' | '.join(f'{a["sparsity"]:.2%}' for _, a in pts)
        + ' |'
    )
    lines.append(
        '| test top-1 | ' + ' | '.join(f'{a["acc"]:.2%}' for _, a in pts) + ' |'
    )
    lines.append('')
  lams = lambda_at_levels(agg, setting.levels)
  if lams:
    names = sorted(lams)
    lines += [
        'λ for each level, interpolated (log λ linear in the mean sparsity '
        'between the two grid points around the level; — outside the '
        'grid):',
        '',
        '| sparsity | ' + ' | '.join(f'{m} / {v}' for m, v in names) + ' |',
        '|---:|' + '---:|' * len(names),
    ]
    for level in setting.levels:
      cells = [lams[n].get(level) for n in names]
      lines.append(
          f'| {level:.1%} | '
          + ' | '.join(
              '—' if c is None else f'{c:.1e}'.replace('e-0', 'e-')
              for c in cells
          )
          + ' |'
      )
    lines.append('')
  return '\n'.join(lines) + '\n'


def lambda_at_levels(agg, levels) -> dict[tuple[str, str], dict[float, float]]:
  """{(method, variant): {level: λ}} for the regularization methods: log λ
  interpolated linearly in the mean sparsity between the first two
  consecutive grid points (by λ) whose sparsities bracket the level."""
  out = {}
  for name, curve in lambda_curves(agg).items():
    pts = [(lam, a['sparsity']) for lam, a in curve if lam > 0]
    found = {}
    for level in levels:
      for (l0, s0), (l1, s1) in zip(pts, pts[1:]):
        if s0 <= level <= s1 and s1 > s0:
          t = (level - s0) / (s1 - s0)
          found[level] = math.exp(
              math.log(l0) + t * (math.log(l1) - math.log(l0))
          )
          break
    if pts:
      out[name] = found
  return out


def lambda_curves(agg) -> dict[tuple[str, str], list[tuple[float, dict]]]:
  """{(method, variant): [(λ, aggregate), ...] by λ} for the
  regularization methods."""
  curves = {}
  for m in ('rmda', 'rda', 'prox_sgd'):
    for variant in sorted({k[1] for k in agg if k[0] == m}):
      curves[(m, variant)] = sorted(
          (k[2], a) for k, a in agg.items() if k[0] == m and k[1] == variant
      )
  return curves


def plot(path, setting, agg) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  x_of = lambda s: -math.log10(max(1 - s, 1e-4))
  styles = {
      'rmda': 'C3',
      'rmda_target': 'C6',
      'rda': 'C1',
      'prox_sgd': 'C4',
      'gmp': 'C2',
      'han_global': 'C0',
      'han_layer': 'C9',
  }
  table = at_levels(agg, setting.levels)
  for method, color in styles.items():
    # The frontier: the best variant per level (as in the table), plus every
    # point of the method faintly.
    pts = sorted(
        ((k[2], a) for k, a in agg.items() if k[0] == method),
        key=lambda t: t[0],
    )
    if not pts:
      continue
    ax.scatter(
        [x_of(a['sparsity']) for _, a in pts],
        [100 * a['acc'] for _, a in pts],
        s=8,
        color=color,
        alpha=0.3,
    )
    best = sorted(table.get(method, {}).items())
    if best:
      ax.errorbar(
          [x_of(e[2]) for _, e in best],
          [100 * e[0] for _, e in best],
          yerr=[100 * e[1] for _, e in best],
          color=color,
          marker='o',
          capsize=3,
          label=method,
      )
  dense = table.get('dense', {}).get(setting.levels[0])
  if dense:
    ax.axhline(
        100 * dense[0],
        color='gray',
        ls='--',
        lw=1,
        label=f'dense SGD ({100 * dense[0]:.2f}%)',
    )
  ticks = [0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998]
  ax.set_xticks([x_of(t) for t in ticks], [f'{100 * t:g}' for t in ticks])
  ax.set_xlabel('kernel sparsity (%)')
  ax.set_ylabel('test top-1 (%)')
  # The interesting band: within a few points of dense (worse curves run
  # off the bottom; the tables have every number).
  top = 100 * dense[0] if dense else max(100 * a['acc'] for a in agg.values())
  lowest = min(
      (
          100 * e[0]
          for m, t in table.items()
          if m != 'dense'
          for e in t.values()
      ),
      default=top,
  )
  # 4 points below dense, or down to the lowest point of any curve, but at
  # most the setting's plot_depth below dense.
  ax.set_ylim(
      max(min(top - 4.0, lowest - 0.5), top - setting.plot_depth), top + 0.4
  )
  ax.set_xlim(x_of(0.85), x_of(0.998))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='lower left')
  ax.set_title(
      f'{setting.base.get("model")} / {setting.base.get("dataset")}, '
      f'{setting.epochs:g} epochs (mean ± std over seeds)'
  )
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _device() -> str:
  try:
    import jax  # pylint: disable=import-outside-toplevel

    return str(jax.devices()[0].device_kind)
  except Exception:  # pylint: disable=broad-except
    return 'unknown'


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument('setting', choices=sorted(SETTINGS))
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
  parser.add_argument(
      '--methods',
      nargs='+',
      default=None,
      help='only these curves (han_* also run their dense ' 'parents)',
  )
  parser.add_argument(
      '--strengths',
      type=float,
      nargs='+',
      default=None,
      help='only these strengths (λ of a regularization '
      'method, target sparsity of a pruning one)',
  )
  parser.add_argument(
      '--variants',
      nargs='+',
      default=None,
      help='only these hyper-parameter variants (e.g. ' 'cosine, lr0.03)',
  )
  parser.add_argument(
      '--out',
      default=None,
      help='output folder (default benchmarks/results/' 'frontier_<setting>)',
  )
  parser.add_argument(
      '--jobs',
      type=int,
      default=1,
      help='runs at a time (on one accelerator: each gets 0.9/jobs of its '
      'memory unless XLA_PYTHON_CLIENT_MEM_FRACTION is set); a run starts '
      'once the run it is initialised from has finished',
  )
  parser.add_argument(
      '--report',
      action='store_true',
      help='only rebuild tables and plot from finished runs',
  )
  parser.add_argument(
      '--list',
      action='store_true',
      help='print the commands of the sweep and exit',
  )
  args = parser.parse_args(argv)
  setting = SETTINGS[args.setting]
  out = args.out or os.path.join(
      ROOT, 'benchmarks', 'results', f'frontier_{args.setting}'
  )
  os.makedirs(out, exist_ok=True)
  runs = setting.runs(args.seeds, args.methods, args.strengths, args.variants)
  if args.list:
    for r in runs:
      print(' '.join(command(out, r)))
    return 0
  failed = [] if args.report else execute_all(out, runs, args.jobs)
  # The tables cover every finished run of the setting (all methods, seeds
  # 0-2 and any given), whatever this invocation ran.
  path = os.path.join(out, 'results.json')
  records = collect(out, setting.runs(sorted(set(args.seeds) | {0, 1, 2})))
  with open(path + '.tmp', 'w') as f:
    json.dump(records, f, indent=1)
  os.replace(path + '.tmp', path)
  agg = aggregate(records)
  md = markdown(args.setting, setting, records, agg)
  with open(os.path.join(out, 'frontier.md'), 'w') as f:
    f.write(md)
  plot(os.path.join(out, 'frontier.png'), setting, agg)
  print(md)
  for run, err in failed:
    print(f'FAILED {run.name}: {err}', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())

"""Sparse transformers and N:M: the sweeps behind issue 28's results.

Three settings, each a grid of plain ``python -m train`` runs at one budget
per setting (runs already finished are skipped, so an interrupted sweep
resumes; a run killed midway resumes from its own checkpoint):

* ``gpt``: the small GPT (``gpt_char``: 4 layers, width 128, context 128)
  on the Shakespeare corpus (``shakespeare_char``), at 50 / 75 / 90% kernel
  sparsity and at 2:4, for dense AdamW, RAMDA (ℓ1 with a λ grid, and
  projected on the level), RMDA projected, proximal AdamW projected,
  gradual magnitude pruning with AdamW (two ramp ends × two learning rates)
  and one-shot magnitude pruning of a dense AdamW run + fine-tuning with
  AdamW (two rates); 3 seeds. Judged by the validation loss (nats per
  character; bits per character = loss / ln 2), lower is better.
* ``lenet5_2_4``, ``resnet8_2_4``: LeNet-5 on MNIST and ResNet-8 on the
  CIFAR-10 JPEG copy at 2:4: RMDA projected on 2:4 (then ASR) against
  gradual N:M magnitude pruning and one-shot N:M pruning + fine-tuning,
  with dense SGD as the reference, the recipes of ``benchmarks.frontier``'s
  ``lenet5`` and ``cifar_resnet8`` settings; judged by test top-1.

::

    python -m benchmarks.transformers_nm gpt --list       # the commands
    python -m benchmarks.transformers_nm gpt              # the whole sweep
    python -m benchmarks.transformers_nm gpt --seeds 0 --methods ramda_target
    python -m benchmarks.transformers_nm gpt --report     # tables only
    python -m benchmarks.transformers_nm gpt --smoke      # a few steps each

For each target (a level or ``2:4``) and method the table gives the best
mean over seeds among the method's variants that reach the target (at least
the level's sparsity; every selected kernel N:M for ``2:4``), with the
spread over seeds, the sparsity reached and the variant. ``--smoke`` runs
one run of every method (seed 0, its first variant, at 2:4 where it has
targets; han's dense parent too) for a few steps (1 per epoch, 4 for the
GPT; the epoch-valued options unchanged; one evaluation, for the GPT on the
first 2% of the validation slice) in ``<out>/smoke``, to check that every
kind of command works end to end (about 2 minutes for the GPT on the
shared 2-core machine).

Writes ``<out>/results.json`` (one record per run: setting, method,
variant, target, seed, the final evaluation, sparsity, N:M check, the exact
command, wall time, machine, date and commit) and ``<out>/results.md``.
Default ``<out>``: ``benchmarks/results/transformers_nm/<setting>``.
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

from train import metrics as train_metrics
from train.cli import flags
from train.presets import PRESETS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NM = '2:4'


@dataclasses.dataclass(frozen=True)
class Run:
  """One ``python -m train`` run of a sweep."""

  method: str  # The table's row (adamw, ramda_l1, gmp_adamw, ...).
  variant: str  # Its hyper-parameters other than the target.
  target: str  # '0.75', '2:4', or 'dense' (the reference), or a λ's point.
  seed: int
  flags: tuple[str, ...]
  needs: 'Run | None' = None  # The run whose directory --init_from names.

  @property
  def name(self) -> str:
    return f'{self.method}/{self.variant}/{self.target}/seed{self.seed}'


@dataclasses.dataclass(frozen=True)
class Setting:
  """A model / dataset / budget and each method's runs.

  ``methods`` maps a row name to ``(variants, kind)``: ``kind`` says how a
  target becomes flags (see :func:`target_flags`); each variant is a dict
  of flags. ``finetune_epochs``: han's fine-tuning (its dense parent trains
  ``epochs - finetune_epochs``).
  """

  base: dict[str, Any]
  epochs: float
  targets: tuple[str, ...]
  methods: dict[str, tuple[dict[str, dict[str, Any]], str]]
  metric: str  # 'test_loss' (lower is better) or 'test_top1' (higher).
  finetune_epochs: float = 0.0
  lams: tuple[float, ...] = ()  # The λ grid of the 'l1' kind.
  note: str = ''
  smoke_steps_per_epoch: int = 1  # --smoke: a few steps of every run.
  smoke_flags: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def lower_is_better(self) -> bool:
    return self.metric == 'test_loss'

  def runs(self, seeds, methods=None) -> list[Run]:
    out: list[Run] = []
    for method, (variants, kind) in self.methods.items():
      if methods and method not in methods:
        continue
      for vname, v in variants.items():
        for seed in seeds:
          out += self._runs(method, vname, v, kind, seed, out)
    return out

  def smoke_runs(self, methods=None) -> list[Run]:
    """One run of each method (seed 0, its first variant; at N:M when the
    setting has it, else its first target or λ) and the runs they need;
    the dense method's is han's dense parent when han runs."""
    out: list[Run] = []
    chosen = [m for m in self.methods if not methods or m in methods]
    parent = any(self.methods[m][1] == 'han' for m in chosen)
    for method in chosen:
      variants, kind = self.methods[method]
      if kind == 'dense' and parent:
        continue  # The parent of han's run is a dense run.
      vname, v = next(iter(variants.items()))
      runs = self._runs(method, vname, v, kind, 0, out)
      pick = [r for r in runs if r.target == NM] or [
          r for r in runs if r.needs is None
      ][:1]
      for r in pick:
        if r.needs is not None and r.needs not in out:
          out.append(r.needs)
        out.append(r)
    return out

  def smoke(self) -> tuple[str, ...]:
    """The flags that make a run a smoke run: a few steps per epoch (the
    epoch-valued options unchanged), one evaluation, at the end."""
    return flags(
        {
            'steps_per_epoch': self.smoke_steps_per_epoch,
            'log_every_steps': 1,
            'eval_every_epochs': 1000,
            **self.smoke_flags,
        }
    )

  def _runs(self, method, vname, v, kind, seed, before) -> list[Run]:
    common = {**self.base, 'seed': seed, 'epochs': self.epochs}
    if kind == 'dense':
      return [Run(method, vname, 'dense', seed, flags({**common, **v}))]
    if kind == 'l1':  # A λ grid: each point lands at some sparsity.
      return [
          Run(
              method,
              vname,
              f'lam{lam:g}',
              seed,
              flags({**common, **v, 'lam': lam}),
          )
          for lam in self.lams
      ]
    out = []
    for target in self.targets:
      if kind == 'han':
        parent_v, ft = self.methods['dense'][0]['default'], self.finetune_epochs
        parent = Run(
            'dense',
            'parent',
            'dense',
            seed,
            flags({**common, **parent_v, 'epochs': self.epochs - ft}),
        )
        if parent not in before and parent not in out:
          out.append(parent)
        f = {**common, **v, 'epochs': ft, **target_flags(kind, target)}
        out.append(Run(method, vname, target, seed, flags(f), needs=parent))
      else:
        f = {**common, **v, **target_flags(kind, target)}
        out.append(Run(method, vname, target, seed, flags(f)))
    return out


def target_flags(kind: str, target: str) -> dict[str, Any]:
  """The flags that make a run of ``kind`` reach ``target`` (a sparsity
  level, or N:M)."""
  nm = ':' in target
  if kind == 'projected':  # A proximal method projected on the target.
    if nm:
      return {'regularizer': 'nm', 'nm': target}
    return {'regularizer': 'sparsity', 'target_sparsity': float(target)}
  if kind == 'gmp':
    return {'nm': target} if nm else {'gmp_sparsity': float(target)}
  if kind == 'han':
    return {'nm': target} if nm else {'prune_sparsity': float(target)}
  raise ValueError(f'Unknown kind {kind!r}.')


# ---------------------------------------------------------------------------
# The settings.
# ---------------------------------------------------------------------------

# The GPT's budget: 1 epoch of the 4,551,554 training characters (1,111
# steps of 32 windows of 128), evaluated 4 times on the whole validation
# slice (505,728 characters): about 25 minutes a run on the shared 2-core
# machine under load (0.87-1.02 steps per second, an evaluation about a
# minute; docs/guides/transformers_nm.md), about 46 hours for the sweep's
# 132 runs of 3 seeds there.
GPT_EPOCHS = 1.0
GPT_BASE = {
    'model': 'gpt_char',
    'dataset': 'shakespeare_char',
    'batch_size': 32,
    'context': 128,
    'eval_batch_size': 256,
    'eval_every_epochs': 0.25,
    'log_every_steps': 50,
    'asr_epochs': 0,
    # A cosine without warm-up for every method (a warm-up starts the rate at
    # 0, which the proximal methods refuse), as the presets.
    'lr_schedule': 'cosine',
}
# The ramps to the target (sparsity or N:M): from 5% to half of the budget.
_RAMP = {'target_begin_epoch': 0.05, 'target_end_epoch': 0.5}
# The learning rates of the presets (train/presets_transformers.py,
# shakespeare_gpt_*).
_LR = {
    m: PRESETS[f'shakespeare_gpt_{m}']['lr']
    for m in ('adamw', 'ramda', 'rmda', 'prox_adamw')
}
_ADAMW = {'method': 'adamw', 'lr': _LR['adamw']}


def _gmp(ends, lrs):
  return {
      f'end{e:g}_lr{lr:g}': {
          'method': 'gmp_adamw',
          'lr': lr,
          'gmp_begin_epoch': 0.05,
          'gmp_end_epoch': e,
          'gmp_frequency': 20,
          'prune_scope': 'global',
      }
      for e in ends
      for lr in lrs
  }


SETTINGS: dict[str, Setting] = {
    'gpt': Setting(
        base=GPT_BASE,
        epochs=GPT_EPOCHS,
        targets=('0.5', '0.75', '0.9', NM),
        metric='test_loss',
        finetune_epochs=0.25,
        # RAMDA's ℓ1 λ: a geometric grid over the sparsity range.
        lams=(1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4),
        methods={
            'dense': ({'default': _ADAMW}, 'dense'),
            'ramda_l1': (
                {
                    'default': {
                        'method': 'ramda',
                        'lr': _LR['ramda'],
                        'momentum': 0.9,
                        'regularizer': 'l1',
                    }
                },
                'l1',
            ),
            'ramda_target': (
                {
                    'default': {
                        'method': 'ramda',
                        'lr': _LR['ramda'],
                        'momentum': 0.9,
                        'prune_scope': 'global',
                        **_RAMP,
                    }
                },
                'projected',
            ),
            'rmda_target': (
                {
                    'default': {
                        'method': 'rmda',
                        'lr': _LR['rmda'],
                        'momentum': 0.9,
                        'init_scale': 0.0,
                        'prune_scope': 'global',
                        **_RAMP,
                    }
                },
                'projected',
            ),
            'prox_adamw_target': (
                {
                    'default': {
                        'method': 'prox_adamw',
                        'lr': _LR['prox_adamw'],
                        'prune_scope': 'global',
                        **_RAMP,
                    }
                },
                'projected',
            ),
            'gmp_adamw': (
                _gmp((0.5, 0.75), (_LR['adamw'], _LR['adamw'] / 2)),
                'gmp',
            ),
            'han_adamw': (
                {
                    f'lr{lr:g}': {
                        'method': 'han_adamw',
                        'lr': lr,
                        'prune_scope': 'global',
                    }
                    for lr in (1e-3, 3e-4)
                },
                'han',
            ),
        },
        note=(
            'Character-level Shakespeare (the last 10% of the characters '
            'held out); the budget is 1 epoch of the training characters.'
        ),
        smoke_steps_per_epoch=4,
        # The whole validation slice takes about a minute on a CPU: its
        # first 2% (10,114 characters) checks the evaluation.
        smoke_flags={'eval_split': 'test[:2%]', 'eval_batch_size': 32},
    ),
    # The ViT on the CIFAR-10 JPEG copy, an accelerator's budget (30
    # epochs, bfloat16; ../transformers_accelerator.sh). RAMDA at the
    # reference code's ViT rate (1e-2); AdamW 5e-4; cosine, no warm-up.
    'vit': Setting(
        base={
            'model': 'vit_cifar',
            'dataset': 'cifar10_jpg',
            'batch_size': 128,
            'dtype': 'bfloat16',
            'eval_every_epochs': 5,
            'asr_epochs': 0,
            'lr_schedule': 'cosine',
        },
        epochs=30.0,
        targets=('0.5', '0.75', '0.9', NM),
        metric='test_top1',
        finetune_epochs=10.0,
        methods={
            'dense': ({'default': {'method': 'adamw', 'lr': 5e-4}}, 'dense'),
            'ramda_target': (
                {
                    'default': {
                        'method': 'ramda',
                        'lr': 1e-2,
                        'momentum': 0.9,
                        'prune_scope': 'global',
                        'target_begin_epoch': 1.0,
                        'target_end_epoch': 15.0,
                    }
                },
                'projected',
            ),
            'prox_adamw_target': (
                {
                    'default': {
                        'method': 'prox_adamw',
                        'lr': 5e-4,
                        'prune_scope': 'global',
                        'target_begin_epoch': 1.0,
                        'target_end_epoch': 15.0,
                    }
                },
                'projected',
            ),
            'gmp_adamw': (
                {
                    'end15': {
                        'method': 'gmp_adamw',
                        'lr': 5e-4,
                        'gmp_begin_epoch': 1.0,
                        'gmp_end_epoch': 15.0,
                        'gmp_frequency': 50,
                        'prune_scope': 'global',
                    }
                },
                'gmp',
            ),
            'han_adamw': (
                {
                    'lr0.0002': {
                        'method': 'han_adamw',
                        'lr': 2e-4,
                        'prune_scope': 'global',
                    }
                },
                'han',
            ),
        },
        note='CIFAR-10 as JPEG (../shared/data, quality 75); one seed.',
        smoke_steps_per_epoch=1,
    ),
    # LeNet-5 on MNIST, the frontier's lenet5 recipes (30 epochs: 20 + 10).
    'lenet5_2_4': Setting(
        base={
            'model': 'lenet5',
            'dataset': 'mnist',
            'batch_size': 128,
            'eval_every_epochs': 5,
        },
        epochs=30.0,
        targets=(NM,),
        metric='test_top1',
        finetune_epochs=10.0,
        methods={
            'dense': (
                {
                    'default': {
                        'method': 'sgd',
                        'lr': 0.01,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                    }
                },
                'dense',
            ),
            'rmda_nm': (
                {
                    'default': {
                        'method': 'rmda',
                        'lr': 0.05,
                        'momentum': 0.9,
                        'init_scale': 0.0,
                        'epochs': 20.0,
                        'asr_epochs': 10.0,
                        'asr_optimizer': 'sgd',
                        'asr_lr': 0.01,
                        'asr_lr_schedule': 'cosine',
                        'target_begin_epoch': 1.0,
                        'target_end_epoch': 15.0,
                    }
                },
                'projected',
            ),
            'gmp_nm': (
                {
                    'end15': {
                        'method': 'gmp',
                        'lr': 0.01,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                        'gmp_begin_epoch': 1.0,
                        'gmp_end_epoch': 15.0,
                        'gmp_frequency': 50,
                    }
                },
                'gmp',
            ),
            'han_nm': (
                {
                    f'lr{lr:g}': {
                        'method': 'han',
                        'lr': lr,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                    }
                    for lr in (0.003, 0.01)
                },
                'han',
            ),
        },
    ),
    # ResNet-8 on the CIFAR-10 JPEG copy, the frontier's cifar_resnet8
    # recipes (30 epochs: 20 + 10; RMDA at η = 1.0, cosine).
    'resnet8_2_4': Setting(
        base={
            'model': 'resnet8',
            'dataset': 'cifar10_jpg',
            'batch_size': 128,
            'eval_every_epochs': 5,
        },
        epochs=30.0,
        targets=(NM,),
        metric='test_top1',
        finetune_epochs=10.0,
        methods={
            'dense': (
                {
                    'default': {
                        'method': 'sgd',
                        'lr': 0.1,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                        'weight_decay': 5e-4,
                    }
                },
                'dense',
            ),
            'rmda_nm': (
                {
                    'default': {
                        'method': 'rmda',
                        'lr': 1.0,
                        'lr_schedule': 'cosine',
                        'momentum': 0.9,
                        'init_scale': 0.0,
                        'epochs': 20.0,
                        'asr_epochs': 10.0,
                        'asr_optimizer': 'sgd',
                        'asr_lr': 0.03,
                        'asr_lr_schedule': 'cosine',
                        'target_begin_epoch': 1.0,
                        'target_end_epoch': 15.0,
                    }
                },
                'projected',
            ),
            'gmp_nm': (
                {
                    'end15': {
                        'method': 'gmp',
                        'lr': 0.1,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                        'weight_decay': 5e-4,
                        'gmp_begin_epoch': 1.0,
                        'gmp_end_epoch': 15.0,
                        'gmp_frequency': 50,
                    }
                },
                'gmp',
            ),
            'han_nm': (
                {
                    f'lr{lr:g}': {
                        'method': 'han',
                        'lr': lr,
                        'momentum': 0.9,
                        'lr_schedule': 'cosine',
                        'weight_decay': 5e-4,
                    }
                    for lr in (0.01, 0.03)
                },
                'han',
            ),
        },
        note='CIFAR-10 as JPEG (../shared/data, quality 75).',
    ),
}


# ---------------------------------------------------------------------------
# Running.
# ---------------------------------------------------------------------------


def run_dir(out: str, run: Run) -> str:
  return os.path.join(out, 'runs', run.name.replace('/', '_').replace(':', '-'))


def command(out: str, run: Run, smoke: tuple[str, ...] = ()) -> list[str]:
  """The run's command line; ``smoke``: the flags of a smoke run
  (:meth:`Setting.smoke`)."""
  cmd = ['python', '-m', 'train', *run.flags, '--workdir', run_dir(out, run)]
  if run.needs is not None:
    cmd += ['--init_from', run_dir(out, run.needs)]
  return cmd + list(smoke)


def _flags_of(cmd: str) -> str:
  return cmd.split(' --workdir ')[0]


def finished(out: str, run: Run, smoke: tuple[str, ...] = ()) -> dict | None:
  """The final eval record of a finished run (None if not run or
  interrupted); refuses a folder run with other flags."""
  folder = run_dir(out, run)
  done = os.path.join(folder, 'sweep_done')
  if not os.path.exists(done):
    return None
  with open(done) as f:
    ran = json.load(f)['command']
  if _flags_of(ran) != _flags_of(' '.join(command(out, run, smoke))):
    raise RuntimeError(
        f'{folder} was run with other flags ({ran!r}); remove it to run it '
        'again.'
    )
  evals = train_metrics.read_records(folder, 'eval')
  return evals[-1] if evals else None


def machine() -> str:
  cpu = platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(
          (l.split(':', 1)[1].strip() for l in f if l.startswith('model name')),
          cpu,
      )
  except OSError:
    pass
  return f'{platform.platform()}, {cpu}, {os.cpu_count()} CPUs'


def _commit() -> str | None:
  try:
    git = lambda *a: subprocess.run(
        ['git', *a], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = git('rev-parse', '--short', 'HEAD')
    if git('status', '--porcelain', '--untracked-files=no'):
      commit += '+changes'
    return commit
  except (OSError, subprocess.SubprocessError):
    return None


def execute(out: str, run: Run, smoke: tuple[str, ...] = ()) -> dict:
  rec = finished(out, run, smoke)
  if rec is not None:
    return rec
  cmd = command(out, run, smoke)
  env = dict(
      os.environ,
      PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
  )
  # One XLA cache for the sweep: the runs share most of their programs.
  env.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(out, '.jax_cache'))
  t0 = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, *cmd[1:], '--no-progress'],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
  )
  with open(os.path.join(run_dir(out, run) + '.log'), 'w') as f:
    f.write(proc.stdout + proc.stderr)
  if proc.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
  with open(os.path.join(run_dir(out, run), 'sweep_done'), 'w') as f:
    json.dump(
        {
            'command': ' '.join(cmd),
            'wall_s': time.perf_counter() - t0,
            'machine': machine(),
            'date': datetime.datetime.now(datetime.timezone.utc).strftime(
                '%Y-%m-%d %H:%M UTC'
            ),
            'commit': _commit(),
        },
        f,
    )
  return finished(out, run, smoke)


def execute_all(
    out: str, runs: list[Run], jobs: int, smoke: tuple[str, ...] = ()
) -> list:
  """Runs ``runs`` (``jobs`` at a time, each after the run it needs);
  returns ``(run, error)`` of those that failed."""
  failed: list = []
  pending = list(runs)
  done: set = set()
  with futures.ThreadPoolExecutor(max(1, jobs)) as pool:
    while pending:
      ready = [r for r in pending if r.needs is None or r.needs in done]
      blocked = [r for r in pending if r.needs in {f[0] for f in failed}]
      for r in blocked:
        failed.append((r, 'its --init_from run failed'))
        pending.remove(r)
      if not ready:
        if not pending:
          break
        raise RuntimeError('runs wait for runs outside the sweep')
      batch = {pool.submit(execute, out, r, smoke): r for r in ready}
      for f in futures.as_completed(batch):
        r = batch[f]
        pending.remove(r)
        try:
          f.result()
          done.add(r)
          print(f'done {r.name}', flush=True)
        except Exception as e:  # pylint: disable=broad-except
          failed.append((r, str(e)))
          print(f'FAILED {r.name}: {str(e)[-500:]}', flush=True)
  return failed


# ---------------------------------------------------------------------------
# Results.
# ---------------------------------------------------------------------------


def record(
    setting: str, out: str, run: Run, smoke: tuple[str, ...] = ()
) -> dict:
  rec = finished(out, run, smoke) or {}
  folder = run_dir(out, run)
  with open(os.path.join(folder, 'sweep_done')) as f:
    done = json.load(f)
  summary_path = os.path.join(folder, 'report', 'summary.json')
  nm = None
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      nm = json.load(f).get('nm')
  return {
      'setting': setting,
      'method': run.method,
      'variant': run.variant,
      'target': run.target,
      'seed': run.seed,
      'test_loss': rec.get('test_loss'),
      'test_bpc': rec.get('test_bpc'),
      'test_top1': rec.get('test_top1'),
      'sparsity': rec.get('sparsity'),
      'nm': nm,
      **done,
  }


def meets(rec: dict, target: str) -> bool:
  """Whether a run reached ``target``: every kernel N:M, or at least the
  level's sparsity (up to rounding)."""
  if ':' in target:
    nm = rec.get('nm') or {}
    return nm.get('pattern') == target and nm.get('kernels_meeting') == nm.get(
        'kernels'
    )
  return (rec.get('sparsity') or 0) >= float(target) - 1e-4


def table(setting: Setting, records: list[dict]) -> str:
  """Per target and method: the best variant's mean ± std over seeds."""
  key = setting.metric
  sign = 1 if setting.lower_is_better else -1
  points: dict = {}
  for r in records:
    if r.get(key) is None:
      continue
    points.setdefault((r['method'], r['variant'], r['target']), []).append(r)
  lines = []
  dense = [  # Full-budget dense runs (not han's shorter parents).
      r[key]
      for r in records
      if r['target'] == 'dense' and r['variant'] != 'parent' and r.get(key)
  ]
  if dense:
    lines.append(
        f'Dense reference: {key} {statistics.mean(dense):.4f} '
        f'± {statistics.pstdev(dense):.4f} ({len(dense)} seeds)'
    )
    lines.append('')
  lines += [
      f'| target | method | {key} (mean ± std) | seeds | sparsity | variant |',
      '|---|---|---|---|---|---|',
  ]
  for target in setting.targets:
    for method in setting.methods:
      if method == 'dense':
        continue
      best = None
      for (m, v, t), rs in points.items():
        if m != method:
          continue
        if t != target and not (t.startswith('lam') and ':' not in target):
          continue
        if not all(meets(r, target) for r in rs):
          continue
        vals = [r[key] for r in rs]
        score = (-len(vals), sign * statistics.mean(vals))
        if best is None or score < best[0]:
          best = (score, v, t, rs)
      if best is None:
        lines.append(f'| {target} | {method} | - | 0 | - | - |')
        continue
      _, v, t, rs = best
      vals = [r[key] for r in rs]
      sp = statistics.mean(r['sparsity'] for r in rs)
      lines.append(
          f'| {target} | {method} | {statistics.mean(vals):.4f} ± '
          f'{statistics.pstdev(vals):.4f} | {len(vals)} | {100 * sp:.2f}% | '
          f'{v}{"" if t == target else " " + t} |'
      )
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument('setting', choices=sorted(SETTINGS))
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
  parser.add_argument('--methods', nargs='+', default=None)
  parser.add_argument('--out', default=None)
  parser.add_argument('--jobs', type=int, default=1)
  parser.add_argument('--list', action='store_true', help='print commands')
  parser.add_argument('--report', action='store_true', help='tables only')
  parser.add_argument(
      '--smoke',
      action='store_true',
      help='one run of each method for a few steps, in <out>/smoke',
  )
  args = parser.parse_args(argv)
  setting = SETTINGS[args.setting]
  unknown = set(args.methods or ()) - set(setting.methods)
  if unknown:
    parser.error(
        f'unknown methods {sorted(unknown)}; {args.setting} has '
        f'{", ".join(setting.methods)}'
    )
  out = args.out or os.path.join(
      ROOT, 'benchmarks', 'results', 'transformers_nm', args.setting
  )
  smoke: tuple[str, ...] = ()
  if args.smoke:
    out, smoke = os.path.join(out, 'smoke'), setting.smoke()
    runs = setting.smoke_runs(args.methods)
  else:
    runs = setting.runs(args.seeds, args.methods)
  needed = {r.needs for r in runs if r.needs is not None}
  runs += [r for r in needed if r not in runs]
  if args.list:
    for r in runs:
      print(' '.join(command(out, r, smoke)))
    return 0
  os.makedirs(out, exist_ok=True)
  failed = [] if args.report else execute_all(out, runs, args.jobs, smoke)
  records = [
      record(args.setting, out, r, smoke)
      for r in runs
      if os.path.exists(os.path.join(run_dir(out, r), 'sweep_done'))
  ]
  with open(os.path.join(out, 'results.json'), 'w') as f:
    json.dump(records, f, indent=1)
  text = (
      f'# {args.setting}: {setting.base.get("model")} on '
      f'{setting.base.get("dataset")}, {setting.epochs:g} epochs\n\n'
      + (setting.note + '\n\n' if setting.note else '')
      + table(setting, records)
      + '\n'
  )
  with open(os.path.join(out, 'results.md'), 'w') as f:
    f.write(text)
  print(text)
  for r, e in failed:
    print(f'failed: {r.name}: {e[-300:]}', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())

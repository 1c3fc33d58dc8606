"""The faults' bench: a scratch folder where the real commands run (one XLA
compilation cache for all, tiny LeNet-5 runs on synthetic data), the rows
of the report, and what the cases read from a finished command."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import jax

# The repository (its tests/ holds _fake_mnist: see .data).
REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

RUN = [
    '--model',
    'lenet5',
    '--dataset',
    'synthetic:28x28x1:10',
    '--method',
    'rmda',
    '--lr',
    '0.05',
    '--momentum',
    '0.9',
    '--batch_size',
    '16',
    '--steps_per_epoch',
    '8',
    '--asr_epochs',
    '0',
    '--checkpoint_every_steps',
    '4',
    '--log_every_steps',
    '4',
    '--no-progress',
    '--no-report',
]


# λ of the runs: small enough that a long run does not collapse to a
# constant prediction (the job stops such a run); the export case takes a
# larger one, to be sparse after 12 steps.
LAM = 1e-3
LAM_SPARSE = 0.05


class Bench:
  """Runs commands in a scratch folder, one XLA compilation cache for all."""

  def __init__(self, root: str):
    self.root = root
    self.env = dict(os.environ)
    self.env.update(
        JAX_PLATFORMS='cpu',
        TF_CPP_MIN_LOG_LEVEL='3',
        JAX_COMPILATION_CACHE_DIR=os.path.join(root, 'xla-cache'),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
        PYTHONPATH=REPO + os.pathsep + self.env.get('PYTHONPATH', ''),
    )
    self.rows: list[tuple[str, str, bool, str]] = []

  def path(self, *parts) -> str:
    return os.path.join(self.root, *parts)

  def run(self, args, *, wrap=None, timeout=600):
    cmd = [sys.executable, *args]
    if wrap:
      cmd = wrap(cmd)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=self.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    proc.seconds = time.perf_counter() - start
    return proc

  def train(self, workdir, *extra, epochs=2, lam=LAM, **kw):
    return self.run(
        ['-m', 'train', *RUN, '--lam', str(lam), '--epochs', str(epochs)]
        + ['--workdir', workdir, *extra],
        **kw,
    )

  def record(self, group: str, case: str, ok: bool, what: str) -> None:
    self.rows.append((group, case, ok, what))
    print(f'{"ok  " if ok else "FAIL"} {group}: {case}: {what}', flush=True)


def err_lines(proc) -> list[str]:
  return [l for l in proc.stderr.splitlines() if l.strip()]


def has_traceback(proc) -> bool:
  return 'Traceback' in proc.stdout + proc.stderr


def leaves(tree):
  return jax.tree.leaves(tree)

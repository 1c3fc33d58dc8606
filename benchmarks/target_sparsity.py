"""The sparsity you ask for, on models the defaults were never tuned on.

Trains the CNN of Flax's MNIST example (``examples/linen_mnist.py``: SGD at
0.1, momentum 0.9, batch 128) to a stated kernel sparsity three ways, with
the same phases and budget (two thirds sparse training by RMDA at
``η = lr/(1 − μ)``, one third of SGD retraining with the zeros frozen):

* ``target``: :func:`rda_optax.sparse_training` (the projection on a ramp to
  the level), its defaults as they are;
* ``target_l1``: the same with ``penalty="l1"`` (:func:`rda_optax.adaptive_l1`);
* ``l1``: fixed-λ ℓ1 RMDA, at the λ that the README's rule (λ·η·steps
  constant, calibrated on LeNet-300-100) predicts for the level, and at half
  and twice it: three runs, as a user tuning λ would make.

  python -m benchmarks.target_sparsity --levels 0.9 0.95 0.98 --epochs 5
  python -m benchmarks.target_sparsity --report

``--model resnet20_cifar`` does the same with a CIFAR-10 ResNet-20 (batch
norm, crop and flip; :mod:`benchmarks.cifar_resnet_loop`) on the CIFAR-10
JPEG copy of the shared data folder, ``--train_examples`` of its train
split for a CPU budget:

  python -m benchmarks.target_sparsity --model resnet20_cifar \
      --train_examples 10000 --epochs 3

Each finished run appends a record (machine, date, commit, method, level,
λ, final kernel sparsity and test accuracy of the sparse model) to
``benchmarks/results/target_sparsity/<model>.jsonl``; ``--report`` writes
``report.md`` beside them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import cifar_resnet_loop
from examples import linen_mnist
import rda_optax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'benchmarks', 'results', 'target_sparsity')
# LeNet-300-100 / MNIST (README, "Choosing λ"): RMDA at η = 0.2 for 8 epochs
# of 469 steps reaches these sparsities at these λ; λ·η·steps is the
# quantity that carries over.
LENET300_LAMBDA = {0.90: 2.2e-4, 0.95: 3.1e-4, 0.97: 3.9e-4, 0.98: 5.0e-4}
LENET300_ETA_STEPS = 0.2 * 8 * 469


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          cpu = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  return f'{cpu}, {os.cpu_count()} CPUs, {jax.devices()[0].platform}'


def commit() -> str:
  try:
    sha = subprocess.run(
        ['git', 'rev-parse', '--short', 'HEAD'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Changes to the code, not to the records (which the runs append to).
    dirty = subprocess.run(
        [
            'git',
            'status',
            '--porcelain',
            '--untracked-files=no',
            '--',
            '.',
            ':(exclude)benchmarks/results',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return sha + ('+changes' if dirty else '')
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def predicted_lambda(level: float, eta: float, sparse_steps: int) -> float:
  """λ for ``level`` by the README's rule (log-interpolated between the
  calibrated levels), moved to this run's η and steps."""
  levels = sorted(LENET300_LAMBDA)
  lam = float(
      np.exp(
          np.interp(level, levels, np.log([LENET300_LAMBDA[l] for l in levels]))
      )
  )
  return lam * LENET300_ETA_STEPS / (eta * sparse_steps)


def optimizer(method, level, lam, lr, momentum, total_steps):
  """The optimizer of one run (all share sparse_training's phases)."""
  if method in ('target', 'target_l1'):
    return rda_optax.sparse_training(
        level,
        learning_rate=lr,
        momentum=momentum,
        total_steps=total_steps,
        penalty='l1' if method == 'target_l1' else 'projection',
    )
  retrain_steps = round(total_steps / 3)
  sparse_steps = total_steps - retrain_steps
  return rda_optax.asr(
      rda_optax.rmda(lr / (1 - momentum), rda_optax.l1(lam), momentum=momentum),
      start_step=sparse_steps,
      retrain=optax.sgd(lr, momentum=momentum),
  )


def num_train(args, data) -> int:
  if args.model == 'resnet20_cifar':
    return len(data[0][1])
  return len(data[0]['image'])


def run_mnist_cnn(args, tx, data):
  """Flax's linen MNIST example with ``tx``: ``(loss, accuracy, sparse
  params)`` of the sparse model on the test split."""
  train_ds, test_ds = data
  rng, init_rng = jax.random.split(jax.random.key(args.seed))
  cnn = linen_mnist.CNN()
  params = cnn.init(init_rng, jnp.ones([1, 28, 28, 1]))['params']
  state = linen_mnist.train_state.TrainState.create(
      apply_fn=cnn.apply, params=params, tx=tx
  )
  for _ in range(args.epochs):
    rng, input_rng = jax.random.split(rng)
    state, _, _ = linen_mnist.train_epoch(
        state, train_ds, args.batch_size, input_rng
    )
  sparse = rda_optax.sparse_params(state.opt_state, state.params)
  _, loss, accuracy = linen_mnist.apply_model(
      state.replace(params=sparse), test_ds['image'], test_ds['label']
  )
  return float(loss), float(accuracy), sparse


def run_resnet20_cifar(args, tx, data):
  state = cifar_resnet_loop.train(
      tx, data, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed
  )
  return cifar_resnet_loop.evaluate(state, data)


def run_one(args, method, level, lam, data):
  total = args.epochs * (num_train(args, data) // args.batch_size)
  tx = optimizer(method, level, lam, args.lr, args.momentum, total)
  start = time.time()
  run = run_resnet20_cifar if args.model == 'resnet20_cifar' else run_mnist_cnn
  loss, accuracy, sparse = run(args, tx, data)
  summary = rda_optax.sparsity_summary(sparse)
  return {
      'model': args.model,
      'train_examples': num_train(args, data),
      'method': method,
      'level': level,
      'lam': lam,
      'seed': args.seed,
      'epochs': args.epochs,
      'lr': args.lr,
      'momentum': args.momentum,
      'sparsity': summary['regularized/sparsity'],
      'test_accuracy': accuracy,
      'test_loss': loss,
      'seconds': round(time.time() - start, 1),
      'machine': machine(),
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'
      ),
      'commit': args.commit,
  }


TITLES = {
    'mnist_cnn': "The Flax MNIST example's CNN",
    'resnet20_cifar': (
        'ResNet-20 on the CIFAR-10 JPEG copy (a lossy copy of CIFAR-10: '
        'close to, not the same experiment as, published CIFAR-10 numbers)'
    ),
}


def report(out: str) -> str:
  lines = [
      '# The sparsity you ask for, on models never tuned for',
      '',
      'Written by `python -m benchmarks.target_sparsity --report` from the '
      '`<model>.jsonl` records beside it. Test accuracy of the exactly sparse '
      'model, kernel sparsity reached; within a model and level every run '
      'has the same budget and phases.',
  ]
  for model, title in TITLES.items():
    path = os.path.join(out, f'{model}.jsonl')
    if not os.path.exists(path):
      continue
    with open(path) as f:
      records = [json.loads(l) for l in f if l.strip()]
    lines += [
        '',
        f'## {title}',
        '',
        '| level | method | λ | kernel sparsity | test accuracy | seed | '
        'epochs | train images | machine | date | commit |',
        '|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|',
    ]
    key = lambda r: (r['level'], r['epochs'], r['method'], r['lam'] or 0)
    for r in sorted(records, key=key):
      lam = f"{r['lam']:.3g}" if r['lam'] else '—'
      lines.append(
          f"| {r['level']:.0%} | {r['method']} | {lam} | "
          f"{r['sparsity']:.2%} | {r['test_accuracy']:.2%} | {r['seed']} | "
          f"{r['epochs']} | {r.get('train_examples', 60000):,} | "
          f"{r['machine']} | {r['date'][:10]} | {r['commit']} |"
      )
  return '\n'.join(lines) + '\n'


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--model', choices=sorted(TITLES), default='mnist_cnn')
  parser.add_argument(
      '--levels', type=float, nargs='+', default=[0.9, 0.95, 0.98]
  )
  parser.add_argument(
      '--l1_levels',
      type=float,
      nargs='+',
      default=None,
      help='levels of the three l1 runs (default: every level)',
  )
  parser.add_argument(
      '--train_examples',
      type=int,
      default=0,
      help='resnet20_cifar: train on this many images (0: all 50,000)',
  )
  parser.add_argument(
      '--methods', nargs='+', default=['target', 'target_l1', 'l1']
  )
  parser.add_argument(
      '--lambda_factors', type=float, nargs='+', default=[0.5, 1, 2]
  )
  parser.add_argument('--epochs', type=int, default=5)
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--lr', type=float, default=0.1)
  parser.add_argument('--momentum', type=float, default=0.9)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--train_split', default='train')
  parser.add_argument('--test_split', default='test')
  parser.add_argument('--out', default=OUT)
  parser.add_argument('--report', action='store_true')
  args = parser.parse_args(argv)
  args.commit = commit()  # The code this process imported.
  path = os.path.join(args.out, f'{args.model}.jsonl')
  if args.report:
    text = report(args.out)
    with open(os.path.join(args.out, 'report.md'), 'w') as f:
      f.write(text)
    print(text)
    return 0
  os.makedirs(args.out, exist_ok=True)
  if args.model == 'resnet20_cifar':
    data = cifar_resnet_loop.load_cifar10(
        args.data_dir, args.train_examples or None
    )
  else:
    data = linen_mnist.get_datasets(
        args.data_dir, args.train_split, args.test_split
    )
  steps_per_epoch = num_train(args, data) // args.batch_size
  sparse_steps = args.epochs * steps_per_epoch - round(
      args.epochs * steps_per_epoch / 3
  )
  eta = args.lr / (1 - args.momentum)
  for level in args.levels:
    for method in args.methods:
      lams = [None]
      if method == 'l1' and args.l1_levels and level not in args.l1_levels:
        continue
      if method == 'l1':
        lam = predicted_lambda(level, eta, sparse_steps)
        lams = [lam * f for f in args.lambda_factors]
      for lam in lams:
        record = run_one(args, method, level, lam, data)
        print(json.dumps(record), flush=True)
        with open(path, 'a') as f:
          f.write(json.dumps(record) + '\n')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())

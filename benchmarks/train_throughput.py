"""Train-step throughput of dense SGD, Prox-SGD and RDA, side by side.

Times the real pmapped train step of ``python -m train``
(:func:`train.train_step.train_step`: augmentation keys, forward, backward,
gradient ``pmean``, optimizer, metric sums; state donated) on device-resident
synthetic batches, so the input pipeline is not measured. Within each round
the methods run one after the other (alternating, so that machine noise hits
them alike); the table reports the median images per second over the rounds
and the ratio to dense SGD, taken round by round (target for RDA: >= 0.98).

    python -m benchmarks.train_throughput                      # CPU here
    python -m benchmarks.train_throughput --models lenet5 --rounds 9
    python -m benchmarks.train_throughput --batch_size 256     # e.g. on a GPU

Prints a markdown table naming the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


import jax
import numpy as np

import models

from train import config as config_lib
from train import config_checks
from train.data import loader as data_lib
from train import optimizer
from train import train_state as state_lib
from train import train_step as step_lib

METHODS = {
    'sgd': dict(method='sgd', lr=0.01, momentum=0.9, lam=0.0, asr_epochs=0),
    'prox_sgd': dict(
        method='prox_sgd', lr=0.01, momentum=0.9, lam=1e-5, asr_epochs=0
    ),
    'rda': dict(method='rda', gamma=20.0, lam=1e-5, asr_epochs=0),
    'rda+asr': dict(method='rda', gamma=20.0, lam=1e-5, asr_epochs=1),
    'rmda': dict(method='rmda', lr=0.05, momentum=0.9, lam=1e-5, asr_epochs=0),
    'rmda+asr': dict(
        method='rmda',
        lr=0.05,
        momentum=0.9,
        lam=1e-5,
        asr_epochs=1,
        asr_optimizer='sgd',
        asr_lr=0.01,
    ),
}


def _shape(model_name: str) -> str:
  return 'x'.join(str(d) for d in models.default_input_shape(model_name))


def machine() -> str:
  dev = jax.devices()[0]
  if dev.platform == 'cpu':
    return (
        f'CPU {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} cores, {jax.device_count()} JAX device(s)'
    )
  return f'{jax.device_count()} x {dev.device_kind} ({dev.platform})'


def build(model_name: str, method: str, batch: int, asr_start: int):
  cfg = config_lib.get_config(
      None,
      model=model_name,
      dataset=f'synthetic:{_shape(model_name)}:10',
      batch_size=batch,
      steps_per_epoch=max(asr_start, 1),
      epochs=1,
      init_scale=2.0,
      workdir='/tmp/unused',
      **METHODS[method],
  )
  config_checks.validate(cfg)
  data = data_lib.synthetic_data(
      cfg.dataset, global_batch=batch, num_train=batch * 2, num_eval=batch
  )
  model = step_lib.create_model(cfg, data.num_classes)
  phases = optimizer.make_phases(cfg, data.num_train_examples)
  tx, _ = optimizer.create_optimizer(cfg, phases)
  state = state_lib.create_train_state(
      jax.random.key(0), cfg, model, data.image_shape, tx
  )
  state = state_lib.replicate(state)
  step = step_lib.make_p_train_step(data, cfg, jax.random.key(1))
  batches = data.train_batches(0)
  sharding = jax.sharding.NamedSharding(
      jax.sharding.Mesh(np.array(jax.local_devices()), (state_lib.AXIS,)),
      jax.sharding.PartitionSpec(state_lib.AXIS),
  )
  device_batches = [jax.device_put(next(batches), sharding) for _ in range(2)]
  return state, step, device_batches


def time_steps(state, step, batches, n):
  t = time.perf_counter()
  for i in range(n):
    state, sums = step(state, batches[i % len(batches)])
  jax.block_until_ready((state, sums))
  return state, time.perf_counter() - t


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--models', default='lenet5,resnet18')
  p.add_argument('--methods', default='sgd,prox_sgd,rda,rda+asr')
  p.add_argument(
      '--batch_size',
      type=int,
      default=0,
      help='global batch (0: 128 for LeNet-5, 32 for ResNet-18 on '
      'CPU, 128 on accelerators)',
  )
  p.add_argument(
      '--steps',
      type=int,
      default=0,
      help='timed steps per round (0: chosen per model)',
  )
  p.add_argument('--rounds', type=int, default=5)
  args = p.parse_args(argv)
  on_cpu = jax.devices()[0].platform == 'cpu'
  rows = []
  for model_name in args.models.split(','):
    heavy = model_name not in ('lenet5', 'lenet300_100')
    batch = args.batch_size or (32 if heavy and on_cpu else 128)
    batch -= batch % jax.device_count()
    steps = args.steps or (3 if heavy and on_cpu else 20)
    names = args.methods.split(',')
    # ASR starts after the warm-up, so the timed steps run the ASR phase.
    built = {m: build(model_name, m, batch, asr_start=2) for m in names}
    states = {}
    for m, (state, step, batches) in built.items():
      t = time.perf_counter()
      state, _ = time_steps(state, step, batches, 3)  # Compile and warm up.
      states[m] = state
      print(
          f'{model_name} {m}: compiled + 3 steps in '
          f'{time.perf_counter() - t:.1f}s',
          file=sys.stderr,
      )
    rates = {m: [] for m in names}
    for _ in range(args.rounds):
      for m in names:
        _, step, batches = built[m]
        states[m], dt = time_steps(states[m], step, batches, steps)
        rates[m].append(steps * batch / dt)
    for m in names:
      med = statistics.median(rates[m])
      # The ratio of each round to SGD's rate in the same round, so that drift
      # in the machine's speed between rounds cancels; median over rounds.
      ratio = (
          statistics.median(r / b for r, b in zip(rates[m], rates['sgd']))
          if 'sgd' in rates
          else float('nan')
      )
      rows.append(
          (model_name, m, batch, med, min(rates[m]), max(rates[m]), ratio)
      )
  print(
      f'\nTrain-step throughput on {machine()}; jax {jax.__version__}; '
      f'median of {args.rounds} alternating rounds; ratio = median over '
      f"rounds of the method's rate / SGD's rate in the same round.\n"
  )
  print(
      '| model | method | global batch | images/s (median) | min | max | '
      'ratio to SGD |'
  )
  print('|---|---|---:|---:|---:|---:|---:|')
  for model_name, m, batch, med, lo, hi, ratio in rows:
    print(
        f'| {model_name} | {m} | {batch} | {med:.0f} | {lo:.0f} | {hi:.0f} | '
        f'{ratio:.3f} |'
    )
  return 0


if __name__ == '__main__':
  sys.exit(main())

"""Grain against the hand-written train sampler, side by side.

The house issue asks whether Grain (``grain``, which reads the same
``tfds.data_source``) should replace :func:`train.data.input_pipeline.train_batches`
(an epoch permutation that depends only on ``(seed, epoch)``, this host's rows
of each global batch, one vectorized ``get_batch`` per step; resuming at step
``k`` is computing batch ``k``). This script measures host batches per second
of, on the same in-memory / memory-mapped split and the same global batch:

* ``train_batches`` (the library's sampler);
* Grain, idiomatic: ``MapDataset.source(records).seed(s).shuffle().batch(B)``
  (one ``__getitem__`` per example, stacked by Grain);
* Grain over indices: ``MapDataset.range(n).seed(s).shuffle().batch(B)``
  then one vectorized ``get_batch`` per batch (Grain as a shuffler only);
* ``grain.DataLoader`` with an ``IndexSampler`` (shuffle, seed, no sharding)
  and a ``Batch`` operation, ``worker_count=0`` (in-process, as the train
  job's single consumer).

Each also checks that one epoch visits every example once. Needs ``pip
install grain`` (not a dependency of the library)::

    python -m benchmarks.grain_sampler                # MNIST in RAM, CIFAR-10 JPEG cache
    python -m benchmarks.grain_sampler --batch 128 --seconds 3

Prints a markdown table naming the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import grain
import jax

from train.data import input_pipeline as ip


class Records:
  """An ``ArraySource`` as Grain's random-access source of single records."""

  def __init__(self, source):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i):
    return {
        'image': self.source.images[i],
        'label': self.source.labels[i],
    }


def rate(iterator, batch: int, seconds: float, warmup: int = 2) -> float:
  """Images per second of consuming ``iterator`` for about ``seconds``."""
  for _ in range(warmup):
    next(iterator)
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(iterator)
    n += 1
  return n * batch / (time.perf_counter() - start)


def pipelines(source, batch: int, seed: int = 0):
  """``{name: () -> iterator of {'image', 'label'} batches}``."""
  n = len(source)
  topo = dict(process_index=0, process_count=1, local_device_count=1)

  def ours():
    return ip.train_batches(source, batch, seed=seed, **topo)

  def grain_records():
    ds = grain.MapDataset.source(Records(source)).seed(seed).shuffle()
    return iter(ds.repeat().batch(batch, drop_remainder=True))

  def grain_indices():
    ds = grain.MapDataset.range(n).seed(seed).shuffle().repeat()
    ds = ds.batch(batch, drop_remainder=True).map(source.get_batch)
    return iter(ds)

  def grain_loader():
    sampler = grain.samplers.IndexSampler(
        n,
        shard_options=grain.sharding.NoSharding(),
        shuffle=True,
        seed=seed,
        num_epochs=None,
    )
    loader = grain.DataLoader(
        data_source=Records(source),
        sampler=sampler,
        operations=[grain.transforms.Batch(batch, drop_remainder=True)],
        worker_count=0,
    )
    return iter(loader)

  return {
      'train_batches (ours)': ours,
      'Grain MapDataset, per record': grain_records,
      'Grain MapDataset over indices + get_batch': grain_indices,
      'Grain DataLoader (IndexSampler, Batch, 0 workers)': grain_loader,
  }


def visits_each_once(make, n: int, batch: int) -> bool:
  """Whether the first ``n // batch`` batches hold distinct examples.

  Uses the images' bytes as identities (at least 99% distinct: the few
  exact duplicate images of a dataset aside, each example once)."""
  it = make()
  seen = set()
  for _ in range(n // batch):
    images = np.asarray(next(it)['image'])
    for img in images.reshape((-1,) + images.shape[-3:]):
      seen.add(hash(img.tobytes()))
  return len(seen) >= 0.99 * (n // batch) * batch


def machine() -> str:
  cpus = (
      len(os.sched_getaffinity(0))
      if hasattr(os, 'sched_getaffinity')
      else os.cpu_count()
  )
  return (
      f'{platform.platform()} | {cpus} CPU(s) usable | jax {jax.__version__} '
      f'| grain {getattr(grain, "__version__", "?")} | python '
      f'{platform.python_version()}'
  )


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      '--shared',
      default=os.environ.get(
          'RDA_SHARED_DATA', os.path.join(REPO, '..', 'shared', 'data')
      ),
  )
  parser.add_argument('--data_dir', default=None, help='TFDS data dir')
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--seconds', type=float, default=3.0)
  args = parser.parse_args(argv)
  splits = {}
  mnist = os.path.join(args.shared, 'mnist')
  if os.path.isdir(mnist):
    ip.prepare_dataset('mnist', data_dir=args.data_dir, manual_dir=mnist)
    splits['MNIST train (RAM)'] = ip.load_dataset(
        'mnist', data_dir=args.data_dir
    ).train
  if os.path.exists(os.path.join(args.shared, 'cifar10-jpg.tar.gz')):
    splits['CIFAR-10 JPEG train (.npy mmap)'] = ip.load_dataset(
        'cifar10_jpg', manual_dir=args.shared
    ).train
  if not splits:
    sys.exit(f'no data under {args.shared}: pass --shared DIR')
  print(f'Machine: {machine()}\n')
  rows = []
  for data, source in splits.items():
    for name, make in pipelines(source, args.batch).items():
      once = visits_each_once(make, len(source), args.batch)
      r = rate(make(), args.batch, args.seconds)
      rows.append((data, name, r, once))
      print(f'  {data} | {name}: {r:,.0f} images/s, epoch once: {once}')
  print(f'\nGlobal batch {args.batch}; about {args.seconds:g} s each.\n')
  print(
      '| data | sampler | images/s | vs ours | one epoch = each example once |'
  )
  print('|---|---|---:|---:|---|')
  for data, name, r, once in rows:
    ref = next(x[2] for x in rows if x[0] == data)
    print(f'| {data} | {name} | {r:,.0f} | {r / ref:.2f} | {once} |')


if __name__ == '__main__':
  main()

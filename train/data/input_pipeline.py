"""Host input pipeline: sharded, resumable batches for pmap.

Typical use (what :func:`train.data.loader.create_data` does for the training
loop), ``ip`` this module::

    ds = ip.load_dataset('cifar10', data_dir=..., manual_dir=...)
    it = ip.prefetch_to_device(
        ip.train_batches(ds.train, 128, seed=0, start_step=step))
    batch = next(it)  # {'image': uint8 (local_devices, 128 // devices,
                      #  32, 32, 3), 'label': int32 (...)}
    # Inside the pmapped step: float32, augmented on the device.
    x = ip.preprocess(batch['image'], key, ds.info, train=True)

Order and sharding
  * Train: epoch ``e`` visits ``np.random.default_rng([seed, e])
    .permutation(N)``; global step ``s`` is epoch ``s // steps_per_epoch``,
    position ``s % steps_per_epoch``, and takes the next ``global_batch``
    indices of that permutation. The last ``N % global_batch`` examples of
    each epoch's permutation are DROPPED (a different subset every epoch).
    Host ``p`` of ``P`` takes rows ``[p·B/P, (p+1)·B/P)`` of each global
    batch, so the global batch (and hence training) does not depend on the
    number of hosts, and ``start_step`` resumes exactly where an
    uninterrupted run would be.
  * Eval: host ``p`` owns the contiguous shard ``[p·N//P, (p+1)·N//P)``; all
    hosts run the same number of batches (:func:`num_eval_steps`), padded
    with zero images and ``mask`` 0, so every example is counted exactly
    once across hosts.
  * Batches have a leading local-device axis for ``pmap``:
    (local_devices, per_device_batch, ...). The global batch must be
    divisible by the total device count (``ValueError`` otherwise).

Why not Grain: ``grain.MapDataset`` / ``grain.DataLoader`` over the same
splits deliver 23-60 times fewer batches per second than this sampler on
one consumer (``python -m benchmarks.grain_sampler``; README), and resuming
here needs no iterator state: batch ``k`` is a function of ``(seed, k)``.

The datasets come from :mod:`train.data.sources`, the background prefetching and
device placement from :mod:`train.data.prefetch`, the device-side augmentation
from :mod:`train.data.augment`; their public names are re-exported here.

CLI: ``python -m train.data {prepare,info} NAME [--data_dir DIR]
[--manual_dir DIR] [--no_download]`` (:mod:`train.data.cli`).
"""

from __future__ import annotations

from typing import Iterator

import jax
import numpy as np

from . import augment

# Re-exported: the pipeline's public names.
from .datasets import (  # noqa: F401
    AUG_CROP_FLIP,
    AUG_FLIP,
    AUG_NONE,
    DATASETS,
    MANUAL_DIR_ENV,
    ArraySource,
    Dataset,
    DatasetInfo,
    DatasetNotFoundError,
    Source,
    TFDS_SPECS,
    get_info,
)
from .cli import main  # noqa: F401  (python -m train.data)
from .decode import TFDSImageSource  # noqa: F401
from .folder_source import load_image_folder  # noqa: F401
from .prefetch import (  # noqa: F401
    Prefetcher,
    device_sharding,
    prefetch,
    prefetch_to_device,
    shard_to_devices,
)
from .sources import (  # noqa: F401
    check_dataset,
    load_dataset,
    prepare_dataset,
)

Batch = dict[str, np.ndarray]

# ---------------------------------------------------------------------------
# Topology and sizes.
# ---------------------------------------------------------------------------


def topology(
    process_index=None, process_count=None, local_device_count=None
) -> tuple[int, int, int]:
  """``(process_index, process_count, local_device_count)``.

  Each argument defaults to JAX's (``jax.process_index()``...).
  """
  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  if local_device_count is None:
    local_device_count = jax.local_device_count()
  if not 0 <= process_index < process_count:
    raise ValueError(
        f'process_index {process_index} not in [0, {process_count})'
    )
  return int(process_index), int(process_count), int(local_device_count)


def per_device_batch_size(
    global_batch_size: int, process_count: int, local_device_count: int
) -> int:
  """The per-device share of a global batch.

  Args:
    global_batch_size: the batch of all devices together.
    process_count: the processes (hosts).
    local_device_count: the devices of each process.

  Returns:
    ``global_batch_size / (process_count * local_device_count)``.

  Raises:
    ValueError: if that is not a positive integer.
  """
  devices = process_count * local_device_count
  if global_batch_size <= 0 or global_batch_size % devices:
    raise ValueError(
        f'The global batch size {global_batch_size} must be a positive '
        f'multiple of the total device count {devices} ({process_count} '
        f'process(es) x {local_device_count} local devices); use e.g. '
        f'{max(devices, global_batch_size // devices * devices)}.'
    )
  return global_batch_size // devices


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  """Train steps per epoch: ``num_examples // global_batch_size``.

  The last partial batch of each epoch is dropped.

  Raises:
    ValueError: when the batch is larger than the split.
  """
  if global_batch_size > num_examples:
    raise ValueError(
        f'global batch {global_batch_size} > {num_examples} train examples'
    )
  return num_examples // global_batch_size


def num_eval_steps(
    num_examples: int, global_batch_size: int, process_count: int | None = None
) -> int:
  """Eval batches per host (the same on every host).

  Args:
    num_examples: the eval split's size N.
    global_batch_size: the eval batch B of all hosts together.
    process_count: the hosts P (default ``jax.process_count()``).

  Returns:
    ``ceil(ceil(N / P) / (B / P))``.
  """
  if process_count is None:
    process_count = jax.process_count()
  if global_batch_size % process_count:
    raise ValueError(
        f'eval batch {global_batch_size} not divisible by '
        f'{process_count} processes'
    )
  host_batch = global_batch_size // process_count
  largest_shard = -(-num_examples // process_count)
  return max(1, -(-largest_shard // host_batch))


def eval_shard(
    num_examples: int, process_index: int, process_count: int
) -> tuple[int, int]:
  """The contiguous eval rows ``[lo, hi)`` of a host.

  The hosts' shards partition the split.
  """
  return (
      process_index * num_examples // process_count,
      (process_index + 1) * num_examples // process_count,
  )


def _layout(x: np.ndarray, local_device_count: int) -> np.ndarray:
  return x.reshape(
      (local_device_count, x.shape[0] // local_device_count) + x.shape[1:]
  )


# ---------------------------------------------------------------------------
# Train and eval batches (numpy, host-local).
# ---------------------------------------------------------------------------


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The train order of an epoch: depends only on (seed, epoch)."""
  return np.random.default_rng([int(seed), int(epoch)]).permutation(
      num_examples
  )


def global_batch_indices(
    num_examples: int, global_batch_size: int, seed: int, step: int
) -> np.ndarray:
  """Example indices of the global train batch of ``step`` (all hosts)."""
  spe = steps_per_epoch(num_examples, global_batch_size)
  epoch, pos = divmod(int(step), spe)
  perm = epoch_permutation(num_examples, seed, epoch)
  return perm[pos * global_batch_size : (pos + 1) * global_batch_size]


def train_batches(
    source: Source,
    global_batch_size: int,
    *,
    seed: int,
    start_step: int = 0,
    num_steps: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    local_device_count: int | None = None,
) -> Iterator[Batch]:
  """This host's share of the global train batches from ``start_step`` on.

  The order depends only on ``(seed, step)`` (see the module docstring);
  host-side random crops (ImageNet) get per-example seeds from
  ``(seed, epoch, step)`` too, so resuming reproduces them as well.

  Args:
    source: the train split.
    global_batch_size: the batch B of all devices together.
    seed: the seed of the order.
    start_step: the first step.
    num_steps: steps to yield (default: forever).
    process_index: this host (default ``jax.process_index()``).
    process_count: the hosts P (default ``jax.process_count()``).
    local_device_count: the devices L of this host (default
      ``jax.local_device_count()``).

  Yields:
    ``{'image': uint8 (L, B/(P·L), H, W, C), 'label': int32 (L, B/(P·L))}``.
  """
  pi, pc, ldc = topology(process_index, process_count, local_device_count)
  per_device_batch_size(global_batch_size, pc, ldc)
  n = len(source)
  spe = steps_per_epoch(n, global_batch_size)
  host_batch = global_batch_size // pc
  rows = slice(pi * host_batch, (pi + 1) * host_batch)
  cached_epoch, perm = None, None
  step = int(start_step)
  if step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}')
  end = None if num_steps is None else step + int(num_steps)
  while end is None or step < end:
    epoch, pos = divmod(step, spe)
    if epoch != cached_epoch:
      cached_epoch, perm = epoch, epoch_permutation(n, seed, epoch)
    indices = perm[pos * global_batch_size : (pos + 1) * global_batch_size]
    seeds = np.random.default_rng([int(seed), epoch, pos, 1]).integers(
        0, 2**63 - 1, size=global_batch_size, dtype=np.int64
    )
    batch = source.get_batch(indices[rows], seeds[rows])
    yield {
        'image': _layout(batch['image'], ldc),
        'label': _layout(batch['label'], ldc),
    }
    step += 1


def eval_batches(
    source: Source,
    global_batch_size: int,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    local_device_count: int | None = None,
) -> Iterator[Batch]:
  """This host's eval batches.

  Every example of the split is in exactly one host's batches. Each host
  yields :func:`num_eval_steps` batches, so hosts stay in step for
  collectives.

  Args:
    source: the eval split.
    global_batch_size: the batch of all devices together.
    process_index: as for :func:`train_batches`.
    process_count: as for :func:`train_batches`.
    local_device_count: as for :func:`train_batches`.

  Yields:
    ``{'image', 'label', 'mask'}`` laid out like :func:`train_batches`;
    ``mask`` is float32, 1.0 for real examples and 0.0 for padding (zero
    images, label 0).
  """
  pi, pc, ldc = topology(process_index, process_count, local_device_count)
  per_device_batch_size(global_batch_size, pc, ldc)
  n = len(source)
  host_batch = global_batch_size // pc
  lo, hi = eval_shard(n, pi, pc)
  for step in range(num_eval_steps(n, global_batch_size, pc)):
    rows = lo + step * host_batch + np.arange(host_batch)
    real = rows < hi
    k = int(real.sum())
    image = np.zeros((host_batch, *source.image_shape), np.uint8)
    label = np.zeros((host_batch,), np.int32)
    if k:
      part = source.get_batch(rows[:k])
      image[:k] = part['image']
      label[:k] = part['label']
    yield {
        'image': _layout(image, ldc),
        'label': _layout(label, ldc),
        'mask': _layout(real.astype(np.float32), ldc),
    }


def preprocess(images, key, dataset, train: bool, dtype=None):
  """uint8 (..., H, W, C) -> float, augmented when ``train``.

  See :func:`train.data.augment.preprocess`.
  """
  if dtype is None:
    return augment.preprocess(images, key, dataset, train)
  return augment.preprocess(images, key, dataset, train, dtype)

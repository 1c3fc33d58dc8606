"""Host input pipeline: sharded, resumable batches for pmap, prefetched onto the devices.

Typical use (what :func:`create_data` does for the training loop)::

    from train import input_pipeline as ip
    ds = ip.load_dataset("cifar10", data_dir=..., manual_dir=...)   # Dataset(info, train, eval)
    it = ip.prefetch_to_device(ip.train_batches(ds.train, 128, seed=0, start_step=step))
    batch = next(it)   # {'image': uint8 (local_devices, 128 // devices, 32, 32, 3), 'label': int32 (...)}
    # inside the pmapped step:
    x = ip.preprocess(batch['image'], key, ds.info, train=True)   # float32, augmented on device

Order and sharding
  * Train: epoch ``e`` visits ``np.random.default_rng([seed, e]).permutation(N)``; global step
    ``s`` is epoch ``s // steps_per_epoch``, position ``s % steps_per_epoch``, and takes the next
    ``global_batch`` indices of that permutation. The last ``N % global_batch`` examples of each
    epoch's permutation are DROPPED (a different subset every epoch). Host ``p`` of ``P`` takes rows
    ``[p·B/P, (p+1)·B/P)`` of each global batch, so the global batch — and hence training — does
    not depend on the number of hosts, and ``start_step`` resumes exactly where an uninterrupted
    run would be.
  * Eval: host ``p`` owns the contiguous shard ``[p·N//P, (p+1)·N//P)``; all hosts run the same
    number of batches (:func:`num_eval_steps`), padded with zero images and ``mask`` 0, so every
    example is counted exactly once across hosts.
  * Batches have a leading local-device axis for ``pmap``: (local_devices, per_device_batch, ...).
    The global batch must be divisible by the total device count (``ValueError`` otherwise).

Throughput
  * :func:`prefetch` runs the batch generator in a background thread with a bounded queue;
    :func:`prefetch_to_device` also places each batch on the local devices (sharded along the
    leading axis with a ``NamedSharding`` over ``jax.local_devices()`` — what ``pmap`` consumes
    without another copy, on one host or many: ``pmap`` assembles the global array from the
    hosts' local arrays itself).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import datasets
from .datasets import (AUG_CROP_FLIP, AUG_FLIP, AUG_NONE, DATASETS, MANUAL_DIR_ENV, ArraySource,  # noqa: F401
                       Dataset, DatasetInfo, DatasetNotFoundError, Source, TFDSImageSource,
                       get_info, load_dataset, load_image_folder, prepare_dataset)

log = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]


# --------------------------------------------------------------------------------------------
# Topology and sizes
# --------------------------------------------------------------------------------------------


def _topology(process_index, process_count, local_device_count) -> tuple[int, int, int]:
    if process_index is None or process_count is None or local_device_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
        local_device_count = jax.local_device_count() if local_device_count is None else local_device_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return int(process_index), int(process_count), int(local_device_count)


def per_device_batch_size(global_batch_size: int, process_count: int, local_device_count: int) -> int:
    """``global_batch_size / (process_count * local_device_count)``; ValueError if not an integer."""
    devices = process_count * local_device_count
    if global_batch_size <= 0 or global_batch_size % devices:
        raise ValueError(
            f"The global batch size {global_batch_size} must be a positive multiple of the total "
            f"device count {devices} ({process_count} process(es) x {local_device_count} local "
            f"devices); use e.g. {max(devices, global_batch_size // devices * devices)}.")
    return global_batch_size // devices


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Train steps per epoch, ``num_examples // global_batch_size`` (the last partial batch is dropped)."""
    if global_batch_size > num_examples:
        raise ValueError(f"global batch {global_batch_size} > {num_examples} train examples")
    return num_examples // global_batch_size


def num_eval_steps(num_examples: int, global_batch_size: int, process_count: int | None = None) -> int:
    """Eval batches per host (the same on every host): ``ceil(ceil(N / P) / (B / P))``."""
    if process_count is None:
        import jax

        process_count = jax.process_count()
    if global_batch_size % process_count:
        raise ValueError(f"eval batch {global_batch_size} not divisible by {process_count} processes")
    host_batch = global_batch_size // process_count
    largest_shard = -(-num_examples // process_count)
    return max(1, -(-largest_shard // host_batch))


def eval_shard(num_examples: int, process_index: int, process_count: int) -> tuple[int, int]:
    """The contiguous eval rows ``[lo, hi)`` of a host; the hosts' shards partition the split."""
    return (process_index * num_examples // process_count,
            (process_index + 1) * num_examples // process_count)


def _layout(x: np.ndarray, local_device_count: int) -> np.ndarray:
    return x.reshape((local_device_count, x.shape[0] // local_device_count) + x.shape[1:])


# --------------------------------------------------------------------------------------------
# Train and eval batches (numpy, host-local)
# --------------------------------------------------------------------------------------------


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The train order of an epoch: a permutation that depends only on (seed, epoch)."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(num_examples)


def global_batch_indices(num_examples: int, global_batch_size: int, seed: int, step: int) -> np.ndarray:
    """Example indices of the global train batch of ``step`` (all hosts together)."""
    spe = steps_per_epoch(num_examples, global_batch_size)
    epoch, pos = divmod(int(step), spe)
    perm = epoch_permutation(num_examples, seed, epoch)
    return perm[pos * global_batch_size:(pos + 1) * global_batch_size]


def train_batches(source: Source, global_batch_size: int, *, seed: int, start_step: int = 0,
                  num_steps: int | None = None, process_index: int | None = None,
                  process_count: int | None = None,
                  local_device_count: int | None = None) -> Iterator[Batch]:
    """This host's share of the global train batches of steps ``start_step, start_step + 1, ...``.

    Yields ``{'image': uint8 (L, B/(P·L), H, W, C), 'label': int32 (L, B/(P·L))}`` (L local
    devices, P processes, B global batch), forever or for ``num_steps`` steps. The order depends
    only on ``(seed, step)`` (see the module docstring); host-side random crops (ImageNet) get
    per-example seeds from ``(seed, epoch, step)`` too, so resuming reproduces them as well.
    Topology arguments default to ``jax.process_index()``, ``jax.process_count()``,
    ``jax.local_device_count()``.
    """
    pi, pc, ldc = _topology(process_index, process_count, local_device_count)
    per_device_batch_size(global_batch_size, pc, ldc)
    n = len(source)
    spe = steps_per_epoch(n, global_batch_size)
    host_batch = global_batch_size // pc
    rows = slice(pi * host_batch, (pi + 1) * host_batch)
    cached_epoch, perm = None, None
    step = int(start_step)
    if step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    end = None if num_steps is None else step + int(num_steps)
    while end is None or step < end:
        epoch, pos = divmod(step, spe)
        if epoch != cached_epoch:
            cached_epoch, perm = epoch, epoch_permutation(n, seed, epoch)
        indices = perm[pos * global_batch_size:(pos + 1) * global_batch_size][rows]
        seeds = np.random.default_rng([int(seed), epoch, pos, 1]).integers(
            0, 2**63 - 1, size=global_batch_size, dtype=np.int64)[rows]
        batch = source.get_batch(indices, seeds)
        yield {"image": _layout(batch["image"], ldc), "label": _layout(batch["label"], ldc)}
        step += 1


def eval_batches(source: Source, global_batch_size: int, *, process_index: int | None = None,
                 process_count: int | None = None,
                 local_device_count: int | None = None) -> Iterator[Batch]:
    """This host's eval batches; every example of the split is in exactly one host's batches.

    Yields ``{'image', 'label', 'mask'}`` laid out like :func:`train_batches`; ``mask`` is float32,
    1.0 for real examples and 0.0 for padding (zero images, label 0). Each host yields
    :func:`num_eval_steps` batches, so hosts stay in step for collectives.
    """
    pi, pc, ldc = _topology(process_index, process_count, local_device_count)
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
            image[:k] = part["image"]
            label[:k] = part["label"]
        yield {"image": _layout(image, ldc), "label": _layout(label, ldc),
               "mask": _layout(real.astype(np.float32), ldc)}


# --------------------------------------------------------------------------------------------
# Background prefetching and device placement
# --------------------------------------------------------------------------------------------

_END = object()


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def _put(q: queue.Queue, stop: threading.Event, item) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _produce(iterator, q: queue.Queue, stop: threading.Event, transform) -> None:
    # A plain function (not a method), so the thread holds no reference to the Prefetcher and
    # dropping the Prefetcher stops the thread (see Prefetcher.__del__).
    try:
        for item in iterator:
            if stop.is_set():
                return
            if transform is not None:
                item = transform(item)
            if not _put(q, stop, item):
                return
    except BaseException as e:  # noqa: BLE001 - handed to the consumer
        _put(q, stop, _Raised(e))
        return
    _put(q, stop, _END)


class Prefetcher:
    """Iterates ``iterator`` in a daemon thread, ``buffer_size`` items ahead (bounded queue).

    ``transform`` (e.g. device placement) runs in the thread as well. Exceptions are re-raised
    in the consumer. ``close()``, leaving a ``with`` block, or dropping the last reference stops
    the thread (and frees the buffered batches).
    """

    def __init__(self, iterator: Iterable, buffer_size: int = 2,
                 transform: Callable[[Any], Any] | None = None):
        if buffer_size < 1:
            raise ValueError("buffer_size must be >= 1")
        self._queue: queue.Queue = queue.Queue(maxsize=buffer_size)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=_produce, args=(iter(iterator), self._queue, self._stop, transform),
            daemon=True, name="rda-prefetch")
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Raised):
            self._done = True
            raise item.error
        return item

    def close(self):
        self._stop.set()
        self._done = True
        while True:  # drop buffered batches
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()


def prefetch(iterator: Iterable, buffer_size: int = 2) -> Prefetcher:
    """Host-side background prefetching of any iterator (see :class:`Prefetcher`)."""
    return Prefetcher(iterator, buffer_size)


def device_sharding(devices=None, axis_name: str = "batch"):
    """``NamedSharding`` splitting the leading axis over ``devices`` (default: local devices)."""
    import jax

    devices = list(jax.local_devices() if devices is None else devices)
    mesh = jax.sharding.Mesh(np.array(devices), (axis_name,))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis_name))


def shard_to_devices(batch, devices=None, axis_name: str = "batch"):
    """Places a host-local batch (leading axis = local devices) on the devices, one slice each.

    Returns ``jax.Array`` leaves with a ``NamedSharding`` over the local devices — the input
    sharding ``pmap`` uses, so it consumes them without copying. (``jax.device_put_sharded`` /
    ``device_put_replicated`` and ``PmapSharding`` are gone from current JAX.) In a multi-host
    run each host passes its own local array to ``pmap``, which builds the global one.
    """
    import jax

    sharding = device_sharding(devices, axis_name)
    return jax.tree.map(lambda x: jax.device_put(x, sharding), batch)


def prefetch_to_device(iterator: Iterable, buffer_size: int = 2, devices=None,
                       axis_name: str = "batch") -> Prefetcher:
    """Background thread that builds batches AND copies them to the devices, ``buffer_size`` ahead."""
    sharding = device_sharding(devices, axis_name)

    def put(batch):
        import jax

        return jax.tree.map(lambda x: jax.device_put(x, sharding), batch)

    return Prefetcher(iterator, buffer_size, transform=put)


# --------------------------------------------------------------------------------------------
# Device-side preprocessing (see train.augment)
# --------------------------------------------------------------------------------------------


def preprocess(images, key, dataset, train: bool, dtype=None):
    """uint8 (..., H, W, C) -> float (augmented when ``train``); see :func:`train.augment.preprocess`."""
    from . import augment

    if dtype is None:
        return augment.preprocess(images, key, dataset, train)
    return augment.preprocess(images, key, dataset, train, dtype)


# --------------------------------------------------------------------------------------------
# The training loop's seam (train.data.Data)
# --------------------------------------------------------------------------------------------


def check_dataset(name: str) -> None:
    """Raises ValueError for a dataset name this pipeline cannot load (no I/O)."""
    if name in DATASETS:
        return
    if name.startswith(datasets.IMAGEFOLDER_PREFIX) and len(name) > len(datasets.IMAGEFOLDER_PREFIX):
        return
    raise ValueError(f"Unknown dataset {name!r}: use one of {', '.join(sorted(DATASETS))} or "
                     "'imagefolder:<path>' (a <split>/<class>/<image> folder or .tar.gz).")


def create_data(cfg, *, prefetch_size: int = 2, axis_name: str = "batch"):
    """The :class:`train.data.Data` of ``cfg`` (dataset, data_dir, manual_dir, batch sizes, seed).

    ``train_batches(start_step)`` and ``eval_batches()`` return iterators of device-placed
    batches (prefetched in a background thread); ``preprocess(images, key, train)`` is the
    device-side augmentation/normalisation of the dataset.
    """
    from . import data as data_lib

    info = DATASETS.get(cfg.dataset)
    train_split = getattr(cfg, "train_split", None) or None
    eval_split = getattr(cfg, "eval_split", None) or None
    if info is not None:  # 'test' is the config default; ImageNet evaluates on 'validation'
        train_split = train_split or info.train_split
        if eval_split == "test" and info.eval_split != "test":
            eval_split = info.eval_split
    dataset = load_dataset(cfg.dataset, data_dir=cfg.data_dir, manual_dir=cfg.manual_dir,
                           train_split=train_split, eval_split=eval_split)
    info = dataset.info
    batch_size = cfg.batch_size
    eval_batch = getattr(cfg, "eval_batch", None) or batch_size
    # Fail now, not in the loop, on an indivisible batch size.
    _, pc, ldc = _topology(None, None, None)
    per_device_batch_size(batch_size, pc, ldc)
    per_device_batch_size(eval_batch, pc, ldc)
    steps_per_epoch(info.num_train, batch_size)

    def train_iter(start_step: int = 0):
        return prefetch_to_device(train_batches(dataset.train, batch_size, seed=cfg.seed,
                                                start_step=start_step),
                                  prefetch_size, axis_name=axis_name)

    def eval_iter():
        return prefetch_to_device(eval_batches(dataset.eval, eval_batch), prefetch_size,
                                  axis_name=axis_name)

    def preprocess_fn(images, key, train):
        return preprocess(images, key, info, train)

    return data_lib.Data(info.name, info.num_classes, tuple(info.image_shape), info.num_train,
                         info.num_eval, train_iter, eval_iter, preprocess_fn)


# --------------------------------------------------------------------------------------------
# CLI: python -m train.input_pipeline {prepare,info} NAME [--data_dir DIR] [--manual_dir DIR]
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m train.input_pipeline",
        description="Prepare a dataset once (TFDS array_record / image-folder cache) or show it.")
    parser.add_argument("command", choices=("prepare", "info"))
    parser.add_argument("dataset", help=f"{', '.join(sorted(DATASETS))} or imagefolder:<path>")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--manual_dir", default=None, help=f"manual download folder (env {MANUAL_DIR_ENV})")
    parser.add_argument("--no_download", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        if args.command == "prepare":
            path = prepare_dataset(args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir,
                                   download=not args.no_download)
            print(f"{args.dataset}: prepared in {path}")
        else:
            ds = load_dataset(args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir,
                              download=not args.no_download, in_memory=False)
            info = {k: v for k, v in vars(ds.info).items() if k != "class_names"}
            print(json.dumps(info, indent=1))
    except (DatasetNotFoundError, ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

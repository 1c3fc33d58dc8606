"""The seam between the training loop and its data.

:class:`Data` is what :func:`train.train.train_and_evaluate` consumes:

* ``train_batches(start_step)``: an iterator of this host's share of the
  global batch of steps ``start_step, start_step + 1, ...`` as
  ``{'image': uint8 (local_devices, per_device_batch, H, W, C),
  'label': int32 (local_devices, per_device_batch)}``; the order depends only
  on ``(seed, step)``, so a resumed run sees the same batches.
* ``eval_batches()``: every example of the eval split once, in batches of
  the same layout plus ``'mask'`` (1 for real examples, 0 for padding).
* ``preprocess(images_uint8, key, train)``: device-side conversion to float
  (and augmentation when ``train``), run inside the pmapped steps.
* ``task``: what is learnt (:mod:`train.tasks`): classification of the
  images above, or, for a text corpus (``--dataset shakespeare_char``,
  :mod:`train.data.text_pipeline`), next-character prediction over
  ``{'tokens': int32 (local_devices, per_device_batch, context + 1)}``
  windows (plus a per-character ``'mask'`` in evaluation).

:func:`create_data` builds it for ``cfg.dataset`` from any source of
:mod:`train.data.sources` (TFDS datasets, image folders, or the in-memory
synthetic dataset ``--dataset synthetic`` / ``synthetic:HxWxC:classes``
that tests and benchmarks use), always through the batching of
:mod:`train.data.input_pipeline` (:func:`make_data`); a text corpus through
:mod:`train.data.text_pipeline` (:func:`make_text_data`, in
:mod:`train.data.text_loader`). :class:`Data` itself, and the device
placement both loaders share, are in :mod:`train.data.batches`.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Iterator

from . import augment
from .. import config as config_lib
from . import input_pipeline
from . import sources
from . import synthetic_source
from . import text_source
from . import datasets
from .datasets import DATASETS
from .datasets import Dataset
from .datasets import is_synthetic

# What the loaders make, and the text corpus's loader, each in a module of
# its own; their names are this module's too (train.data.loader.Data, ...).
# pylint: disable=unused-import
from .batches import Batch
from .batches import Data
from .batches import placement
from .text_loader import make_text_data

# pylint: enable=unused-import


def make_data(
    dataset: Dataset,
    batch_size: int,
    *,
    eval_batch: int | None = None,
    seed: int = 0,
    prefetch_size: int = 2,
    axis_name: str = 'batch',
    process_index: int | None = None,
    process_count: int | None = None,
    local_device_count: int | None = None,
) -> Data:
  """The :class:`Data` of a loaded dataset.

  Fails now, not in the loop, on a batch size that the devices do not
  divide or that is larger than the train split.

  Args:
    dataset: the dataset.
    batch_size: the global train batch.
    eval_batch: the global eval batch (default ``batch_size``).
    seed: the seed of the train order.
    prefetch_size: batches built and copied to the devices ahead, in a
      background thread; 0: host (numpy) batches, built when asked for.
    axis_name: the mesh axis of the device placement.
    process_index: the topology (default JAX's); see
      :func:`train.data.input_pipeline.train_batches`.
    process_count: see ``process_index``.
    local_device_count: see ``process_index``.

  Returns:
    The data of the training loop.
  """
  info = dataset.info
  eval_batch = eval_batch or batch_size
  topology, placed = placement(
      (batch_size, eval_batch),
      prefetch_size,
      axis_name,
      process_index,
      process_count,
      local_device_count,
  )
  input_pipeline.steps_per_epoch(info.num_train, batch_size)

  def train_iter(start_step: int = 0):
    return placed(
        input_pipeline.train_batches(
            dataset.train,
            batch_size,
            seed=seed,
            start_step=start_step,
            **topology,
        )
    )

  def eval_iter():
    return placed(
        input_pipeline.eval_batches(dataset.eval, eval_batch, **topology)
    )

  preprocess_fn = dataset.preprocess
  if preprocess_fn is None:

    def preprocess_fn(images, key, train):
      return augment.preprocess(images, key, info, train)

  return Data(
      info.name,
      info.num_classes,
      tuple(info.image_shape),
      info.num_train,
      info.num_eval,
      train_iter,
      eval_iter,
      preprocess_fn,
  )


def synthetic_data(
    name: str = 'synthetic',
    *,
    global_batch: int,
    eval_global_batch: int | None = None,
    seed: int = 0,
    num_train: int = synthetic_source.NUM_TRAIN,
    num_eval: int = synthetic_source.NUM_EVAL,
    local_devices: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> Data:
  """The in-memory dataset ``synthetic[:HxWxC][:classes]``, host batches.

  See :mod:`train.data.synthetic_source` for the data and
  :func:`train.data.input_pipeline.train_batches` for the order: a per-epoch
  permutation of ``(seed, epoch)``; host ``p`` takes rows
  ``[p·B/P, (p+1)·B/P)`` of every global batch.

  Args:
    name: the synthetic dataset.
    global_batch: the global train batch.
    eval_global_batch: the global eval batch (default ``global_batch``).
    seed: the seed of the train order.
    num_train: train examples.
    num_eval: eval examples.
    local_devices: the devices of this host (default JAX's).
    process_index: this host (default JAX's).
    process_count: the hosts (default JAX's).

  Returns:
    Its data, batches in numpy (not prefetched).
  """
  dataset = synthetic_source.load_synthetic(
      name, num_train=num_train, num_eval=num_eval
  )
  return make_data(
      dataset,
      global_batch,
      eval_batch=eval_global_batch,
      seed=seed,
      prefetch_size=0,
      process_index=process_index,
      process_count=process_count,
      local_device_count=local_devices,
  )


def create_data(
    cfg, *, prefetch_size: int = 2, axis_name: str = 'batch'
) -> Data:
  """The :class:`Data` of ``cfg``; a dataset that cannot be loaded is a
  one-line :class:`train.config.ConfigError`.

  Args:
    cfg: reads ``dataset``, ``data_dir``, ``manual_dir``, ``batch_size``,
      ``eval_batch``, ``seed`` and, if present, ``train_split`` and
      ``eval_split``.
    prefetch_size: batches placed on the devices ahead (see
      :func:`make_data`).
    axis_name: the mesh axis of the device placement.

  Returns:
    Its data: device-placed batches, prefetched in a background thread, and
    the dataset's device-side augmentation / normalisation. A text corpus
    (:mod:`train.data.text_source`) reads ``context`` too (its windows) and
    ``eval_split`` as :func:`train.data.datasets.text_eval_size` does, and
    is batched by :func:`make_text_data`.

  Raises:
    ConfigError: the dataset cannot be found, prepared or batched (the
      message says how, e.g. which manual folder or which damaged archive).
  """
  try:
    if text_source.is_text(cfg.dataset):
      corpus = text_source.load_text(
          cfg.dataset, manual_dir=cfg.manual_dir, data_dir=cfg.data_dir
      )
      eval_split = getattr(cfg, 'eval_split', None) or 'test'
      size = datasets.text_eval_size(eval_split, len(corpus.eval))
      return make_text_data(
          dataclasses.replace(corpus, eval=corpus.eval[:size]),
          cfg.batch_size,
          context=cfg.context,
          eval_batch=getattr(cfg, 'eval_batch', None),
          seed=cfg.seed,
          prefetch_size=prefetch_size,
          axis_name=axis_name,
      )
    return make_data(
        _load(cfg),
        cfg.batch_size,
        eval_batch=getattr(cfg, 'eval_batch', None),
        seed=cfg.seed,
        prefetch_size=prefetch_size,
        axis_name=axis_name,
    )
  except config_lib.ConfigError:
    raise
  except (ValueError, FileNotFoundError) as e:
    # DatasetNotFoundError is a FileNotFoundError; its message says how to
    # pass a manual download folder.
    raise config_lib.ConfigError(
        f'Cannot load dataset {cfg.dataset!r}: {e}'
    ) from e
  except Exception as e:  # pylint: disable=broad-except
    checksum_error = _tfds_checksum_error()
    if checksum_error is None or not isinstance(e, checksum_error):
      raise
    # A damaged or truncated archive in the manual / download folder.
    got = [
        line.strip()
        for line in str(e).splitlines()
        if 'filename=' in line and line.strip().startswith('* Got')
    ]
    name = got[0].split("filename='")[-1].rstrip("')") if got else 'a file'
    raise config_lib.ConfigError(
        f'Cannot prepare dataset {cfg.dataset!r}: {name} does not match '
        'its published checksum (truncated or damaged); replace it with '
        'the original archive (in --manual_dir or the TFDS download '
        'folder).'
    ) from e


def _tfds_checksum_error() -> type[Exception] | None:
  """TFDS's error for an archive that does not match its checksum; None
  when TFDS was not imported (then it raised nothing). Not exported by
  TFDS's public API, so looked up where TFDS defines it."""
  module = sys.modules.get('tensorflow_datasets.core.download.download_manager')
  return getattr(module, 'NonMatchingChecksumError', None)


def _load(cfg) -> Dataset:
  """The dataset of ``cfg`` from its source, prepared if needed."""
  if is_synthetic(cfg.dataset):
    return synthetic_source.load_synthetic(cfg.dataset)
  info = DATASETS.get(cfg.dataset)
  train_split = getattr(cfg, 'train_split', None) or None
  eval_split = getattr(cfg, 'eval_split', None) or None
  if info is not None:
    # 'test' is the config default; ImageNet evaluates on 'validation'.
    train_split = train_split or info.train_split
    if eval_split == 'test' and info.eval_split != 'test':
      eval_split = info.eval_split
  return sources.load_dataset(
      cfg.dataset,
      data_dir=cfg.data_dir,
      manual_dir=cfg.manual_dir,
      train_split=train_split,
      eval_split=eval_split,
  )


def close(iterator: Iterator[Any]) -> None:
  """Stops a batch iterator's prefetch thread, if it has one.

  Call it before the interpreter exits: a daemon thread inside native code
  at exit can abort it.
  """
  stop = getattr(iterator, 'close', None)
  if stop is not None:
    stop()

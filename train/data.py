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

:func:`create_data` builds it from the project's input pipeline
(:mod:`train.input_pipeline`) for TFDS datasets, or from an in-memory
synthetic dataset (``--dataset synthetic`` / ``synthetic:HxWxC:classes``),
which tests and benchmarks use.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Iterator

import numpy as np

Batch = dict[str, np.ndarray]


@dataclasses.dataclass
class Data:
  """A dataset as the training loop sees it (see the module docstring)."""
  name: str
  num_classes: int
  image_shape: tuple[int, int, int]
  num_train_examples: int
  num_eval_examples: int
  train_batches: Callable[[int], Iterator[Batch]]
  eval_batches: Callable[[], Iterator[Batch]]
  preprocess: Callable[[Any, Any, bool], Any]


# ---------------------------------------------------------------------------
# Synthetic data (in memory, learnable, deterministic).
# ---------------------------------------------------------------------------

_SYNTH = re.compile(r'^synthetic(?::(\d+)x(\d+)x(\d+))?(?::(\d+))?$')


def is_synthetic(name: str) -> bool:
  return bool(_SYNTH.match(name))


def synthetic_data(name: str = 'synthetic', *, global_batch: int,
                   eval_global_batch: int | None = None, seed: int = 0,
                   num_train: int = 1024, num_eval: int = 200,
                   local_devices: int | None = None,
                   process_index: int | None = None,
                   process_count: int | None = None) -> Data:
  """An in-memory dataset ``synthetic[:HxWxC][:classes]`` (default 28x28x1:10).

  Each class has a fixed random binary template (0 or 192); an image is its
  class's template plus uniform noise in [0, 64), so a small network learns
  it in a few steps. The train
  order is a per-epoch permutation of ``(seed, epoch)``; host ``p`` takes
  rows ``[p·B/P, (p+1)·B/P)`` of every global batch.
  """
  import jax
  m = _SYNTH.match(name)
  if not m:
    raise ValueError(f'Not a synthetic dataset name: {name!r}')
  h, w, c = (int(m.group(i)) if m.group(i) else d
             for i, d in ((1, 28), (2, 28), (3, 1)))
  classes = int(m.group(4)) if m.group(4) else 10
  ld = local_devices or jax.local_device_count()
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  eval_global_batch = eval_global_batch or global_batch
  for b in (global_batch, eval_global_batch):
    if b % (ld * pc):
      raise ValueError(f'Batch {b} is not divisible by {ld * pc} devices.')

  rng = np.random.default_rng(1234)  # The data itself does not depend on seed.
  templates = rng.integers(0, 2, size=(classes, h, w, c), dtype=np.int64) * 192

  def make(n, offset):
    r = np.random.default_rng(offset)
    labels = r.integers(0, classes, size=n).astype(np.int32)
    noise = r.integers(0, 64, size=(n, h, w, c))
    images = (templates[labels] + noise).clip(0, 255).astype(np.uint8)
    return images, labels

  train_x, train_y = make(num_train, 1)
  eval_x, eval_y = make(num_eval, 2)

  def layout(x, batch):
    return x.reshape((ld, batch // (pc * ld)) + x.shape[1:])

  def train_batches(start_step: int = 0) -> Iterator[Batch]:
    local = global_batch // pc
    step = start_step
    perm_epoch, perm = -1, None
    while True:
      idx = np.arange(step * global_batch, (step + 1) * global_batch)
      idx = idx[pi * local:(pi + 1) * local]
      epochs, pos = idx // num_train, idx % num_train
      out = np.empty_like(pos)
      for e in np.unique(epochs):
        if e != perm_epoch:
          perm_epoch = e
          perm = np.random.default_rng([seed, int(e)]).permutation(num_train)
        out[epochs == e] = perm[pos[epochs == e]]
      yield {'image': layout(train_x[out], global_batch),
             'label': layout(train_y[out], global_batch)}
      step += 1

  def eval_batches() -> Iterator[Batch]:
    local = eval_global_batch // pc
    for start in range(0, num_eval, eval_global_batch):
      idx = np.arange(start, start + eval_global_batch)[pi * local:
                                                        (pi + 1) * local]
      mask = (idx < num_eval).astype(np.float32)
      idx = np.minimum(idx, num_eval - 1)
      yield {'image': layout(eval_x[idx], eval_global_batch),
             'label': layout(eval_y[idx], eval_global_batch),
             'mask': layout(mask, eval_global_batch)}

  def preprocess(images, key, train):
    del key, train
    import jax.numpy as jnp
    return images.astype(jnp.float32) / 255.0

  return Data(name, classes, (h, w, c), num_train, num_eval, train_batches,
              eval_batches, preprocess)


# ---------------------------------------------------------------------------
# The project's input pipeline.
# ---------------------------------------------------------------------------

def create_data(cfg) -> Data:
  """The :class:`Data` of ``cfg.dataset`` (synthetic or TFDS)."""
  if is_synthetic(cfg.dataset):
    return synthetic_data(cfg.dataset, global_batch=cfg.batch_size,
                          eval_global_batch=cfg.eval_batch, seed=cfg.seed)
  from train import input_pipeline  # pylint: disable=import-outside-toplevel
  return input_pipeline.create_data(cfg)


def check_dataset(cfg) -> None:
  """Raises ConfigError for an unknown dataset name (before any work)."""
  from train.config import ConfigError  # pylint: disable=import-outside-toplevel
  if is_synthetic(cfg.dataset):
    return
  try:
    from train import input_pipeline  # pylint: disable=import-outside-toplevel
  except ImportError:
    input_pipeline = None
  check = getattr(input_pipeline, 'check_dataset', None)
  if check is not None:
    try:
      check(cfg.dataset)
    except ConfigError:
      raise
    except ValueError as e:
      raise ConfigError(str(e)) from e
    return
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  try:
    tfds.builder_cls(cfg.dataset.split(':')[0].split('/')[0])
  except Exception as e:  # DatasetNotFoundError, a ValueError subclass.
    import difflib  # pylint: disable=import-outside-toplevel
    close = difflib.get_close_matches(cfg.dataset, tfds.list_builders(), n=5)
    raise ConfigError(
        f'Unknown dataset {cfg.dataset!r}: not a TFDS dataset'
        + (f' (did you mean {", ".join(close)}?)' if close else '')
        + '. Use a TFDS name such as mnist, cifar10, cifar100, imagenet2012, '
        'or synthetic for an in-memory test set.') from e

"""What the training loop consumes: :class:`Data`, and the placement of its
host batches on the devices.

:class:`Data` is described in :mod:`train.data.loader`, whose loaders
(:func:`~train.data.loader.make_data`, :func:`~train.data.loader.make_text_data`)
make it; :func:`placement` is what they share: the topology of the input
pipeline (each batch size checked to divide across it) and the device
prefetch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import numpy as np

from .. import tasks as tasks_lib
from . import input_pipeline
from . import prefetch

Batch = dict[str, np.ndarray]


@dataclasses.dataclass
class Data:
  """A dataset as the training loop sees it (see the module docstring).

  For a language model ``num_classes`` is the vocabulary size,
  ``image_shape`` the model's input ``(context,)``, the examples are windows
  and ``vocabulary`` the characters of the token ids.
  """

  name: str
  num_classes: int
  image_shape: tuple[int, ...]
  num_train_examples: int
  num_eval_examples: int
  train_batches: Callable[[int], Iterator[Batch]]
  eval_batches: Callable[[], Iterator[Batch]]
  preprocess: Callable[[Any, Any, bool], Any]
  task: Any = tasks_lib.CLASSIFICATION
  vocabulary: str | None = None


def placement(
    batches,
    prefetch_size,
    axis_name,
    process_index,
    process_count,
    local_device_count,
):
  """``(topology, placed)`` of a loader: the topology keywords of the input
  pipeline (each batch size of ``batches`` checked to divide across it) and
  the function that puts host batches on the devices (``prefetch_size``
  ahead; 0: as they are)."""
  topology = dict(
      zip(
          ('process_index', 'process_count', 'local_device_count'),
          input_pipeline.topology(
              process_index, process_count, local_device_count
          ),
      )
  )
  for batch in batches:
    input_pipeline.per_device_batch_size(
        batch, topology['process_count'], topology['local_device_count']
    )

  def placed(iterator):
    if not prefetch_size:
      return iterator
    return prefetch.prefetch_to_device(
        iterator, prefetch_size, axis_name=axis_name
    )

  return topology, placed

"""Reading a prepared TFDS split without TensorFlow.

:func:`open_tfds_split` opens a split prepared as array_record with
``tfds.data_source`` (random access; images decoded on the host with
Pillow, ImageNet's crops done at decode time: :mod:`train.data.decode`).
Used by :func:`train.data.tfds_source.load_tfds`.
"""

from __future__ import annotations

import math

from .datasets import DATASETS
from .datasets import TFDS_SPECS
from .datasets import DatasetInfo
from .datasets import DatasetNotFoundError
from .decode import TFDSImageSource
from .tfds_access import import_tfds
from .tfds_access import missing_message
from .tfds_access import tfds_builder


def open_tfds_split(
    name: str,
    split: str,
    *,
    data_dir=None,
    image_size: int | None = None,
    train: bool = False,
    num_workers: int | None = None,
) -> TFDSImageSource:
  """Opens a prepared TFDS split for random access, without TensorFlow.

  Args:
    name: a key of ``TFDS_SPECS``.
    split: the split's name or slice.
    data_dir: the TFDS data folder.
    image_size: the host-side crop size (default 224); ImageNet only.
    train: random-resized crops (train) or centre crops; ImageNet only.
    num_workers: decoding threads.

  Returns:
    The split as a source.
  """
  tfds = import_tfds()
  spec = TFDS_SPECS[name]
  info = DATASETS[name]
  kwargs = {}
  crop = None
  shape = info.image_shape
  if spec.host_crop:
    size = image_size or info.image_shape[0]
    shape = (size, size, info.image_shape[-1])
    crop = 'random_resized' if train else 'center'
  kwargs['decoders'] = {'image': tfds.decode.SkipDecoding()}
  try:
    data_source = tfds.data_source(
        spec.tfds_name, split=split, data_dir=data_dir, download=False, **kwargs
    )
  except (
      NotImplementedError,
      AssertionError,
      FileNotFoundError,
      ValueError,
  ) as e:
    builder = tfds_builder(name, data_dir)
    if builder.is_prepared():
      raise DatasetNotFoundError(
          f'{name!r} is prepared in {builder.data_dir} but cannot be read '
          f'with tfds.data_source ({e}). It must be prepared with '
          "file_format='array_record': use another --data_dir (or delete "
          'that folder) and prepare again.'
      ) from e
    raise DatasetNotFoundError(
        missing_message(name, data_dir, 'it was not prepared')
    ) from e
  return TFDSImageSource(data_source, shape, crop=crop, num_workers=num_workers)


def is_small(info: DatasetInfo, limit_bytes: float = 4 * 2**30) -> bool:
  return (info.num_train + info.num_eval) * math.prod(
      info.image_shape
  ) <= limit_bytes

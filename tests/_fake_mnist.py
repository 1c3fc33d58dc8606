"""Tiny archives in MNIST's format, and TFDS made to prepare them.

Two datasets that share archive names (``mnist`` and ``fashion_mnist``) can
then be prepared in seconds: :func:`write_archives` writes the four files
(60 train, 10 test images, every pixel near ``pixel``), :func:`accept`
makes TFDS and :data:`train.data.datasets.TFDS_SPECS` take their checksums
as the published ones and read 60 + 10 examples.

As a script (a second process): ``python tests/_fake_mnist.py NAME DATA_DIR
MANUAL_DIR PIXEL [HOLD MARKER]`` prepares ``NAME`` from the fakes in
``MANUAL_DIR`` (written with ``PIXEL``); with ``HOLD`` it creates ``MARKER``
once it holds the preparation lock and waits ``HOLD`` seconds (or until the
file ``HOLD`` exists) before preparing.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
import sys
import time

import numpy as np

TRAIN, TEST = 60, 10
BUILDERS = {'mnist': 'MNIST', 'fashion_mnist': 'FashionMNIST'}


def write_archives(folder, pixel: int, seed: int = 0) -> dict[str, tuple]:
  """The four archives; returns ``{file: (size, sha256)}``."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  out = {}
  for split, n in (('train', TRAIN), ('t10k', TEST)):
    images = np.clip(pixel + rng.integers(-3, 4, (n, 28, 28)), 0, 255)
    labels = rng.integers(0, 10, n)
    for kind, data in (
        (
            'images-idx3',
            struct.pack('>IIII', 2051, n, 28, 28)
            + images.astype(np.uint8).tobytes(),
        ),
        (
            'labels-idx1',
            struct.pack('>II', 2049, n) + labels.astype(np.uint8).tobytes(),
        ),
    ):
      name = f'{split}-{kind}-ubyte.gz'
      blob = gzip.compress(data, mtime=0)
      with open(os.path.join(folder, name), 'wb') as f:
        f.write(blob)
      out[name] = (len(blob), hashlib.sha256(blob).hexdigest())
  return out


class _Plain:
  """monkeypatch's setattr / setitem, not undone (a script's process)."""

  setattr = staticmethod(setattr)

  @staticmethod
  def setitem(mapping, key, value):
    mapping[key] = value


def accept(name: str, infos: dict[str, tuple], patch=_Plain) -> None:
  """TFDS and TFDS_SPECS take ``infos`` as ``name``'s published archives.

  ``patch``: pytest's ``monkeypatch`` (undone after the test).
  """
  from tensorflow_datasets.core.download import checksums
  from tensorflow_datasets.image_classification import mnist
  from train.data import datasets

  patch.setattr(mnist, '_TRAIN_EXAMPLES', TRAIN)
  patch.setattr(mnist, '_TEST_EXAMPLES', TEST)
  spec = datasets.TFDS_SPECS[name]
  archives = tuple(
      dataclasses.replace(a, size=infos[a.file][0], sha256=infos[a.file][1])
      for a in spec.archives
  )
  patch.setattr(
      getattr(mnist, BUILDERS[name]),
      'url_infos',
      {
          a.url: checksums.UrlInfo(
              size=a.size, checksum=a.sha256, filename=a.file
          )
          for a in archives
      },
  )
  patch.setitem(
      datasets.TFDS_SPECS, name, dataclasses.replace(spec, archives=archives)
  )


def main(argv) -> int:
  name, data_dir, manual, pixel = argv[:4]
  infos = write_archives(manual, int(pixel))
  accept(name, infos)
  from train.data import tfds_source

  if len(argv) > 4:
    hold, marker = argv[4], argv[5]
    import tensorflow_datasets as tfds

    prepare = tfds.core.DatasetBuilder.download_and_prepare

    def slow(self, *args, **kwargs):
      open(marker, 'w').close()
      if hold.replace('.', '').isdigit():
        time.sleep(float(hold))
      else:  # A file to wait for (at most a minute).
        deadline = time.time() + 60
        while not os.path.exists(hold) and time.time() < deadline:
          time.sleep(0.05)
      return prepare(self, *args, **kwargs)

    tfds.core.DatasetBuilder.download_and_prepare = slow
  tfds_source.prepare_tfds(name, data_dir=data_dir, manual_dir=manual)
  return 0


if __name__ == '__main__':
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )
  sys.exit(main(sys.argv[1:]))

"""How the TFDS datasets are obtained: their published archives.

:data:`TFDS_SPECS`: per TFDS dataset, its original archives (file name,
size, SHA-256 as TFDS registers them), the file names a manual download
folder holds (:attr:`TfdsSpec.manual_files`) and a URL to probe for
offline-ness. Preparation (:mod:`train.data.tfds_source`) checks every
archive against its checksum and records it in the dataset's provenance.
Static facts only, no I/O.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Archive:
  """An original archive of a dataset, as published.

  Attributes:
    url: where TFDS downloads it from.
    size: its size in bytes.
    sha256: its SHA-256 (hex), as TFDS registers it (``checksums.tsv``).
  """

  url: str
  size: int
  sha256: str

  @property
  def file(self) -> str:
    return self.url.rsplit('/', 1)[-1]


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
  """How a TFDS dataset is obtained.

  Attributes:
    tfds_name: the TFDS builder's name.
    archives: its original archives: a manual folder holds them under these
      file names, and preparation checks each against its checksum.
    probe_url: a URL TFDS downloads from, probed to detect offline-ness.
    host_crop: variable-size images: crop/resize on the host (ImageNet).
  """

  tfds_name: str
  archives: tuple[Archive, ...]
  probe_url: str | None
  host_crop: bool = False

  @property
  def manual_files(self) -> tuple[str, ...]:
    """File names TFDS looks for in a manual folder."""
    return tuple(a.file for a in self.archives)


MNIST_FILES = (
    'train-images-idx3-ubyte.gz',
    'train-labels-idx1-ubyte.gz',
    't10k-images-idx3-ubyte.gz',
    't10k-labels-idx1-ubyte.gz',
)


def _archives(base: str, *entries: tuple[str, int, str]) -> tuple[Archive, ...]:
  return tuple(Archive(base + name, size, sha) for name, size, sha in entries)


# The published checksums: TFDS 4.9's url_checksums/{mnist,fashion_mnist,
# cifar10,cifar100}.txt and datasets/imagenet2012/checksums.tsv (a test
# checks they agree with the installed TFDS's).
_MNIST_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist/'
_FASHION_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'
_KRIZ_URL = 'https://www.cs.toronto.edu/~kriz/'
_IMAGENET_URL = 'http://www.image-net.org/challenges/LSVRC/2012/nnoupb/'

TFDS_SPECS = {
    'mnist': TfdsSpec(
        'mnist',
        _archives(
            _MNIST_URL,
            (
                'train-images-idx3-ubyte.gz',
                9912422,
                '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
            ),
            (
                'train-labels-idx1-ubyte.gz',
                28881,
                '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
            ),
            (
                't10k-images-idx3-ubyte.gz',
                1648877,
                '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
            ),
            (
                't10k-labels-idx1-ubyte.gz',
                4542,
                'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
            ),
        ),
        _MNIST_URL + 'train-labels-idx1-ubyte.gz',
    ),
    'fashion_mnist': TfdsSpec(
        'fashion_mnist',
        _archives(
            _FASHION_URL,
            (
                'train-images-idx3-ubyte.gz',
                26421880,
                '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
            ),
            (
                'train-labels-idx1-ubyte.gz',
                29515,
                'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
            ),
            (
                't10k-images-idx3-ubyte.gz',
                4422102,
                '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
            ),
            (
                't10k-labels-idx1-ubyte.gz',
                5148,
                '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
            ),
        ),
        _FASHION_URL + 'train-labels-idx1-ubyte.gz',
    ),
    'cifar10': TfdsSpec(
        'cifar10',
        _archives(
            _KRIZ_URL,
            (
                'cifar-10-binary.tar.gz',
                170052171,
                'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd',
            ),
        ),
        _KRIZ_URL + 'cifar-10-binary.tar.gz',
    ),
    'cifar100': TfdsSpec(
        'cifar100',
        _archives(
            _KRIZ_URL,
            (
                'cifar-100-binary.tar.gz',
                168513733,
                '58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec',
            ),
        ),
        _KRIZ_URL + 'cifar-100-binary.tar.gz',
    ),
    # ImageNet is never downloaded by TFDS: the archives must be in the
    # manual folder.
    'imagenet2012': TfdsSpec(
        'imagenet2012',
        _archives(
            _IMAGENET_URL,
            (
                'ILSVRC2012_img_train.tar',
                147897477120,
                'b08200a27a8e34218a0e58fde36b0fe8f73bc377f4acea2d91602057c3ca45bb',
            ),
            (
                'ILSVRC2012_img_val.tar',
                6744924160,
                'c7e06a6c0baccf06d8dbeb6577d71efff84673a5dbdd50633ab44f8ea0456ae0',
            ),
        ),
        None,
        host_crop=True,
    ),
}
TFDS_DATASETS = tuple(TFDS_SPECS)

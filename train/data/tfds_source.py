"""TFDS datasets: prepared once (needs TensorFlow), read without it.

``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` and
``imagenet2012`` are prepared ONCE with ``file_format="array_record"``
(this needs TensorFlow, CPU build: ``pip install 'rda-optax[prepare]'``)
and then read with ``tfds.data_source`` (random access, images decoded on
the host with Pillow, see :mod:`train.data.decode`). Reading never imports
TensorFlow, so a prepared ``data_dir`` can be copied to a GPU machine that
has JAX but no TensorFlow.

Preparation downloads with TFDS when the machine has internet, or reads
the original archives from a *manual folder* (``manual_dir=`` /
``--manual_dir`` / env ``RDA_MANUAL_DIR``). Offline without a manual
folder, loading fails at once (network probe of a few seconds at most, not
TFDS's minutes of download retries) with a message that says how to supply
the data.

What preparation guarantees (:func:`prepare_tfds`):

* the archives used are the published ones: each is checked against its
  size and SHA-256 (:data:`train.data.datasets.TFDS_SPECS`, TFDS's own
  checksums), before preparing from a manual folder and after a download;
  a mismatch is :class:`ArchiveMismatch`, one line naming the file;
* nothing of another dataset is read: TFDS extracts a manual archive to
  ``downloads/extracted/GZIP.<file name>`` and reuses such an extraction,
  so ``fashion_mnist`` prepared after ``mnist`` in one data folder was MNIST
  (the same file names); each preparation extracts into a folder of its own
  and removes it after;
* a prepared dataset says where it came from: ``rda_provenance.json`` in its
  folder (dataset, version, archives with their SHA-256, source, date);
* one preparation at a time: a second process preparing the same dataset in
  the same data folder waits for the first (a lock there), saying so in one
  line, then reads what it prepared.

Small datasets (MNIST, CIFAR) are decoded once into memory when loaded (a
few seconds), so that batches are plain numpy indexing. ImageNet is decoded
per batch in a thread pool, with the train-time random-resized crop /
eval-time centre crop done on the host at decode time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

from .. import console
from .. import locks
from . import decoded_cache
from .datasets import DATASETS
from .datasets import MANUAL_DIR_ENV
from .datasets import PREPARE_HINT
from .datasets import TFDS_SPECS
from .datasets import Dataset
from .datasets import DatasetInfo
from .datasets import DatasetNotFoundError
from .datasets import Archive
from .datasets import resolve_manual_dir
from .decode import TFDSImageSource


def _tfds():
  """The ``tensorflow_datasets`` module.

  Imported here, not at the top: it is heavy and optional (the ``train``
  extra), and only TFDS datasets need it.

  Returns:
    The module, with its absl warning about dataset_info.json silenced.
  """
  try:
    # pylint: disable-next=import-outside-toplevel
    import tensorflow_datasets as tfds
  except ImportError as e:  # The train extra is missing.
    raise ImportError(
        'TFDS datasets need tensorflow-datasets: install the train extra, '
        'e.g. pip install -e ".[train]" in the checkout (image folders such '
        'as cifar10_jpg do not need it)'
    ) from e
  console.drop_absl_warnings('has no dataset_info.json')
  return tfds


def _require_tensorflow(name: str) -> None:
  """Preparing imports TensorFlow; fails with a message when it is missing."""
  missing = []
  for module in ('tensorflow', 'importlib_resources'):
    try:
      with console.filtered_stderr_fd():
        __import__(module)
    except ImportError:
      missing.append(module)
  if missing:
    raise ImportError(
        f"Preparing the TFDS dataset {name!r} needs {' and '.join(missing)} "
        f"(TensorFlow's CPU build is enough): {PREPARE_HINT}. Reading a "
        'prepared dataset does not need TensorFlow: you can also prepare it '
        'on another machine '
        f'(python -m train.data prepare {name} --data_dir DIR) and '
        'copy DIR here (then pass --data_dir DIR).'
    )


def probe_url(url: str, timeout: float = 4.0) -> str | None:
  """Whether ``url`` answers within ``timeout`` seconds.

  Runs in a daemon thread so that a hanging DNS lookup cannot block longer
  than ``timeout``. Honours HTTP(S)_PROXY like TFDS's own downloads (it
  uses ``requests`` as well).

  Args:
    url: the URL to send a HEAD request to.
    timeout: seconds to wait.

  Returns:
    None if it answers, else the reason it does not.
  """
  result: list[str | None] = []

  def probe():
    try:
      # requests comes with tensorflow-datasets; only the probe needs it.
      import requests  # pylint: disable=import-outside-toplevel

      response = requests.head(url, timeout=timeout, allow_redirects=True)
      ok = response.status_code < 400 or response.status_code == 405
      result.append(None if ok else f'HTTP {response.status_code} from {url}')
    except Exception as e:  # noqa: BLE001 - any failure: "not reachable".
      result.append(f'{type(e).__name__}: {e}')

  thread = threading.Thread(target=probe, daemon=True, name='rda-probe')
  thread.start()
  thread.join(timeout + 1.0)
  if not result:
    return f'no answer from {url} within {timeout:.0f} s'
  return result[0]


def _missing_files_text(name: str) -> str:
  spec = TFDS_SPECS.get(name)
  if spec is None or not spec.manual_files:
    return "the dataset's original archive files"
  return ', '.join(spec.manual_files)


def _missing_message(name: str, data_dir: str | None, reason: str) -> str:
  where = data_dir or (
      'the default TFDS data_dir (TFDS_DATA_DIR or ' '~/tensorflow_datasets)'
  )
  return (
      f'Dataset {name!r} is not prepared in {where}, and {reason}.\n'
      'Supply it in one of two ways:\n'
      '  1. a manual download folder: --manual_dir DIR (or manual_dir=DIR, '
      f'or the environment variable {MANUAL_DIR_ENV}=DIR), where DIR holds '
      f'{_missing_files_text(name)}; it is prepared once into the data_dir '
      f'(this needs TensorFlow, CPU build: {PREPARE_HINT});\n'
      f'  2. --data_dir DIR pointing at a folder where {name!r} is already '
      "prepared with file_format='array_record' (e.g. made on a machine "
      'with internet with '
      f'`python -m train.data prepare {name} --data_dir DIR`, '
      'then copied).'
  )


def _tfds_builder(name: str, data_dir):
  tfds = _tfds()
  return tfds.builder(
      TFDS_SPECS[name].tfds_name, data_dir=data_dir, file_format='array_record'
  )


PROVENANCE_FILE = 'rda_provenance.json'


class ArchiveMismatch(DatasetNotFoundError):
  """An archive that is not the published one (truncated, damaged, another
  dataset's file)."""


def sha256_of(path: str, chunk: int = 1 << 20) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    while block := f.read(chunk):
      digest.update(block)
  return digest.hexdigest()


def _check_archive(name: str, archive: Archive, path: str) -> dict:
  """The record of ``path`` if it is ``archive``; else ArchiveMismatch."""
  size = os.path.getsize(path)
  detail = None
  if size != archive.size:
    detail = f'{size:,} bytes, published {archive.size:,}'
  else:
    digest = sha256_of(path)
    if digest != archive.sha256:
      detail = f'SHA-256 {digest[:12]}..., published {archive.sha256[:12]}...'
  if detail is not None:
    raise ArchiveMismatch(
        f'{path} does not match its published checksum for {name} '
        f"({detail}): it is truncated, damaged or another dataset's file; "
        f'replace it with the original archive ({archive.url}).'
    )
  return {
      'file': archive.file,
      'path': os.path.abspath(path),
      'url': archive.url,
      'bytes': size,
      'sha256': archive.sha256,
  }


def verify_archives(name: str, folder: str) -> list[dict]:
  """Checks the archives of ``name`` in a manual ``folder`` (sizes, then
  SHA-256) against the published ones.

  Returns:
    A record per archive (file, path, url, bytes, sha256).

  Raises:
    ArchiveMismatch: one is not the published archive (one line naming it).
  """
  return [
      _check_archive(name, a, os.path.join(folder, a.file))
      for a in TFDS_SPECS[name].archives
  ]


def _downloaded_archives(name: str, root: str) -> list[dict]:
  """The records of the archives TFDS downloaded into ``root/downloads``
  (named after their URL and checksum), checked again here."""
  from tensorflow_datasets.core.download import resource  # pylint: disable=g-import-not-at-top

  records = []
  for archive in TFDS_SPECS[name].archives:
    path = os.path.join(
        root, 'downloads', resource.get_dl_fname(archive.url, archive.sha256)
    )
    if os.path.exists(path):
      records.append(_check_archive(name, archive, path))
    else:  # Another TFDS naming: TFDS checked it against the same checksum.
      records.append(
          {
              'file': archive.file,
              'path': None,
              'url': archive.url,
              'bytes': archive.size,
              'sha256': archive.sha256,
              'checked_by': 'tensorflow_datasets',
          }
      )
  return records


def _write_provenance(folder: str, record: dict) -> None:
  tmp = os.path.join(folder, f'.{PROVENANCE_FILE}.tmp')
  with open(tmp, 'w') as f:
    json.dump(record, f, indent=2)
  os.replace(tmp, os.path.join(folder, PROVENANCE_FILE))


def read_provenance(name: str, data_dir=None) -> dict | None:
  """Where the prepared ``name`` in ``data_dir`` came from (None: prepared
  without a record, e.g. by an older rda-optax)."""
  folder = os.fspath(_tfds_builder(name, data_dir).data_dir)
  try:
    with open(os.path.join(folder, PROVENANCE_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def prepare_tfds(
    name: str,
    *,
    data_dir=None,
    manual_dir=None,
    download: bool = True,
    probe_timeout: float = 4.0,
) -> str:
  """Prepares a TFDS dataset as array_record (no-op if already prepared).

  The archives used are checked against their published checksums, their
  extraction is the preparation's own, and the prepared folder gets
  ``rda_provenance.json``; a second process preparing the same dataset in
  the same data folder waits for the first (see the module docstring).

  Args:
    name: a key of ``TFDS_SPECS``.
    data_dir: the TFDS data folder (default TFDS's).
    manual_dir: the folder of the original archives (see
      :func:`train.data.datasets.resolve_manual_dir`).
    download: allow TFDS downloads.
    probe_timeout: seconds the network probe may take.

  Returns:
    The prepared dataset's folder.

  Raises:
    DatasetNotFoundError: at once when the data cannot be obtained (offline
      without manual folder, manual folder lacking files, ImageNet without
      manual folder, ``download=False``).
    ArchiveMismatch: an archive is not the published one.
    ImportError: when TensorFlow is missing.
  """
  if name not in TFDS_SPECS:
    raise ValueError(
        f'{name!r} is not a TFDS dataset known here: {sorted(TFDS_SPECS)}'
    )
  data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir else None
  builder = _tfds_builder(name, data_dir)
  if builder.is_prepared():
    return os.fspath(builder.data_dir)
  root = os.fspath(builder.data_dir_root)
  os.makedirs(root, exist_ok=True)
  with locks.waiting_lock(
      os.path.join(root, f'.{name}.prepare.lock'),
      f'preparing {name} in {root}',
  ):
    builder = _tfds_builder(name, data_dir)  # Prepared while we waited?
    if builder.is_prepared():
      return os.fspath(builder.data_dir)
    return _prepare_locked(
        name, builder, root, data_dir, manual_dir, download, probe_timeout
    )


def _prepare_locked(
    name, builder, root, data_dir, manual_dir, download, probe_timeout
) -> str:
  """prepare_tfds under the data folder's lock for ``name``."""
  spec = TFDS_SPECS[name]
  manual_dir = resolve_manual_dir(manual_dir, name)
  if manual_dir is not None:
    missing = [
        f
        for f in spec.manual_files
        if not os.path.exists(os.path.join(manual_dir, f))
    ]
    if missing:
      raise DatasetNotFoundError(
          _missing_message(
              name,
              data_dir,
              f"the manual folder {manual_dir} lacks {', '.join(missing)}",
          )
      )
  elif spec.probe_url is None:
    instructions = ' '.join(
        (builder.MANUAL_DOWNLOAD_INSTRUCTIONS or '').split()
    )
    raise DatasetNotFoundError(
        _missing_message(
            name,
            data_dir,
            'it cannot be downloaded automatically (TFDS: '
            + instructions
            + ')',
        )
    )
  elif not download:
    raise DatasetNotFoundError(
        _missing_message(name, data_dir, 'download=False')
    )
  else:
    reason = probe_url(spec.probe_url, probe_timeout)
    if reason is not None:
      raise DatasetNotFoundError(
          _missing_message(
              name,
              data_dir,
              f'it cannot be downloaded: this machine seems offline ({reason})',
          )
      )
  _require_tensorflow(name)
  archives = verify_archives(name, manual_dir) if manual_dir else None
  tfds = _tfds()
  # An extraction of this preparation's own: TFDS would reuse any
  # downloads/extracted/GZIP.<file name>, another dataset's included.
  extracted = os.path.join(root, 'downloads', 'extracted')
  os.makedirs(extracted, exist_ok=True)
  extract_dir = tempfile.mkdtemp(dir=extracted, prefix=f'{name}.')
  config = tfds.download.DownloadConfig(
      manual_dir=manual_dir, extract_dir=extract_dir
  )
  source = f'the manual folder {manual_dir}' if manual_dir else 'the internet'
  print(
      f'Preparing {name} once, from {source}, into {builder.data_dir} ...',
      file=sys.stderr,
      flush=True,
  )
  if manual_dir or not console.is_terminal():
    # Local files take seconds; in a log file the bars are only noise.
    tfds.disable_progress_bar()
  start = time.perf_counter()
  try:
    # TFDS prints "Downloading and preparing dataset Unknown size ..." and
    # a closing line to stdout: the lines above and below say it plainly.
    with contextlib.redirect_stdout(io.StringIO()):
      builder.download_and_prepare(
          download_config=config, file_format='array_record'
      )
  except OSError as e:  # requests.ConnectionError is an OSError.
    raise DatasetNotFoundError(
        _missing_message(name, data_dir, f'downloading failed ({e})')
    ) from e
  finally:
    shutil.rmtree(extract_dir, ignore_errors=True)
  folder = os.fspath(builder.data_dir)
  try:
    if archives is None:
      archives = _downloaded_archives(name, root)
  except ArchiveMismatch:
    shutil.rmtree(folder, ignore_errors=True)  # Made from a bad archive.
    raise
  _write_provenance(
      folder,
      {
          'dataset': name,
          'tfds_name': spec.tfds_name,
          'version': str(builder.version),
          'source': 'manual folder' if manual_dir else 'download',
          'manual_dir': os.path.abspath(manual_dir) if manual_dir else None,
          'archives': archives,
          'prepared': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
          'host': socket.gethostname(),
          'tensorflow_datasets': getattr(tfds, '__version__', None),
      },
  )
  print(
      f'Prepared {name} in {time.perf_counter() - start:.0f} s.',
      file=sys.stderr,
      flush=True,
  )
  return folder


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
  tfds = _tfds()
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
    builder = _tfds_builder(name, data_dir)
    if builder.is_prepared():
      raise DatasetNotFoundError(
          f'{name!r} is prepared in {builder.data_dir} but cannot be read '
          f'with tfds.data_source ({e}). It must be prepared with '
          "file_format='array_record': use another --data_dir (or delete "
          'that folder) and prepare again.'
      ) from e
    raise DatasetNotFoundError(
        _missing_message(name, data_dir, 'it was not prepared')
    ) from e
  return TFDSImageSource(data_source, shape, crop=crop, num_workers=num_workers)


def _is_small(info: DatasetInfo, limit_bytes: float = 4 * 2**30) -> bool:
  return (info.num_train + info.num_eval) * math.prod(
      info.image_shape
  ) <= limit_bytes


def load_tfds(
    name: str,
    *,
    data_dir=None,
    manual_dir=None,
    download: bool = True,
    image_size: int | None = None,
    in_memory: bool | None = None,
    num_workers: int | None = None,
    train_split: str | None = None,
    eval_split: str | None = None,
) -> Dataset:
  """Prepares (if needed) and opens a TFDS dataset.

  The arguments are those of :func:`train.data.sources.load_dataset`.

  Returns:
    The dataset, its splits decoded into memory when ``in_memory``.
  """
  info = DATASETS[name]
  train_split = train_split or info.train_split
  eval_split = eval_split or info.eval_split
  try:  # Already prepared (also what tfds.testing.mock_data provides).
    train = open_tfds_split(
        name,
        train_split,
        data_dir=data_dir,
        image_size=image_size,
        train=True,
        num_workers=num_workers,
    )
  except (DatasetNotFoundError, KeyError):  # TFDS 4.9.10: "splits is empty".
    if _tfds_builder(name, data_dir).is_prepared():
      raise  # Prepared in the wrong format: the message says what to do.
    prepare_tfds(
        name, data_dir=data_dir, manual_dir=manual_dir, download=download
    )
    train = open_tfds_split(
        name,
        train_split,
        data_dir=data_dir,
        image_size=image_size,
        train=True,
        num_workers=num_workers,
    )
  evaluation = open_tfds_split(
      name,
      eval_split,
      data_dir=data_dir,
      image_size=image_size,
      train=False,
      num_workers=num_workers,
  )
  info = dataclasses.replace(
      info,
      image_shape=train.image_shape,
      num_train=len(train),
      num_eval=len(evaluation),
      train_split=train_split,
      eval_split=eval_split,
  )
  if in_memory is None:
    in_memory = not TFDS_SPECS[name].host_crop and _is_small(info)
  if in_memory:
    if TFDS_SPECS[name].host_crop:
      raise ValueError(
          'in_memory=True is not supported for datasets with ' 'host-side crops'
      )
    folder = _tfds_builder(name, data_dir).data_dir
    train, evaluation = (
        decoded_cache.load_decoded(
            folder,
            TFDS_SPECS[name].tfds_name,
            split,
            len(source),
            source.image_shape,
            source.to_memory,
        )
        for source, split in ((train, train_split), (evaluation, eval_split))
    )
  return Dataset(info, train, evaluation)

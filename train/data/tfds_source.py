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
import io
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

try:  # Comes with tensorflow-datasets; only probe_url needs it.
  import requests
except ImportError:  # probe_url then says so, as "not reachable".
  requests = None

from .. import console
from .. import locks
from . import decoded_cache
from .datasets import DATASETS
from .datasets import TFDS_SPECS
from .datasets import Dataset
from .datasets import DatasetNotFoundError
from .datasets import resolve_manual_dir
from .tfds_access import import_tfds
from .tfds_access import missing_message
from .tfds_access import require_tensorflow
from .tfds_access import tfds_builder
from .tfds_archives import ArchiveMismatch
from .tfds_archives import downloaded_archives
from .tfds_archives import verify_archives
from .tfds_archives import write_provenance
from .tfds_reader import is_small
from .tfds_reader import open_tfds_split

# The parts of this module's job in modules of their own; their names are
# this module's too (train.data.tfds_source.read_provenance, ...), some under
# their names of before.
# pylint: disable=unused-import,g-bad-import-order
from .tfds_access import import_tfds as _tfds
from .tfds_archives import PROVENANCE_FILE
from .tfds_archives import downloaded_archives as _downloaded_archives
from .tfds_archives import read_provenance
from .tfds_archives import sha256_of

# pylint: enable=unused-import,g-bad-import-order


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
      if requests is None:
        raise ModuleNotFoundError("No module named 'requests'")
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
  builder = tfds_builder(name, data_dir)
  if builder.is_prepared():
    return os.fspath(builder.data_dir)
  root = os.fspath(builder.data_dir_root)
  os.makedirs(root, exist_ok=True)
  with locks.waiting_lock(
      os.path.join(root, f'.{name}.prepare.lock'),
      f'preparing {name} in {root}',
  ):
    builder = tfds_builder(name, data_dir)  # Prepared while we waited?
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
          missing_message(
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
        missing_message(
            name,
            data_dir,
            'it cannot be downloaded automatically (TFDS: '
            + instructions
            + ')',
        )
    )
  elif not download:
    raise DatasetNotFoundError(
        missing_message(name, data_dir, 'download=False')
    )
  else:
    reason = probe_url(spec.probe_url, probe_timeout)
    if reason is not None:
      raise DatasetNotFoundError(
          missing_message(
              name,
              data_dir,
              f'it cannot be downloaded: this machine seems offline ({reason})',
          )
      )
  require_tensorflow(name)
  archives = verify_archives(name, manual_dir) if manual_dir else None
  tfds = import_tfds()
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
        missing_message(name, data_dir, f'downloading failed ({e})')
    ) from e
  finally:
    shutil.rmtree(extract_dir, ignore_errors=True)
  folder = os.fspath(builder.data_dir)
  try:
    if archives is None:
      archives = downloaded_archives(name, root)
  except ArchiveMismatch:
    shutil.rmtree(folder, ignore_errors=True)  # Made from a bad archive.
    raise
  write_provenance(
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
    if tfds_builder(name, data_dir).is_prepared():
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
    in_memory = not TFDS_SPECS[name].host_crop and is_small(info)
  if in_memory:
    if TFDS_SPECS[name].host_crop:
      raise ValueError(
          'in_memory=True is not supported for datasets with ' 'host-side crops'
      )
    folder = tfds_builder(name, data_dir).data_dir
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

"""The archives of a TFDS dataset checked, and its provenance recorded.

Preparation (:func:`train.data.tfds_source.prepare_tfds`) checks every
archive it uses against its published size and SHA-256
(:func:`verify_archives` for a manual folder, :func:`downloaded_archives`
after a download; a mismatch is :class:`ArchiveMismatch`), and writes what
it used into ``rda_provenance.json`` in the prepared folder
(:func:`write_provenance`, :func:`read_provenance`).
"""

from __future__ import annotations

import hashlib
import json
import os

from .datasets import TFDS_SPECS
from .datasets import Archive
from .datasets import DatasetNotFoundError
from .tfds_access import import_tfds
from .tfds_access import tfds_builder

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


def downloaded_archives(name: str, root: str) -> list[dict]:
  """The records of the archives TFDS downloaded into ``root/downloads``
  (named after their URL and checksum), checked again here."""
  resource = import_tfds().core.download.resource

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


def write_provenance(folder: str, record: dict) -> None:
  tmp = os.path.join(folder, f'.{PROVENANCE_FILE}.tmp')
  with open(tmp, 'w') as f:
    json.dump(record, f, indent=2)
  os.replace(tmp, os.path.join(folder, PROVENANCE_FILE))


def read_provenance(name: str, data_dir=None) -> dict | None:
  """Where the prepared ``name`` in ``data_dir`` came from (None: prepared
  without a record, e.g. by an older rda-optax)."""
  folder = os.fspath(tfds_builder(name, data_dir).data_dir)
  try:
    with open(os.path.join(folder, PROVENANCE_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None

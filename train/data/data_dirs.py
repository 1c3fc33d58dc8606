"""Where data lives: the TFDS data folder, manual and offline copies.

:func:`default_data_dir` (``--data_dir``, ``$TFDS_DATA_DIR``,
``~/tensorflow_datasets``), :func:`shared_data_dir` (the folder of offline
dataset copies, ``$RDA_SHARED_DATA``) and :func:`resolve_manual_dir` (the
manual download folder in effect: the flag, ``$RDA_MANUAL_DIR``, or a
complete offline copy). No I/O beyond looking for folders.
"""

from __future__ import annotations

import logging
import os

from .tfds_specs import TFDS_SPECS

log = logging.getLogger(__name__)

MANUAL_DIR_ENV = 'RDA_MANUAL_DIR'
# A folder of offline copies (``<dir>/mnist/`` = the four MNIST archives,
# ``<dir>/cifar10-jpg.tar.gz``), used when no manual folder is given; default:
# ``../shared/data`` beside the repository.
SHARED_DATA_ENV = 'RDA_SHARED_DATA'
PREPARE_HINT = "pip install 'rda-optax[prepare]'"


def default_data_dir(data_dir) -> str:
  """``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
  if data_dir:
    return os.path.expanduser(os.fspath(data_dir))
  return os.path.expanduser(
      os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets'
  )


def shared_data_dir() -> str | None:
  """The folder of offline dataset copies, if it exists.

  Returns:
    ``$RDA_SHARED_DATA``, else ``../shared/data`` beside the repository;
    None when that folder does not exist.
  """
  repo = os.path.dirname(os.path.abspath(__file__))  # train/data
  repo = os.path.dirname(os.path.dirname(repo))  # the checkout
  path = os.environ.get(SHARED_DATA_ENV) or os.path.join(
      repo, os.pardir, 'shared', 'data'
  )
  path = os.path.normpath(os.path.expanduser(path))
  return path if os.path.isdir(path) else None


def resolve_manual_dir(manual_dir, name: str | None = None) -> str | None:
  """The manual download folder in effect.

  Args:
    manual_dir: the folder given (flag or argument), or None.
    name: the dataset, to look for its offline copy.

  Returns:
    ``manual_dir``, else ``$RDA_MANUAL_DIR``, else a complete offline copy
    of ``name`` in :func:`shared_data_dir`, else None.
  """
  manual_dir = manual_dir or os.environ.get(MANUAL_DIR_ENV) or None
  if manual_dir is None and name in TFDS_SPECS and shared_data_dir():
    candidate = os.path.join(shared_data_dir(), name)
    files = TFDS_SPECS[name].manual_files
    if files and all(os.path.exists(os.path.join(candidate, f)) for f in files):
      log.info('Using the offline copy of %s in %s', name, candidate)
      manual_dir = candidate
  return os.path.expanduser(os.fspath(manual_dir)) if manual_dir else None

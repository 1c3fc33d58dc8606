"""Reaching TFDS: its module, a dataset's builder, what is missing.

``tensorflow_datasets`` is imported in one place, :func:`import_tfds` (heavy
and optional: the ``train`` extra; only TFDS datasets need it);
:func:`require_tensorflow` checks that preparing can import TensorFlow;
:func:`tfds_builder` is a dataset's array_record builder; and
:func:`missing_message` says how to supply a dataset that is neither
prepared nor obtainable. Used by :mod:`train.data.tfds_source`.
"""

from __future__ import annotations

from .. import console
from .datasets import MANUAL_DIR_ENV
from .datasets import PREPARE_HINT
from .datasets import TFDS_SPECS


def import_tfds():
  """The ``tensorflow_datasets`` module.

  Imported here, not at the top: it is heavy and optional (the ``train``
  extra), and only TFDS datasets need it. The one import of
  ``tensorflow_datasets`` in the job (its submodules are reached as
  attributes of the module returned).

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


def require_tensorflow(name: str) -> None:
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


def _missing_files_text(name: str) -> str:
  spec = TFDS_SPECS.get(name)
  if spec is None or not spec.manual_files:
    return "the dataset's original archive files"
  return ', '.join(spec.manual_files)


def missing_message(name: str, data_dir: str | None, reason: str) -> str:
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


def tfds_builder(name: str, data_dir):
  tfds = import_tfds()
  return tfds.builder(
      TFDS_SPECS[name].tfds_name, data_dir=data_dir, file_format='array_record'
  )

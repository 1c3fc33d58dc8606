"""``python -m train`` (the ``rda-train`` command when installed): see
:mod:`train.cli`."""

import importlib.util
import sys

from .cli import main  # Light: the options are checked before JAX loads.


def _missing() -> list[str]:
  """The [train] extra's packages every run needs that cannot be found (none
  imported). TFDS is not among them: image folders (``cifar10_jpg``) and
  synthetic data train without it, and a TFDS dataset without it fails with
  its own message (:func:`train.data.tfds_source._tfds`)."""
  out = []
  for name in ('flax', 'orbax', 'tensorboardX'):
    try:
      found = importlib.util.find_spec(name) is not None
    except ValueError:  # A module set to None in sys.modules: blocked.
      found = False
    if not found:
      out.append(name)
  return out


def run() -> None:
  """Runs the training job with ``sys.argv``; exits with its status."""
  # The training job needs the [train] extra; say so instead of a bare
  # ModuleNotFoundError deep inside an import.
  if missing := _missing():
    sys.exit(
        f'python -m train needs {", ".join(missing)}: install the train '
        'extra, e.g. pip install -e ".[train]" in the checkout (or '
        '".[all]" for the tests too).'
    )
  sys.exit(main())


if __name__ == '__main__':
  run()

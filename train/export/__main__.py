"""``python -m train.export RUN_DIR`` (the ``rda-export`` command when
installed): see :mod:`train.export`."""

import sys

from .writer import main


def run() -> None:
  """Exports the run named on the command line; exits with the status."""
  sys.exit(main())


if __name__ == '__main__':
  run()

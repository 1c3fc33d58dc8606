"""``python -m train.data {prepare,info} NAME``: see
:func:`train.data.cli.main`."""

import sys

from .cli import main

if __name__ == '__main__':
  sys.exit(main())

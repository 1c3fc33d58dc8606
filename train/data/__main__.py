"""``python -m train.data {prepare,info} NAME``: see
:func:`train.data.input_pipeline.main`."""

import sys

from .input_pipeline import main

if __name__ == '__main__':
  sys.exit(main())

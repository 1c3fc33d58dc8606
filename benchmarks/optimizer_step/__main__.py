"""``python -m benchmarks.optimizer_step [--adaptive | --breakdown |
--grid | --profile]``: see
:mod:`benchmarks.optimizer_step`."""

from __future__ import annotations

import sys

from .adaptive import adaptive_main
from .breakdown import breakdown_main
from .grid import grid_main
from .profile import profile_main
from .table import main

if __name__ == '__main__':
  if '--adaptive' in sys.argv[1:]:
    adaptive_main([a for a in sys.argv[1:] if a != '--adaptive'])
  elif '--breakdown' in sys.argv[1:]:
    breakdown_main([a for a in sys.argv[1:] if a != '--breakdown'])
  elif '--grid' in sys.argv[1:]:
    grid_main([a for a in sys.argv[1:] if a != '--grid'])
  elif '--profile' in sys.argv[1:]:
    profile_main([a for a in sys.argv[1:] if a != '--profile'])
  else:
    main()

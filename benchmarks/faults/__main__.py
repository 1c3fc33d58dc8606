"""``python -m benchmarks.faults``: see :mod:`benchmarks.faults`."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

from . import __doc__ as DOC
from .bench import Bench
from .data import datasets_cases
from .files import export_case
from .files import sparse_file_cases
from .files import write_failure_cases
from .report import print_report
from .runs import checkpoint_cases
from .runs import run_directory_cases


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.faults', description=DOC.split('\n')[0]
  )
  parser.add_argument(
      '--keep', action='store_true', help='keep the scratch folder'
  )
  args = parser.parse_args(argv)
  root = tempfile.mkdtemp(prefix='rda-faults-')
  b = Bench(root)
  b.summary_corruption = (0, 0, 0, 0)
  b.tracebacks = 0
  start = time.perf_counter()
  try:
    sparse_file_cases(b)
    datasets_cases(b)
    workdir = run_directory_cases(b)
    checkpoint_cases(b, workdir)
    export_case(b)
    write_failure_cases(b)
  finally:
    if not args.keep:
      shutil.rmtree(root, ignore_errors=True)
  return 0 if print_report(b, start) else 1


if __name__ == '__main__':
  sys.exit(main())

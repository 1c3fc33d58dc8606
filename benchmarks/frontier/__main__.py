"""``python -m benchmarks.frontier SETTING``: see :mod:`benchmarks.frontier`."""

from __future__ import annotations

import argparse
import os
import sys

from .. import sweeps
from . import __doc__ as DOC
from .report import aggregate
from .report import markdown
from .report import plot
from .runner import ROOT
from .runner import collect
from .runner import command
from .runner import execute_all
from .runner import finished
from .settings import SETTINGS


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.frontier',
      description=DOC.splitlines()[0],
      epilog=DOC,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument('setting', choices=sorted(SETTINGS))
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
  parser.add_argument(
      '--methods',
      nargs='+',
      default=None,
      help='only these curves (han_* also run their dense ' 'parents)',
  )
  parser.add_argument(
      '--strengths',
      type=float,
      nargs='+',
      default=None,
      help='only these strengths (λ of a regularization '
      'method, target sparsity of a pruning one)',
  )
  parser.add_argument(
      '--variants',
      nargs='+',
      default=None,
      help='only these hyper-parameter variants (e.g. ' 'cosine, lr0.03)',
  )
  parser.add_argument(
      '--out',
      default=None,
      help='output folder (default benchmarks/results/' 'frontier_<setting>)',
  )
  parser.add_argument(
      '--jobs',
      type=int,
      default=1,
      help='runs at a time (on one accelerator: each gets 0.9/jobs of its '
      'memory unless XLA_PYTHON_CLIENT_MEM_FRACTION is set); a run starts '
      'once the run it is initialised from has finished',
  )
  parser.add_argument(
      '--report',
      action='store_true',
      help='only rebuild tables and plot from finished runs',
  )
  parser.add_argument(
      '--list',
      action='store_true',
      help='print the commands of the sweep and exit',
  )
  sweeps.add_skip_published(parser)
  args = parser.parse_args(argv)
  setting = SETTINGS[args.setting]
  out = args.out or os.path.join(
      ROOT, 'benchmarks', 'results', f'frontier_{args.setting}'
  )
  os.makedirs(out, exist_ok=True)
  runs = setting.runs(args.seeds, args.methods, args.strengths, args.variants)
  if args.list:
    for r in runs:
      print(' '.join(command(out, r)))
    return 0
  if args.skip_published and not args.report:
    runs = sweeps.unpublished(
        out, runs, lambda r: command(out, r), lambda r: finished(out, r)
    )
  # The tables cover every finished run of the setting (all methods, seeds
  # 0-2 and any given), whatever this invocation ran.
  every = setting.runs(sorted(set(args.seeds) | {0, 1, 2}))

  def publish():
    records = collect(out, every)
    agg = aggregate(records)
    md = markdown(args.setting, setting, records, agg)
    sweeps.publish(out, records, 'frontier.md', md)
    return agg, md

  failed = []
  if not args.report:  # Published after each run: a stopped sweep keeps it.
    failed = execute_all(out, runs, args.jobs, on_done=publish)
  agg, md = publish()
  plot(os.path.join(out, 'frontier.png'), setting, agg)
  print(md)
  return sweeps.exit_status(failed)


if __name__ == '__main__':
  sys.exit(main())

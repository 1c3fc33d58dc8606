"""``python -m benchmarks.transformers_nm SETTING``: see
:mod:`benchmarks.transformers_nm`."""

from __future__ import annotations

import argparse
import os
import sys

from .. import sweeps
from . import __doc__ as DOC
from .report import markdown
from .runner import ROOT
from .runner import collect
from .runner import command
from .runner import execute_all
from .runner import finished
from .settings import SETTINGS


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.transformers_nm',
      description=DOC.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument('setting', choices=sorted(SETTINGS))
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
  parser.add_argument('--methods', nargs='+', default=None)
  parser.add_argument('--out', default=None)
  parser.add_argument('--jobs', type=int, default=1)
  parser.add_argument('--list', action='store_true', help='print commands')
  parser.add_argument('--report', action='store_true', help='tables only')
  parser.add_argument(
      '--smoke',
      action='store_true',
      help='one run of each method for a few steps, in <out>/smoke',
  )
  sweeps.add_skip_published(parser)
  args = parser.parse_args(argv)
  setting = SETTINGS[args.setting]
  unknown = set(args.methods or ()) - set(setting.methods)
  if unknown:
    parser.error(
        f'unknown methods {sorted(unknown)}; {args.setting} has '
        f'{", ".join(setting.methods)}'
    )
  out = args.out or os.path.join(
      ROOT, 'benchmarks', 'results', 'transformers_nm', args.setting
  )
  smoke: tuple[str, ...] = ()
  if args.smoke:
    out, smoke = os.path.join(out, 'smoke'), setting.smoke()
    runs = setting.smoke_runs(args.methods)
  else:
    runs = setting.runs(args.seeds, args.methods)  # Parents included.
  if args.list:
    for r in runs:
      print(' '.join(command(out, r, smoke)))
    return 0
  os.makedirs(out, exist_ok=True)
  if args.skip_published and not args.report:
    runs = sweeps.unpublished(
        out,
        runs,
        lambda r: command(out, r, smoke),
        lambda r: finished(out, r, smoke),
    )
  # The tables cover every finished run of the setting (all methods, seeds
  # 0-2 and any given), whatever this invocation ran: a sweep run method by
  # method never drops the others' records.
  if args.smoke:
    every = setting.smoke_runs(None)
  else:
    every = setting.runs(sorted(set(args.seeds) | {0, 1, 2}), None)

  def publish() -> str:
    records = collect(args.setting, out, every, smoke)
    text = markdown(args.setting, setting, records)
    sweeps.publish(out, records, 'results.md', text)
    return text

  failed = []
  if not args.report:  # Published after each run: a stopped sweep keeps it.
    failed = execute_all(out, runs, args.jobs, smoke, on_done=publish)
  text = publish()
  print(text)
  return sweeps.exit_status(failed)


if __name__ == '__main__':
  sys.exit(main())

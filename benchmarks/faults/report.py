"""The faults' report: one row per case, then the totals against the
targets of issue 25 (silent wrong answers by kind, concurrency cases,
checkpoint corruption, tracebacks on write failures)."""

from __future__ import annotations

import os
import platform
import time

from .bench import Bench


def print_report(b: Bench, start: float) -> bool:
  """Prints the Markdown report of ``b``'s rows (``start``: the
  ``time.perf_counter()`` of the start); whether every kind passed."""
  kinds = {}
  for group, _, ok, _ in b.rows:
    kinds[group] = kinds.get(group, True) and ok
  concurrency = [
      ok
      for g, c, ok, _ in b.rows
      if g == '7 concurrent preparation' or g == '2 run directory'
  ]
  total, detected, unharmed, silent = b.summary_corruption
  print()
  print(
      f'## Faults ({time.strftime("%Y-%m-%d")}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {time.perf_counter() - start:.0f} s)'
  )
  print()
  print('| kind | case | result |')
  print('|---|---|---|')
  for group, case, ok, what in b.rows:
    print(f'| {group} | {case} | {"" if ok else "**FAIL** "}{what} |')
  print()
  print(
      f'silent wrong answers: {sum(not ok for ok in kinds.values())} of {len(kinds)} kinds (target 0)'
  )
  print(
      f'concurrency cases clear: {sum(concurrency)} of {len(concurrency)} (target all)'
  )
  print(
      f'checkpoint corruption: {total} cases, {detected} detected and '
      f'recovered, {unharmed} harmless (read back bit-identical), {silent} '
      'silently different (target 0)'
  )
  print(f'tracebacks on write failures: {b.tracebacks} (target 0)')
  return all(kinds.values())

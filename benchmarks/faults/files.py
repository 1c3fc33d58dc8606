"""Faults of kinds 4, 5 and 6: an unfinished run exported, run directories
on full file systems (tracebacks on failed writes), and damaged or edited
sparse model files read back."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time

import numpy as np

import rda_optax
from rda_optax import sparse_format
from train import metrics as metrics_lib

from .bench import LAM_SPARSE
from .bench import Bench
from .bench import leaves
from .bench import err_lines
from .bench import has_traceback


def export_case(b: Bench) -> None:
  workdir = b.path('unfinished')
  trained = b.train(workdir, '--stop_at_step', '12', epochs=4, lam=LAM_SPARSE)
  exported = b.run(['-m', 'train.export', workdir])
  with open(os.path.join(workdir, 'export', 'model.json')) as f:
    meta = json.load(f)
  logged = metrics_lib.read_records(workdir, 'train')[-1]
  ok = (
      trained.returncode == exported.returncode == 0
      and logged['step'] == 12
      and abs(meta['weight_sparsity'] - logged['sparsity']) < 1e-6
      and meta['weight_sparsity'] > 0
  )
  b.record(
      '4 export',
      'python -m train --stop_at_step 12, then python -m train.export',
      ok,
      f'exported weight sparsity {meta["weight_sparsity"]:.2%} '
      f'({meta["parameters"]["nonzero"]:,} nonzero); the run logged '
      f'{logged["sparsity"]:.2%} at step {logged["step"]}',
  )


def _can_unshare(b: Bench) -> bool:
  probe = b.path('probe')
  os.makedirs(probe, exist_ok=True)
  try:
    proc = subprocess.run(
        [
            'unshare',
            '-rm',
            'sh',
            '-c',
            f'mount -t tmpfs -o size=64k tmpfs {probe}',
        ],
        capture_output=True,
        timeout=20,
    )
    return proc.returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False


def write_failure_cases(b: Bench) -> None:
  if not _can_unshare(b):
    b.record(
        '5 write failure', 'full file system', True, 'SKIPPED: no unshare -rm'
    )
    return
  b.tracebacks = 0
  # The first checkpoint (about 4 MB) fails; one fits; two fit.
  for size in ('1m', '6m', '10m'):
    mount = b.path(f'full_{size}')
    os.makedirs(mount, exist_ok=True)
    workdir = os.path.join(mount, 'run')

    def wrap(cmd, mount=mount):
      return [
          'unshare',
          '-rm',
          'sh',
          '-c',
          f'mount -t tmpfs -o size={size} tmpfs {mount} && exec "$@"',
          'sh',
          *cmd,
      ]

    start = time.perf_counter()
    proc = b.train(workdir, epochs=4, wrap=wrap)
    lines = err_lines(proc)
    b.tracebacks += has_traceback(proc)
    b.record(
        '5 write failure',
        f'run directory on a full {size} file system',
        proc.returncode == 4 and len(lines) == 1 and not has_traceback(proc),
        f'rc {proc.returncode} after {time.perf_counter() - start:.0f} s, '
        f'{len(lines)} line: "{lines[-1][:120]}..."'
        if lines
        else f'rc {proc.returncode}',
    )


def sparse_file_cases(b: Bench) -> None:
  rng = np.random.default_rng(0)
  tree = {
      'conv': {'kernel': rng.normal(size=(3, 3, 4, 8)).astype(np.float32)},
      'dense': {
          'kernel': np.where(rng.random((300, 20)) < 0.01, 1.5, 0).astype(
              np.float32
          )
      },
      'bias': rng.normal(size=(20,)).astype(np.float32),
  }
  tree['conv']['kernel'][rng.random((3, 3, 4, 8)) < 0.7] = 0
  path = b.path('model.npz')
  rda_optax.save_sparse(path, tree)
  data = open(path, 'rb').read()
  with np.load(path) as npz:
    members = {k: npz[k] for k in npz.files}
  header = json.loads(members['__header__'].tobytes())
  cases = []
  for _ in range(200):
    blob = bytearray(data)
    blob[rng.integers(len(blob))] ^= 1 << int(rng.integers(8))
    cases.append(bytes(blob))
  for n in rng.integers(0, len(data), 30):
    cases.append(data[:n])
  edits = [
      lambda h: h['leaves'][0].pop('crc32'),
      lambda h: h.update(leaves=5),
      lambda h: h['leaves'][1].update(shape=[1000000, 1000000]),
      lambda h: h['leaves'][1].update(shape=h['leaves'][1]['shape'][::-1]),
      lambda h: h['leaves'][2].update(dtype='int32'),
      lambda h: h['leaves'][2].update(nnz=h['leaves'][2]['nnz'] - 1),
  ]
  for edit in edits:
    for keep_crc in (True, False):
      h = json.loads(json.dumps(header))
      edit(h)
      if not keep_crc:
        h['header_crc32'] = sparse_format.header_crc(h)
      m = dict(
          members, __header__=np.frombuffer(json.dumps(h).encode(), np.uint8)
      )
      buf = io.BytesIO()
      np.savez(buf, **m)
      cases.append(buf.getvalue())
  refused = same = other = altered = 0
  for blob in cases:
    with open(path, 'wb') as f:
      f.write(blob)
    try:
      back = rda_optax.load_sparse(path, like=tree)
    except rda_optax.SparseFormatError:
      refused += 1
      continue
    except Exception:  # pylint: disable=broad-except
      other += 1
      continue
    if all(
        np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(leaves(back), leaves(tree))
    ):
      same += 1
    else:
      altered += 1
  b.record(
      '6 sparse file',
      f'{len(cases)} damaged or edited copies of a model file',
      other == 0 and altered == 0,
      f'{refused} SparseFormatError, {same} read back bit-identical, '
      f'{other} other exceptions, {altered} altered data returned',
  )

"""Arrays a test helper computes once per test session, shared by the xdist
workers (a reference optimum that takes seconds to solve, say)."""

import fcntl
import os

import numpy as np


def cached_arrays(name: str, compute) -> dict[str, np.ndarray]:
  """``compute()`` (a dict of arrays), computed once per session: the first
  process to ask computes and saves it while the others wait on a lock;
  outside a session of this suite (no ``RDA_TEST_SESSION_CACHE``) it is
  simply computed."""
  folder = os.environ.get('RDA_TEST_SESSION_CACHE')
  if not folder:
    return compute()
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f'{name}.npz')
  with open(path + '.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(path):
      arrays = compute()
      np.savez(path + '.tmp.npz', **arrays)
      os.replace(path + '.tmp.npz', path)
      return arrays
  with np.load(path) as f:
    return {k: f[k] for k in f.files}

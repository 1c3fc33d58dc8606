"""What ASR's keep mask costs on XLA, without the optimizers around it.

``asr(rda(l1))`` compiles, per kernel, to the same two loop fusions as
``rda(l1)`` (the gradient sum, then the weights), except that the first also
reads the weights, for the keep mask ``w != 0``. This script times that
difference alone, in plain ``jax.numpy`` on one ResNet-18-sized kernel,
buffers donated as in a train step:

- ``rda``: ``G ← G + g``; ``w ← prox(w0 − G/β)``.
- ``asr``: ``k = (w ≠ 0)``; ``G ← k·G + k·g``; ``w ← w + k·(prox(k·w0 −
  G/β) − w)``: what ``asr`` traces.
- ``asr, mask in the second fusion only``: ``G ← k·(G + g)`` written with the
  weights' new value ``k·prox(...)`` (no update ``new − w``).

The functions alternate within each round; the figure is the median time.

    python -m benchmarks.mask_read_cost
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

_LAM = 1e-3


def _prox(z, c):
  t = _LAM * c.astype(jnp.float32)
  return z - jnp.clip(z, -t, t)


def rda(w, c, w0, g_sum, g):
  beta = jnp.sqrt(c.astype(jnp.float32) + 1)
  g_sum = g_sum + g
  new = _prox(w0 - g_sum / beta, c)
  return w + (new - w), c + 1, w0, g_sum


def asr(w, c, w0, g_sum, g):
  beta = jnp.sqrt(c.astype(jnp.float32) + 1)
  keep = w != 0
  g_sum = jnp.where(keep, g_sum, 0) + jnp.where(keep, g, 0)
  new = _prox(jnp.where(keep, w0, 0) - g_sum / beta, c)
  return w + jnp.where(keep, new - w, 0), c + 1, w0, g_sum


def asr_new_value(w, c, w0, g_sum, g):
  beta = jnp.sqrt(c.astype(jnp.float32) + 1)
  keep = w != 0
  g_sum = jnp.where(keep, g_sum + g, 0)
  new = _prox(jnp.where(keep, w0, 0) - g_sum / beta, c)
  return jnp.where(keep, new, 0), c + 1, w0, g_sum


FUNCTIONS = {
    'rda': rda,
    'asr': asr,
    'asr, mask in the second fusion only': asr_new_value,
}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=30)
  parser.add_argument('--shape', type=int, nargs='+', default=[3, 3, 512, 512])
  args = parser.parse_args(argv)
  shape = tuple(args.shape)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  w, w0, g_sum, g = [jax.random.normal(k, shape) for k in keys]
  runs = {}
  for name, fn in FUNCTIONS.items():
    step = jax.jit(fn, donate_argnums=(0, 1, 2, 3))
    carry = step(jnp.copy(w), jnp.int32(1), jnp.copy(w0), jnp.copy(g_sum), g)
    jax.block_until_ready(carry)
    runs[name] = [step, carry, []]
  for _ in range(args.rounds):
    for run in runs.values():
      step, carry, times = run
      t0 = time.perf_counter()
      carry = step(*carry, g)
      jax.block_until_ready(carry)
      times.append(time.perf_counter() - t0)
      run[1] = carry
  dev = jax.devices()[0]
  print(
      f'Machine: {platform.platform()}, {os.cpu_count()} CPUs, JAX '
      f'{jax.__version__} on {dev.platform}; one float32 leaf of shape '
      f'{shape}, {args.rounds} rounds.\n'
  )
  print('| step | ms (median) | ratio to rda |')
  print('|---|---:|---:|')
  ref = statistics.median(runs['rda'][2])
  for name, (_, _, times) in runs.items():
    t = statistics.median(times)
    print(f'| {name} | {1e3 * t:.3f} | {t / ref:.2f} |')


if __name__ == '__main__':
  main()

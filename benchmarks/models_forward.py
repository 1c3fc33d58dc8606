"""Forward-pass throughput of the models, and what channel compaction buys.

Two markdown tables:

1. eval-mode forward throughput (``jax.jit`` of ``model.apply(..., train=False)``)
   of each model at its usual input size, with its dense MACs per image;
2. for a few models, a copy with half of the channels of every layer zeroed
   (and their batch-norm constants made 0, so every one of them can go) is
   compacted with ``models.compact``; the measured speedup of the compacted
   model over the original is set against the MAC ratio, and against the
   ratio of the bytes the compiled forward pass reads and writes (XLA's cost
   analysis): halving every width divides a convolution's MACs by 4 but the
   activations that batch norm, ReLU, pooling and residual additions stream
   through memory only by 2, so a memory-bound part bounds the speedup.

Variables are random (numpy-filled, not trained): throughput does not depend on
the values. Example::

  python -m benchmarks.models_forward --batch 8 --repeats 3
  python -m benchmarks.models_forward --models resnet18,vgg16 --compact resnet18
"""

import argparse
import functools
import math
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

import models

DEFAULT_MODELS = (
    'lenet5,lenet300_100,resnet18,resnet50,vgg16,wrn28_10,'
    'resnet18_imagenet,resnet50_imagenet,vgg16_imagenet'
)
DEFAULT_COMPACT = 'lenet5,resnet18,vgg16,resnet50'


def random_variables(model, input_shape, seed=0):
  """Variables shaped like ``model.init``'s, filled by numpy (fast)."""
  x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32)
  abstract = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), x
  )
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      fan_in = math.prod(leaf.shape[:-1])
      value = rng.standard_normal(leaf.shape, np.float32) * math.sqrt(
          2 / fan_in
      )
    elif name in ('scale', 'var'):
      value = rng.uniform(0.5, 1.5, leaf.shape)
    else:
      value = rng.normal(size=leaf.shape) * 0.1
    return np.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def zero_half_channels(variables, classifier):
  """Zeroes the upper half of the output channels of every layer but the
  classifier and makes their constant outputs non-positive (negative biases
  and batch-norm shifts, zero running means), so that compaction removes all
  of them, residual streams included."""
  variables = jax.tree.map(np.array, variables)
  params = traverse_util.flatten_dict(variables['params'], sep='/')
  stats = traverse_util.flatten_dict(variables.get('batch_stats', {}), sep='/')
  for key, value in params.items():
    layer, name = key.rsplit('/', 1)
    half = value.shape[-1] // 2
    if layer == classifier:
      continue
    if name == 'kernel':
      value[..., half:] = 0
    elif name == 'bias':  # conv/dense bias or batch-norm shift
      value[half:] = -1.0
      if f'{layer}/mean' in stats:
        stats[f'{layer}/mean'][half:] = 0.0
  out = {'params': traverse_util.unflatten_dict(params, sep='/')}
  if stats:
    out['batch_stats'] = traverse_util.unflatten_dict(stats, sep='/')
  return out


def timers(*pairs, repeats, warmup=1):
  """Best-of-``repeats`` seconds per eval-mode forward pass of each
  ``(model, variables, x)``, compile excluded. Each pass is compiled once
  (ahead of time); the same executable is timed and gives XLA's byte count.
  Runs are interleaved so that the load of a shared machine hits every model
  alike; the minimum is the least noisy estimate there. Returns
  ``(seconds, outputs, bytes accessed)`` per pair."""
  fns = []
  for model, variables, x in pairs:
    variables = jax.device_put(variables)
    fn = (
        jax.jit(functools.partial(model.apply, train=False))
        .lower(variables, x)
        .compile()
    )
    for _ in range(warmup):
      out = fn(variables, x).block_until_ready()
    fns.append((fn, variables, x, out))
  times = [[] for _ in fns]
  for _ in range(repeats):
    for i, (fn, variables, x, _) in enumerate(fns):
      start = time.perf_counter()
      fn(variables, x).block_until_ready()
      times[i].append(time.perf_counter() - start)
  return [(min(t), f[3], bytes_accessed(f[0])) for t, f in zip(times, fns)]


def bytes_accessed(compiled) -> float:
  """Bytes a compiled executable reads and writes (XLA's cost analysis)."""
  cost = compiled.cost_analysis()
  return float((cost or {}).get('bytes accessed', float('nan')))


def machine() -> str:
  device = jax.devices()[0]
  cpus = (
      len(os.sched_getaffinity(0))
      if hasattr(os, 'sched_getaffinity')
      else os.cpu_count()
  )
  load = (
      ', '.join(f'{l:.1f}' for l in os.getloadavg())
      if hasattr(os, 'getloadavg')
      else 'n/a'
  )
  return (
      f'{platform.platform()} | {platform.processor() or platform.machine()}'
      f' | {cpus} CPU(s) usable (os.cpu_count={os.cpu_count()}) | '
      f'jax {jax.__version__} on {device.platform}:{device.device_kind} | '
      f'load average {load}'
  )


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument(
      '--models',
      default=DEFAULT_MODELS,
      help='comma-separated registry names, or "all"',
  )
  parser.add_argument(
      '--compact',
      default=DEFAULT_COMPACT,
      help='models for the compaction comparison ("" = none)',
  )
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument(
      '--width_multiple',
      type=int,
      default=1,
      help='models.compact(width_multiple=...) for the compaction table',
  )
  parser.add_argument(
      '--dtype', default='float32', choices=('float32', 'bfloat16')
  )
  args = parser.parse_args(argv)
  dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[args.dtype]
  names = (
      # The image models (the token models have no image input or FLOP
      # trace here).
      [
          n
          for n in models.names()
          if models.get_entry(n).input_dtype == 'float32'
      ]
      if args.models == 'all'
      else [n for n in args.models.split(',') if n]
  )
  compact_names = [n for n in args.compact.split(',') if n]

  print(f'Machine: {machine()}\n')
  print(
      f'Forward pass, eval mode, batch {args.batch}, {args.dtype}, best of '
      f'{args.repeats}:\n'
  )
  print(
      '| model | input | params | MMACs/image | ms/batch | images/s | '
      'GMAC/s |'
  )
  print('|---|---|---:|---:|---:|---:|---:|')
  for name in names:
    model = models.create(name, dtype=dtype)
    shape = models.default_input_shape(name)
    variables = random_variables(model, shape)
    n_params = sum(v.size for v in jax.tree.leaves(variables['params']))
    macs = models.flops(model, variables, shape).dense_total
    x = jnp.asarray(
        np.random.default_rng(1).standard_normal(
            (args.batch,) + shape, np.float32
        )
    )
    [(seconds, _, _)] = timers((model, variables, x), repeats=args.repeats)
    print(
        f'| {name} | {"x".join(map(str, shape))} | {n_params:,} | '
        f'{macs / 1e6:,.1f} | {seconds * 1e3:.2f} | '
        f'{args.batch / seconds:.1f} | {macs * args.batch / seconds / 1e9:.1f}'
        ' |',
        flush=True,
    )

  if not compact_names:
    return
  print(
      f'\nCompaction: half of the channels of every layer removed, batch '
      f'{args.batch}, {args.dtype}, best of {args.repeats} (interleaved), '
      f'width_multiple {args.width_multiple}:\n'
  )
  print(
      '| model | params before -> after | MMACs/image before -> after | '
      'MAC ratio | bytes ratio (XLA) | ms before -> after | measured '
      'speedup | speedup / MAC ratio | max abs diff |'
  )
  print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for name in compact_names:
    model = models.create(name, dtype=dtype)
    shape = models.default_input_shape(name)
    classifier = models.trace_layers(model, shape)[-1]['name']
    variables = zero_half_channels(random_variables(model, shape), classifier)
    result = models.compact(
        model, variables, width_multiple=args.width_multiple
    )
    n0 = sum(v.size for v in jax.tree.leaves(variables['params']))
    n1 = sum(v.size for v in jax.tree.leaves(result.variables['params']))
    m0 = models.flops(model, variables, shape).dense_total
    m1 = models.flops(result.model, result.variables, shape).dense_total
    x = jnp.asarray(
        np.random.default_rng(1).standard_normal(
            (args.batch,) + shape, np.float32
        )
    )
    (t0, y0, b0), (t1, y1, b1) = timers(
        (model, variables, x),
        (result.model, result.variables, x),
        repeats=args.repeats,
    )
    diff = float(jnp.max(jnp.abs(y0 - y1)))
    print(
        f'| {name} | {n0:,} -> {n1:,} | {m0 / 1e6:,.1f} -> {m1 / 1e6:,.1f} | '
        f'{m0 / m1:.2f} | {b0 / b1:.2f} | {t0 * 1e3:.2f} -> {t1 * 1e3:.2f} | '
        f'{t0 / t1:.2f} | {(t0 / t1) / (m0 / m1):.2f} | {diff:.1e} |',
        flush=True,
    )


if __name__ == '__main__':
  main()

"""Writes the export of a run (see :mod:`train.export`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Any

import jax
import numpy as np

from .._models import models
import rda_optax
from .. import config as config_lib
from ..data import datasets
from .. import run_model
from .. import selection
from ..data import synthetic_source
from .reader import ExportError
from .reader import FORMAT
from .reader import fixed_batch
from .reader import num_classes_of
from .reader import tuples_in
from .reader import VERSION
from . import uncompacted

TOLERANCE = 1e-3  # Largest |logit difference| accepted (float32 rounding).


def _jsonable(value: Any) -> Any:
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (str, int, float, bool)) or value is None:
    return value
  raise TypeError(type(value).__name__)


def _changed_fields(reference, module) -> dict[str, Any]:
  """Constructor fields of ``module`` that differ from ``reference``."""
  out = {}
  for f in dataclasses.fields(module):
    if not f.init or f.name in ('parent', 'name', 'num_classes'):
      continue
    new, old = getattr(module, f.name), getattr(reference, f.name)
    if new == old:
      continue
    try:
      out[f.name] = _jsonable(new)
    except TypeError as e:
      raise ExportError(
          f'Cannot export {type(module).__name__}: its field {f.name} '
          f'({e}) changed in compaction and is not a plain value.'
      ) from e
  return out


def _input_shape(cfg) -> tuple[int, ...]:
  name = cfg.dataset.split(':')[0]
  if synthetic_source.is_synthetic(cfg.dataset):
    match = synthetic_source.SYNTHETIC_NAME.match(cfg.dataset)
    if match.group(1):
      return tuple(int(match.group(i)) for i in (1, 2, 3))
  elif name in datasets.DATASETS:
    shape = tuple(datasets.DATASETS[name].image_shape)
    if getattr(cfg, 'image_size', 0) and shape[0] > 64:
      return (cfg.image_size, cfg.image_size, shape[-1])
    return shape
  return tuple(models.default_input_shape(cfg.model))


def _sparse_variables(run: str) -> tuple[Any, dict[str, Any]]:
  """The run's config and the model it reports (its sparse point, also
  mid-run: :func:`train.run_model.load_model`)."""
  try:
    cfg = config_lib.load_config(run)
    variables = run_model.load_model(run)
  except (ValueError, OSError) as e:
    raise ExportError(f'Cannot export {run}: {e}') from e
  return cfg, variables


def _time_apply(model, variables, x, repeats: int = 20) -> float:
  """Median seconds of a jitted eval-mode forward pass on ``x``."""
  fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
  jax.block_until_ready(fwd(variables, x))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fwd(variables, x))
    times.append(time.perf_counter() - t0)
  return sorted(times)[len(times) // 2]


def export_run(
    run: str,
    out: str | None = None,
    *,
    time_batch: int = 0,
    width_multiple: int = 8,
) -> dict[str, Any]:
  """Exports the final model of ``run``; returns the summary (model.json).

  Args:
    run: a run directory (``--workdir`` of ``python -m train``).
    out: the export folder (default ``run/export``); replaced if present.
    time_batch: if > 0, also time the dense and the exported model's
      forward pass on a batch of this size (CPU inference speed).
    width_multiple: round each reduced width up to a multiple of this
      (:func:`models.compact`; default 8, which measured as fast or faster
      on the CPU, see ``docs/results.md``); 1 keeps the smallest model.
  """

  cfg, loaded = _sparse_variables(run)
  out = out or os.path.join(run, 'export')
  if selection.is_transformer(cfg.model):  # Not compacted: see uncompacted.
    return uncompacted.export_uncompacted(run, cfg, loaded, out)
  variables = {'params': loaded['params']}
  if loaded.get('batch_stats'):
    variables['batch_stats'] = loaded['batch_stats']
  input_shape = _input_shape(cfg)
  num_classes = num_classes_of(cfg.model, variables['params'], input_shape)
  model = models.create(cfg.model, num_classes=num_classes)
  try:
    result = models.compact(model, variables, width_multiple=width_multiple)
  except (ValueError, KeyError, NotImplementedError) as e:
    raise ExportError(f'Cannot compact {cfg.model}: {e}') from e
  fields = _changed_fields(model, result.model)
  rebuilt = models.create(
      cfg.model, num_classes=num_classes, **tuples_in(fields)
  )
  # The export must compute what the sparse model computes.
  x = fixed_batch(input_shape)
  want = np.asarray(model.apply(variables, x, train=False), np.float64)
  got = np.asarray(rebuilt.apply(result.variables, x, train=False), np.float64)
  max_diff = float(np.max(np.abs(want - got)))
  scale = float(np.max(np.abs(want))) or 1.0
  if not max_diff <= TOLERANCE * max(1.0, scale):
    raise ExportError(
        f'The compacted {cfg.model} differs from the sparse model by '
        f'{max_diff:.3g} on a test batch (tolerance {TOLERANCE:g}): not '
        'exported. Please report this with the run directory.'
    )

  macs_before = models.flops(model, variables, input_shape)
  macs_after = models.flops(rebuilt, result.variables, input_shape)
  mask = selection.run_mask(cfg)
  summary = rda_optax.sparsity_summary(variables['params'], mask)

  tmp = out + '.tmp'
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  rda_optax.save_sparse(os.path.join(tmp, 'variables.npz'), result.variables)
  dense_bytes = sum(
      int(np.asarray(v).size) * 4 for v in jax.tree.leaves(variables)
  )
  meta = {
      'format': FORMAT,
      'version': VERSION,
      'model': cfg.model,
      'num_classes': num_classes,
      'fields': fields,
      'width_multiple': width_multiple,
      'input_shape': list(input_shape),
      'dataset': cfg.dataset,
      'source': {
          'run': os.path.abspath(run),
          'step': loaded.get('step'),
          'method': cfg.method,
      },
      'weight_sparsity': summary['regularized/sparsity'],
      'channel_sparsity': summary['regularized/channel_sparsity'],
      'parameters': {
          'dense': int(
              sum(
                  np.asarray(v).size
                  for v in jax.tree.leaves(variables['params'])
              )
          ),
          'exported': int(
              sum(
                  np.asarray(v).size
                  for v in jax.tree.leaves(result.variables['params'])
              )
          ),
          'nonzero': int(
              sum(
                  np.count_nonzero(v)
                  for v in jax.tree.leaves(result.variables['params'])
              )
          ),
      },
      'macs': {
          'dense': macs_before.dense_total,
          'exported': macs_after.dense_total,
          'nonzero': macs_after.sparse_total,
      },
      'bytes': {
          'dense_float32': dense_bytes,
          'exported': os.path.getsize(os.path.join(tmp, 'variables.npz')),
      },
      'max_abs_logit_diff': max_diff,
      # Per layer writing them; a channel carries no signal when its kernel
      # or the scale of the batch norm after it is zero.
      'channels': {
          'total': sum(l.channels for l in result.layers),
          'no_signal': sum(len(l.zero) for l in result.layers),
          'removed': sum(len(l.removed) for l in result.layers),
      },
  }
  if time_batch:
    xb = fixed_batch(input_shape, time_batch)
    t_dense = _time_apply(model, variables, xb)
    t_exp = _time_apply(rebuilt, result.variables, xb)
    meta['cpu_inference'] = {
        'batch': time_batch,
        'device': str(jax.devices()[0].device_kind),
        'dense_s': t_dense,
        'exported_s': t_exp,
        'speedup': t_dense / t_exp,
        'mac_ratio': macs_before.dense_total / max(macs_after.dense_total, 1),
    }
  with open(os.path.join(tmp, 'model.json'), 'w') as f:
    json.dump(meta, f, indent=2)
  with open(os.path.join(tmp, 'export.md'), 'w') as f:
    f.write(_markdown(meta, result, macs_before, macs_after) + '\n')
  if os.path.exists(out):
    shutil.rmtree(out)
  os.replace(tmp, out)
  return meta


def _markdown(meta, result, before, after) -> str:
  m, b = meta['macs'], meta['bytes']
  p = meta['parameters']
  lines = [
      f'# Export of {meta["model"]} ({meta["source"]["method"]}, step '
      f'{meta["source"]["step"]})',
      '',
      f'- source run: `{meta["source"]["run"]}`',
      f'- weight sparsity (selected leaves): {meta["weight_sparsity"]:.2%}; '
      f'all-zero output channels: {meta["channel_sparsity"]:.2%}',
      *(
          [
              f'- output channels without signal (zero kernel or zero '
              f'batch-norm scale): {meta["channels"]["no_signal"]:,} of '
              f'{meta["channels"]["total"]:,}; removed: '
              f'{meta["channels"]["removed"]:,}'
          ]
          if 'channels' in meta
          else []
      ),
      f'- parameters: {p["dense"]:,} → {p["exported"]:,} after compaction '
      f'({p["nonzero"]:,} nonzero)'
      + (
          f'; reduced widths rounded up to multiples of '
          f'{meta["width_multiple"]}'
          if meta.get('width_multiple', 1) > 1
          else ''
      ),
      f'- MACs per example: {m["dense"]:,} dense → {m["exported"]:,} '
      f'compacted (×{m["dense"] / max(m["exported"], 1):.2f} fewer); '
      f'{m["nonzero"]:,} with nonzero weights',
      f'- file: {b["exported"]:,} bytes against {b["dense_float32"]:,} dense '
      f'float32 (1/{b["dense_float32"] / max(b["exported"], 1):.1f})',
      f'- largest |logit difference| to the sparse model on a fixed batch: '
      f'{meta["max_abs_logit_diff"]:.2e}',
  ]
  if 'cpu_inference' in meta:
    c = meta['cpu_inference']
    lines.append(
        f'- inference ({c["device"]}, batch {c["batch"]}): dense '
        f'{1e3 * c["dense_s"]:.2f} ms, exported {1e3 * c["exported_s"]:.2f} '
        f'ms: ×{c["speedup"]:.2f} faster for ×{c["mac_ratio"]:.2f} fewer '
        f'MACs ({c["speedup"] / c["mac_ratio"]:.2f} of the MAC reduction)'
    )
  lines += [
      '',
      'Rebuild it:',
      '',
      '```python',
      'from train import export',
      'model, variables, meta = export.load_export(EXPORT_DIR)',
      '```',
      '',
      '## Channels per layer',
      '',
      result.table(),
      '',
      '## MACs per layer (compacted model)',
      '',
      after.table(),
  ]
  return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
  """``python -m train.export RUN_DIR [--out DIR] [--time B] [--width_multiple M]``."""
  parser = argparse.ArgumentParser(
      prog='python -m train.export',
      description='Export the final sparse model of a run, compacted and '
      'compressed (model.json, variables.npz, export.md).',
  )
  parser.add_argument(
      'run', help='a run directory (--workdir of python -m ' 'train)'
  )
  parser.add_argument(
      '--out', default=None, help='export folder (default: RUN/export)'
  )
  parser.add_argument(
      '--time',
      type=int,
      default=0,
      metavar='BATCH',
      help='also time CPU inference of the dense and the '
      'exported model on a batch of this size',
  )
  parser.add_argument(
      '--width_multiple',
      type=int,
      default=8,
      metavar='M',
      help='round every width that compaction reduces up to a multiple of '
      'M (keeping some all-zero channels): convolution kernels are often '
      'faster at such widths (default 8); 1 keeps the smallest model',
  )
  args = parser.parse_args(argv)
  if args.width_multiple < 1:
    parser.error('--width_multiple must be >= 1 (1: no padding).')
  if not os.path.isdir(args.run):
    print(
        f'error: {args.run} is not a run directory (a --workdir of '
        'python -m train).',
        file=sys.stderr,
    )
    return 2
  try:
    meta = export_run(
        args.run,
        args.out,
        time_batch=args.time,
        width_multiple=args.width_multiple,
    )
  except ExportError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  out = args.out or os.path.join(args.run, 'export')
  with open(os.path.join(out, 'export.md')) as f:
    text = f.read()
  print(text.split('\nRebuild it:')[0].rstrip())
  print(
      f'\nwritten to {out}/ (model.json, variables.npz, export.md); '
      f'{meta["bytes"]["exported"]:,} bytes of variables.'
  )
  return 0

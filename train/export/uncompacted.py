"""The export of a transformer (``gpt_char``, ``vit_cifar``): not compacted.

:func:`models.compact` removes all-zero output channels of convolutional
networks; a transformer's width is shared by the residual stream, the
attention heads and the norms, so removing a channel of one kernel changes
the others' shapes, and its sparsity (unstructured or N:M) is a pattern of
single weights rather than whole channels. Its export therefore keeps the
model's shapes and stores the exactly sparse parameters in
:func:`rda_optax.save_sparse`'s format, which picks per kernel the smallest
layout: an N:M kernel (2:4, ...) as its values plus one small code per group
(the ``nm`` layout), an unstructured one as values plus a bitmask or
indices. ``export.md`` says so, with the N:M check of every selected
kernel and the file size against the dense float32 parameters; the check
that the export computes what the sparse model computes (the largest
difference of the logits on a fixed batch, after writing and reading the
file back) is the same as for the compacted exports.

A language model's export also records its vocabulary (``model.json``,
``vocabulary``: token ``i`` is the character ``vocabulary[i]``).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import numpy as np

from .._models import models
import rda_optax
from .. import methods
from .. import selection
from .. import tasks
from ..data import datasets
from .reader import ExportError
from .reader import FORMAT
from .reader import fixed_batch
from .reader import num_classes_of
from .reader import VERSION

TOLERANCE = 1e-3  # As the compacted exports: float32 rounding only.

WHY_NOT_COMPACTED = (
    'not compacted: channel compaction (models.compact) removes all-zero '
    "channels of convolutional networks; a transformer's widths are shared "
    'by the residual stream, the attention heads and the norms, and its '
    'zeros are single weights (N:M or unstructured), not channels, so its '
    'shapes are kept and the zeros are stored compressed instead'
)


def _fields(cfg, model) -> dict[str, Any]:
  """Constructor fields that differ from the registry's defaults (the
  context of a GPT), as JSON values."""
  entry = models.get_entry(cfg.model)
  out = {}
  for name in ('context',):
    if hasattr(model, name) and getattr(model, name) != getattr(
        entry.cls, name, None
    ):
      out[name] = getattr(model, name)
  return out


def _context(cfg) -> dict[str, Any]:
  cls = models.get_entry(cfg.model).cls
  return {'context': cfg.context} if hasattr(cls, 'context') else {}


def export_uncompacted(
    run: str, cfg, loaded: dict[str, Any], out: str
) -> dict[str, Any]:
  """Writes the export of a transformer run (see the module docstring).

  Args:
    run: the run directory.
    cfg: its config.
    loaded: its final variables (``load_variables``).
    out: the export folder (replaced).

  Returns:
    The summary written to ``model.json``.
  """
  entry = models.get_entry(cfg.model)
  params = loaded['params']
  variables = {'params': params}
  input_shape = tuple(entry.input_shape(_context(cfg)))
  num_classes = num_classes_of(
      cfg.model, params, input_shape, entry.input_dtype, **_context(cfg)
  )
  model = models.create(cfg.model, num_classes=num_classes, **_context(cfg))
  x = fixed_batch(input_shape, 8, entry.input_dtype, num_classes)
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
  try:
    want = np.asarray(forward(variables, x), np.float64)
  except Exception as e:  # pylint: disable=broad-except
    # Flax raises several types for parameters of other shapes.
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise ExportError(
        f'Cannot export {run}: its parameters do not fit '
        f'models.create({cfg.model!r}, num_classes={num_classes}'
        f'{", context=" + str(cfg.context) if _context(cfg) else ""}) '
        f'({first}); only runs of registry models export.'
    ) from e

  tmp = out + '.tmp'
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  path = os.path.join(tmp, 'variables.npz')
  rda_optax.save_sparse(path, variables)
  back = rda_optax.load_sparse(path, like=variables)
  got = np.asarray(forward(back, x), np.float64)
  max_diff = float(np.max(np.abs(want - got)))
  scale = float(np.max(np.abs(want))) or 1.0
  if not max_diff <= TOLERANCE * max(1.0, scale):
    shutil.rmtree(tmp)
    raise ExportError(
        f'The exported {cfg.model} differs from the sparse model by '
        f'{max_diff:.3g} on a test batch (tolerance {TOLERANCE:g}): not '
        'exported. Please report this with the run directory.'
    )

  mask = selection.run_mask(cfg)
  summary = rda_optax.sparsity_summary(params, mask)
  size = rda_optax.sparse_size(variables)
  selected = rda_optax.selection.resolve_mask(mask, params)
  kernels = [
      (rda_optax.path_str(p), np.asarray(x))
      for (p, x), s in zip(
          jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(selected)
      )
      if s
  ]
  nm = methods.uses_nm(cfg)
  dense_bytes = sum(
      int(np.asarray(v).size) * 4 for v in jax.tree.leaves(params)
  )
  total = sum(int(np.asarray(v).size) for v in jax.tree.leaves(params))
  nonzero = sum(int(np.count_nonzero(v)) for v in jax.tree.leaves(params))
  meta = {
      'format': FORMAT,
      'version': VERSION,
      'model': cfg.model,
      'num_classes': num_classes,
      'fields': _fields(cfg, model),
      'width_multiple': 1,
      'input_shape': list(input_shape),
      'input_dtype': entry.input_dtype,
      'dataset': cfg.dataset,
      'task': tasks.for_config(cfg).kind,
      'source': {
          'run': os.path.abspath(run),
          'step': loaded.get('step'),
          'method': cfg.method,
      },
      'compaction': WHY_NOT_COMPACTED,
      'weight_sparsity': summary['regularized/sparsity'],
      'channel_sparsity': summary['regularized/channel_sparsity'],
      'parameters': {'dense': total, 'exported': total, 'nonzero': nonzero},
      'bytes': {
          'dense_float32': dense_bytes,
          'exported': os.path.getsize(path),
      },
      'layouts': dict(size['codes']),
      'max_abs_logit_diff': max_diff,
  }
  if nm is not None:
    n, m = nm
    meta['nm'] = {
        'pattern': f'{n}:{m}',
        'kernels': len(kernels),
        'kernels_meeting': sum(
            rda_optax.satisfies_nm(k, n, m) for _, k in kernels
        ),
    }
  if datasets.is_text(cfg.dataset):
    meta['vocabulary'] = datasets.TEXT_DATASETS[cfg.dataset].vocabulary
  with open(os.path.join(tmp, 'model.json'), 'w') as f:
    json.dump(meta, f, indent=2)
  with open(os.path.join(tmp, 'export.md'), 'w') as f:
    f.write(_markdown(meta, kernels, nm) + '\n')
  if os.path.exists(out):
    shutil.rmtree(out)
  os.replace(tmp, out)
  return meta


def _markdown(meta, kernels, nm) -> str:
  b, p = meta['bytes'], meta['parameters']
  lines = [
      f'# Export of {meta["model"]} ({meta["source"]["method"]}, step '
      f'{meta["source"]["step"]})',
      '',
      f'- source run: `{meta["source"]["run"]}`',
      f'- {meta["compaction"]}.',
      f'- weight sparsity (selected kernels): {meta["weight_sparsity"]:.2%}; '
      f'parameters: {p["dense"]:,} ({p["nonzero"]:,} nonzero)',
      f'- file: {b["exported"]:,} bytes against {b["dense_float32"]:,} dense '
      f'float32 (1/{b["dense_float32"] / max(b["exported"], 1):.1f}); '
      'layouts: '
      + ', '.join(f'{k} {v}' for k, v in sorted(meta['layouts'].items())),
  ]
  if 'nm' in meta:
    # The nm layout is save_sparse's choice, leaf by leaf (M of 4, 8 or 16,
    # the pattern met, and smaller than the other layouts): said as counted.
    stored = meta['layouts'].get('nm', 0)
    lines.append(
        f'- N:M pattern {meta["nm"]["pattern"]}: met by '
        f'{meta["nm"]["kernels_meeting"]} of {meta["nm"]["kernels"]} '
        f'selected kernels; {stored} stored in the nm layout (values plus '
        'one code per group)'
    )
  lines += [
      f'- largest |logit difference| to the sparse model on a fixed batch '
      f'(after writing and reading the file): '
      f'{meta["max_abs_logit_diff"]:.2e}',
  ]
  if 'vocabulary' in meta:
    lines.append(
        f'- vocabulary: {len(meta["vocabulary"])} characters (model.json, '
        '`vocabulary`: token i is its i-th character)'
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
      '## Selected kernels',
      '',
      '| kernel | shape | nonzero | sparsity |'
      + (f' {nm[0]}:{nm[1]} |' if nm else ''),
      '|---|---|---|---|' + ('---|' if nm else ''),
  ]
  for name, k in kernels:
    row = (
        f'| {name} | {tuple(k.shape)} | {int(np.count_nonzero(k)):,} | '
        f'{1 - np.count_nonzero(k) / max(k.size, 1):.2%} |'
    )
    if nm:
      bad = rda_optax.nm_violations(k, *nm)
      row += ' yes |' if bad == 0 else f' {bad} groups over |'
    lines.append(row)
  return '\n'.join(lines)

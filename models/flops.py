"""Per-layer multiply-accumulate (MAC) counts, dense and with zeros skipped.

The model is traced (``jax.eval_shape`` of its ``init``, no computation) with a
``flax.linen.intercept_methods`` interceptor that records the input and output
shapes of every ``nn.Conv`` and ``nn.Dense`` call, so nothing is hard-coded per
architecture. For a layer whose output has ``P`` positions per example (output
height x width for a conv, 1 for a dense layer on a vector):

* ``dense_macs = P * kernel.size`` (``kh*kw*c_in*c_out`` or ``d_in*d_out``);
* ``sparse_macs = P * count_nonzero(kernel)``: what the layer costs when the
  multiplications by zero weights are skipped.

Batch norm, biases, activations and pooling are not counted (they are a few
percent of the total and do not change with weight sparsity).
"""

import dataclasses
import functools
import math
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn


@dataclasses.dataclass(frozen=True)
class LayerFlops:
  """MACs of one conv or dense layer for one input example.

  Attributes:
    name: layer path, e.g. ``"layer1_block0/conv1"``.
    kind: ``"conv"`` or ``"dense"``.
    kernel_shape: shape of the kernel.
    output_shape: output shape for one example (without the batch axis).
    dense_macs: MACs with every weight counted.
    sparse_macs: MACs of the nonzero weights only.
  """

  name: str
  kind: str
  kernel_shape: Tuple[int, ...]
  output_shape: Tuple[int, ...]
  dense_macs: int
  sparse_macs: int

  @property
  def density(self) -> float:
    """``sparse_macs / dense_macs``."""
    return self.sparse_macs / self.dense_macs if self.dense_macs else 0.0


@dataclasses.dataclass(frozen=True)
class FlopReport:
  """Per-layer and total MAC counts (per input example).

  Attributes:
    layers: one :class:`LayerFlops` per conv/dense layer, in call order.
  """

  layers: Tuple[LayerFlops, ...]

  @property
  def dense_total(self) -> int:
    """Total MACs of the dense model."""
    return sum(l.dense_macs for l in self.layers)

  @property
  def sparse_total(self) -> int:
    """Total MACs with the zero weights skipped."""
    return sum(l.sparse_macs for l in self.layers)

  @property
  def speedup(self) -> float:
    """Theoretical speedup ``dense_total / sparse_total``."""
    return self.dense_total / max(self.sparse_total, 1)

  def __getitem__(self, name: str) -> LayerFlops:
    for layer in self.layers:
      if layer.name == name:
        return layer
    raise KeyError(
        f'No conv/dense layer {name!r}; layers: '
        f'{", ".join(l.name for l in self.layers)}'
    )

  def as_dict(self) -> Dict[str, Any]:
    """Plain-dict form: ``{"layers": [{name, dense_macs, sparse_macs, ...}],
    "dense_total": ..., "sparse_total": ...}``."""
    return {
        'layers': [
            dict(dataclasses.asdict(l), density=l.density) for l in self.layers
        ],
        'dense_total': self.dense_total,
        'sparse_total': self.sparse_total,
    }

  def table(self) -> str:
    """A markdown table of the per-layer counts and totals."""
    lines = [
        '| layer | output | dense MACs | sparse MACs | density |',
        '|---|---|---:|---:|---:|',
    ]
    for l in self.layers:
      lines.append(
          f'| {l.name} | {"x".join(map(str, l.output_shape))} | '
          f'{l.dense_macs:,} | {l.sparse_macs:,} | {l.density:.3f} |'
      )
    lines.append(
        f'| **total** | | {self.dense_total:,} | '
        f'{self.sparse_total:,} | '
        f'{self.sparse_total / max(self.dense_total, 1):.3f} |'
    )
    return '\n'.join(lines)


def trace_layers(
    model: nn.Module, input_shape: Sequence[int], dtype=jnp.float32
) -> List[Dict[str, Any]]:
  """Shapes seen by every ``nn.Conv``/``nn.Dense`` call of ``model``.

  Args:
    model: an unbound module following the ``model(x, train=...)`` convention.
    input_shape: shape of ONE example, without the batch axis, e.g.
      ``(32, 32, 3)``.
    dtype: input dtype.

  Returns:
    In call order, dicts with ``name`` (module path joined by "/"), ``kind``,
    ``input_shape``, ``output_shape`` (both without the batch axis) and
    ``kernel_shape``.
  """
  records = []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == '__call__' and isinstance(
        module, (nn.Conv, nn.Dense)
    ):
      x = args[0]
      kernel = module.get_variable('params', 'kernel')
      records.append(
          dict(
              name='/'.join(module.path),
              kind='conv' if isinstance(module, nn.Conv) else 'dense',
              input_shape=tuple(x.shape[1:]),
              output_shape=tuple(out.shape[1:]),
              kernel_shape=tuple(kernel.shape),
          )
      )
    return out

  x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), dtype)
  with nn.intercept_methods(interceptor):
    jax.eval_shape(
        functools.partial(model.init, train=False), jax.random.key(0), x
    )
  return records


def _lookup(tree: Mapping[str, Any], path: str):
  node = tree
  for key in path.split('/'):
    node = node[key]
  return node


def flops(
    model: nn.Module, variables: Mapping[str, Any], input_shape: Sequence[int]
) -> FlopReport:
  """Dense and sparse MAC counts of every conv and dense layer.

  Args:
    model: the module (unbound).
    variables: ``{"params": ..., ...}`` as returned by ``model.init``, or the
      ``params`` tree alone; only the kernels are read (their zeros are what
      the sparse count skips).
    input_shape: shape of ONE input example without the batch axis, e.g.
      ``(28, 28, 1)`` or ``models.default_input_shape(name)``.

  Returns:
    A :class:`FlopReport` (``.layers``, ``.dense_total``, ``.sparse_total``,
    ``.as_dict()``, ``.table()``), counts per example.

  Raises:
    ValueError: a kernel of ``variables`` does not have the shape the model
      builds for ``input_shape``.
  """
  params = variables['params'] if 'params' in variables else variables
  layers = []
  for rec in trace_layers(model, input_shape):
    kernel = np.asarray(_lookup(params, rec['name'])['kernel'])
    if kernel.shape != rec['kernel_shape']:
      raise ValueError(
          f'{rec["name"]}: kernel has shape {kernel.shape} but the model '
          f'builds {rec["kernel_shape"]} for input shape {tuple(input_shape)}.'
      )
    positions = math.prod(rec['output_shape'][:-1])
    layers.append(
        LayerFlops(
            name=rec['name'],
            kind=rec['kind'],
            kernel_shape=kernel.shape,
            output_shape=rec['output_shape'],
            dense_macs=int(positions * kernel.size),
            sparse_macs=int(positions * np.count_nonzero(kernel)),
        )
    )
  return FlopReport(tuple(layers))

"""Measuring the sparsity of a parameter tree: per layer, per channel, in total.

Three views of the same numbers, all computed by :func:`layer_sparsity`:

* :func:`layer_sparsity` — one :class:`LayerSparsity` record per leaf;
* :func:`sparsity_summary` — a flat ``dict[str, int | float]`` with stable
  keys, ready for a metrics logger;
* :func:`sparsity_table` — an aligned, human-readable text table.

Definitions (He et al. 2020, eq. (30); Bui et al. 2019 for channels):

* *sparsity* of a set of weights = (number of exact zeros) / (number of
  weights);
* *channel sparsity* of a kernel = fraction of its output channels whose
  weights are all exactly zero. In Flax layouts a convolution kernel is
  ``(k_h, k_w, c_in, c_out)`` and a dense kernel ``(in, out)``; an output
  channel (a conv's output feature map, a dense layer's output neuron) is a
  slice along the LAST axis;
* *input-channel sparsity* = the same for slices along axis ``-2`` (a dense
  layer's input neurons, a conv's input channels).

Channel numbers are reported for every leaf with ``ndim > 1``. The
"regularized" totals cover the leaves selected by ``mask`` (by default
:func:`rda_optax.selection.default_mask`: every kernel, no biases or norm
parameters); the "total" ones cover every leaf.

A Flax variables dict ``{'params': ..., 'batch_stats': ...}`` may be passed
as is: only its ``'params'`` collection is measured, and paths are relative to
it (``"Conv_0/kernel"``). Pass unreplicated parameters (no leading device
axis from ``pmap``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rda_optax import selection

__all__ = [
    'LayerSparsity',
    'layer_sparsity',
    'sparsity_summary',
    'sparsity_table',
]


class LayerSparsity(NamedTuple):
  """Sparsity of one parameter leaf (plain Python numbers).

  Attributes:
    path: the leaf's path, keys joined with ``"/"`` (e.g. ``"Conv_0/kernel"``).
    shape: the leaf's shape.
    size: number of weights.
    nonzeros: number of weights that are not exactly zero.
    sparsity: ``1 - nonzeros / size`` (``0.0`` for an empty leaf).
    regularized: whether the leaf is selected by the mask.
    channels: number of output channels (size of the last axis), or ``None``
      when ``ndim <= 1``.
    zero_channels: number of output channels whose weights are all zero, or
      ``None``.
    input_channels: size of axis ``-2``, or ``None`` when ``ndim <= 1``.
    zero_input_channels: number of all-zero slices along axis ``-2``, or
      ``None``.
  """

  path: str
  shape: tuple[int, ...]
  size: int
  nonzeros: int
  sparsity: float
  regularized: bool
  channels: int | None = None
  zero_channels: int | None = None
  input_channels: int | None = None
  zero_input_channels: int | None = None

  @property
  def channel_sparsity(self) -> float | None:
    """Fraction of all-zero output channels (``None`` when ``ndim <= 1``)."""
    return _ratio(self.zero_channels, self.channels)

  @property
  def input_channel_sparsity(self) -> float | None:
    """Fraction of all-zero input channels (``None`` when ``ndim <= 1``)."""
    return _ratio(self.zero_input_channels, self.input_channels)


def _ratio(num: int | None, den: int | None) -> float | None:
  if num is None or den is None:
    return None
  return num / den if den else 0.0


def _unwrap_flax(tree: Any) -> Any:
  """``{'params': p, ...}`` (Flax variables) -> ``p``; anything else as is."""
  if isinstance(tree, Mapping) and 'params' in tree:
    return tree['params']
  return tree


def _leaf_counts(x: jax.Array) -> tuple[jax.Array, ...]:
  """(nonzeros, zero output channels, zero input channels) of one leaf."""
  nz = x != 0
  nonzeros = jnp.sum(nz, dtype=jnp.int32)
  if x.ndim <= 1:
    return (nonzeros,)
  all_axes = tuple(range(x.ndim))
  out_alive = jnp.any(nz, axis=all_axes[:-1])
  in_alive = jnp.any(nz, axis=all_axes[:-2] + all_axes[-1:])
  return (
      nonzeros,
      jnp.sum(~out_alive, dtype=jnp.int32),
      jnp.sum(~in_alive, dtype=jnp.int32),
  )


@jax.jit
def _tree_counts(leaves: list[jax.Array]) -> list[tuple[jax.Array, ...]]:
  # One compiled program per list of shapes/dtypes (cached), one transfer back.
  return [_leaf_counts(x) for x in leaves]


def layer_sparsity(params: Any, mask: Any = None) -> list[LayerSparsity]:
  """Per-leaf sparsity records, in ``jax.tree.leaves`` order.

  The counts are computed on device by one jitted program and fetched with a
  single :func:`jax.device_get`, so this is cheap even for large models (the
  program is compiled once per model shape).

  Example:
    >>> import jax.numpy as jnp
    >>> params = {'dense': {'kernel': jnp.array([[0., 1.], [0., 2.]]),
    ...                     'bias': jnp.array([0., 3.])}}
    >>> for rec in layer_sparsity(params):
    ...   print(rec.path, rec.nonzeros, rec.sparsity, rec.channel_sparsity)
    dense/bias 1 0.5 None
    dense/kernel 2 0.5 0.5

  Args:
    params: a pytree of arrays, or Flax variables ``{'params': ...}``.
    mask: which leaves count as regularized: ``None`` (every leaf with
      ``ndim > 1``), a tree of booleans (or a prefix of one), or a callable
      ``params -> tree``; see :func:`rda_optax.selection.resolve_mask`.

  Returns:
    A list of :class:`LayerSparsity`, one per leaf.
  """
  params = _unwrap_flax(params)
  if mask is not None and not callable(mask):
    mask = _unwrap_flax(mask)
  selected = jax.tree.leaves(selection.resolve_mask(mask, params))
  with_path = jax.tree_util.tree_flatten_with_path(params)[0]
  paths = [selection.path_str(p) for p, _ in with_path]
  arrays = [jnp.asarray(x) for _, x in with_path]
  counts = jax.device_get(_tree_counts(arrays))
  records = []
  for path, x, sel, c in zip(paths, arrays, selected, counts):
    size = int(x.size)
    nonzeros = int(c[0])
    kw = {}
    if x.ndim > 1:
      kw = dict(
          channels=int(x.shape[-1]),
          zero_channels=int(c[1]),
          input_channels=int(x.shape[-2]),
          zero_input_channels=int(c[2]),
      )
    records.append(
        LayerSparsity(
            path=path,
            shape=tuple(int(d) for d in x.shape),
            size=size,
            nonzeros=nonzeros,
            sparsity=_ratio(size - nonzeros, size),
            regularized=bool(sel),
            **kw,
        )
    )
  return records


class _Totals(NamedTuple):
  size: int
  nonzeros: int
  sparsity: float
  channels: int
  zero_channels: int
  input_channels: int
  zero_input_channels: int


def _totals(records: list[LayerSparsity]) -> _Totals:
  size = sum(r.size for r in records)
  nonzeros = sum(r.nonzeros for r in records)
  kernels = [r for r in records if r.channels is not None]
  return _Totals(
      size=size,
      nonzeros=nonzeros,
      sparsity=_ratio(size - nonzeros, size),
      channels=sum(r.channels for r in kernels),
      zero_channels=sum(r.zero_channels for r in kernels),
      input_channels=sum(r.input_channels for r in kernels),
      zero_input_channels=sum(r.zero_input_channels for r in kernels),
  )


def sparsity_summary(
    params: Any, mask: Any = None, *, records: list[LayerSparsity] | None = None
) -> dict[str, int | float]:
  """A flat ``{name: number}`` sparsity report for logging.

  Keys (``<path>`` is the leaf path joined with ``"/"``, e.g.
  ``"Conv_0/kernel"``; values are Python ``int`` or ``float``):

  * ``"layer/<path>/size"``, ``"layer/<path>/nonzeros"``,
    ``"layer/<path>/sparsity"`` for every leaf;
  * ``"layer/<path>/channel_sparsity"`` (all-zero output channels, last axis)
    and ``"layer/<path>/input_channel_sparsity"`` (all-zero slices along
    axis ``-2``: a dense layer's input neurons) for every leaf with
    ``ndim > 1``;
  * ``"regularized/{size,nonzeros,sparsity}"`` over the leaves selected by
    ``mask``; ``"regularized/{channels,zero_channels,channel_sparsity}"``
    and ``"regularized/{input_channels,zero_input_channels,"``
    ``"input_channel_sparsity}"`` over all the channels of the selected
    leaves with ``ndim > 1``;
  * ``"total/{size,nonzeros,sparsity}"`` over every leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> params = {'params': {'Dense_0': {'kernel': jnp.array([[0., 1.],
    ...                                                       [0., 2.]]),
    ...                                  'bias': jnp.array([0., 3.])}}}
    >>> s = sparsity_summary(params)
    >>> s['layer/Dense_0/kernel/channel_sparsity'], s['regularized/sparsity']
    (0.5, 0.5)
    >>> s['total/nonzeros'], s['total/size']
    (3, 6)

  Args:
    params: a pytree of arrays, or Flax variables ``{'params': ...}``.
    mask: which leaves are regularized (see :func:`layer_sparsity`).
    records: the output of :func:`layer_sparsity` for these params, to avoid
      computing it twice (``params`` and ``mask`` are then ignored).

  Returns:
    A flat dict with stable string keys.
  """
  if records is None:
    records = layer_sparsity(params, mask)
  out: dict[str, int | float] = {}
  for r in records:
    key = f'layer/{r.path}'
    out[f'{key}/size'] = r.size
    out[f'{key}/nonzeros'] = r.nonzeros
    out[f'{key}/sparsity'] = r.sparsity
    if r.channels is not None:
      out[f'{key}/channel_sparsity'] = r.channel_sparsity
      out[f'{key}/input_channel_sparsity'] = r.input_channel_sparsity
  reg = _totals([r for r in records if r.regularized])
  out.update(
      {
          'regularized/size': reg.size,
          'regularized/nonzeros': reg.nonzeros,
          'regularized/sparsity': reg.sparsity,
          'regularized/channels': reg.channels,
          'regularized/zero_channels': reg.zero_channels,
          'regularized/channel_sparsity': _ratio(
              reg.zero_channels, reg.channels
          ),
          'regularized/input_channels': reg.input_channels,
          'regularized/zero_input_channels': reg.zero_input_channels,
          'regularized/input_channel_sparsity': _ratio(
              reg.zero_input_channels, reg.input_channels
          ),
      }
  )
  tot = _totals(records)
  out.update(
      {
          'total/size': tot.size,
          'total/nonzeros': tot.nonzeros,
          'total/sparsity': tot.sparsity,
      }
  )
  return out


def _pct(x: float | None) -> str:
  return '-' if x is None else f'{100.0 * x:.2f}'


def sparsity_table(
    params: Any, mask: Any = None, *, records: list[LayerSparsity] | None = None
) -> str:
  """An aligned text table of per-layer sparsity with totals rows.

  Columns: layer path (``*`` marks regularized leaves), shape, number of
  parameters, nonzeros, sparsity %, % of all-zero output channels and % of
  all-zero input channels (``-`` for leaves with ``ndim <= 1``). The last two
  rows total the regularized leaves and all leaves.

  Example:
    >>> import jax.numpy as jnp
    >>> params = {'Dense_0': {'kernel': jnp.array([[0., 1.], [0., 2.]]),
    ...                       'bias': jnp.array([0., 3.])}}
    >>> print(sparsity_table(params))  # doctest: +NORMALIZE_WHITESPACE
    layer            shape   params  nonzeros  sparsity %  zero out-ch %  zero in-ch %
    Dense_0/bias     (2,)         2         1       50.00              -             -
    Dense_0/kernel*  (2, 2)       4         2       50.00          50.00          0.00
    regularized (*)               4         2       50.00          50.00          0.00
    total                         6         3       50.00              -             -

  Args:
    params: a pytree of arrays, or Flax variables ``{'params': ...}``.
    mask: which leaves are regularized (see :func:`layer_sparsity`).
    records: the output of :func:`layer_sparsity`, to avoid recomputing it.

  Returns:
    The table as a multi-line string (no trailing newline).
  """
  if records is None:
    records = layer_sparsity(params, mask)
  header = (
      'layer',
      'shape',
      'params',
      'nonzeros',
      'sparsity %',
      'zero out-ch %',
      'zero in-ch %',
  )
  rows = []
  for r in records:
    rows.append(
        (
            r.path + ('*' if r.regularized else ''),
            str(r.shape),
            str(r.size),
            str(r.nonzeros),
            _pct(r.sparsity),
            _pct(r.channel_sparsity),
            _pct(r.input_channel_sparsity),
        )
    )
  reg = _totals([r for r in records if r.regularized])
  rows.append(
      (
          'regularized (*)',
          '',
          str(reg.size),
          str(reg.nonzeros),
          _pct(reg.sparsity),
          _pct(_ratio(reg.zero_channels, reg.channels)),
          _pct(_ratio(reg.zero_input_channels, reg.input_channels)),
      )
  )
  tot = _totals(records)
  rows.append(
      (
          'total',
          '',
          str(tot.size),
          str(tot.nonzeros),
          _pct(tot.sparsity),
          '-',
          '-',
      )
  )
  widths = [
      max(len(row[i]) for row in [header, *rows]) for i in range(len(header))
  ]

  def fmt(row):
    cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
    cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
    return '  '.join(cells).rstrip()

  return '\n'.join(fmt(row) for row in [header, *rows])

"""Channel compaction: turn structured sparsity into a physically smaller model.

When every weight feeding an output channel of a conv (or an output neuron of
a dense layer) is zero, that channel no longer depends on the input: in eval
mode (running batch-norm statistics) it carries a constant ``v`` -- the layer
bias, pushed through batch norm and the activation:
``v = relu(beta - mean * gamma / sqrt(var + eps))`` after a bias-free conv.
A zero scale ``gamma`` of the batch norm after the layer does the same
whatever the kernel (``v = relu(beta)``; network slimming, Liu et al. 2017,
makes such zeros with an l1 penalty on the scales).
:func:`compact` removes such channels, cuts the matching inputs of the layers
that read them, and folds ``v`` into those readers: each reader's output moves
by ``delta_o = sum_{taps, c} kernel[..., c, o] * v_c``, which is added to its
bias or, when it has none, subtracted from the running mean of the batch norm
that follows it. The result is a model of the same class with narrower layers
whose eval-mode outputs equal the original's up to float rounding.

Two things can force a zero channel to stay:

* **zero padding** -- a constant channel read by a zero-padded conv is not
  spatially constant at the borders (the padding contributes zeros, not
  ``v``), so the shift cannot be folded exactly. Such a channel is removed only
  when its constant is exactly 0 (e.g. ReLU of a non-positive shift); otherwise
  it is kept and reported in ``kept_constant``. Readers without padding in
  their window (VALID convs, 1x1 convs, dense layers, layers after a global or
  max pool) fold any constant exactly.
* **residual connections** -- the layers adding into one residual stream
  (ResNet stem, the last conv of each block, projection shortcuts) share its
  channels: a channel goes only if it is zero in every one of them (and its
  constants satisfy the padding rule at every point of the stream). A channel
  that is zero in one writer but used by another is reported in
  ``kept_residual``.

A **pre-activation** reader (Wide-ResNet: ``conv(relu(bn(x)))``) sees a
removed stream channel (exactly 0: its writers have no bias and no batch
norm) as the constant ``relu(bn(0))`` of its own batch norm; the padding rule
applies to that constant, and a reader with neither bias nor batch norm
after it (a projection shortcut) cannot absorb a nonzero one, so the channel
then stays (``kept_constant``). The batch norms in front of the readers are
cut with the channel.

Supported: :class:`~models.lenet.LeNet5`, :class:`~models.lenet.LeNet300100`,
:class:`~models.vgg.VGG`, :class:`~models.resnet.ResNet` (basic and
bottleneck blocks, both stems) and :class:`~models.wide_resnet.WideResNet`
(the inner channels of its blocks and its pre-activation residual streams).
"""

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

from . import lenet, resnet, vgg, wide_resnet
from .layers import BN_EPSILON

# --------------------------------------------------------------------------
# Channel graph description.


@dataclasses.dataclass
class _Writer:
  """A conv/dense layer (``name``) whose output channels are the space's,
  optionally followed by the batch norm ``bn``."""

  name: str
  bn: Optional[str] = None


@dataclasses.dataclass
class _Reader:
  """A conv/dense layer whose input channels are the space's.

  ``exact``: a constant input channel shifts every output position by the same
  amount (no zero padding inside any window). ``flatten``: a dense layer reading
  a flattened (H, W, C) map. ``bn``: the batch norm after it, the fold target
  when the layer has no bias. ``pre_bn``: a batch norm (then a ReLU) between
  the space and the layer (pre-activation).
  """

  name: str
  exact: bool
  bn: Optional[str] = None
  flatten: bool = False
  pre_bn: Optional[str] = None


@dataclasses.dataclass
class _Step:
  """One value of a channel space: ``act(sum(writers) [+ previous value])``."""

  writers: List[_Writer]
  relu: bool
  readers: List[_Reader] = dataclasses.field(default_factory=list)
  residual: bool = False


@dataclasses.dataclass
class _Space:
  """A set of channels shared by a chain of values (one per step)."""

  name: str
  steps: List[_Step]


@dataclasses.dataclass
class _Plan:
  spaces: List[_Space]
  rebuild: Callable[[Dict[str, int]], nn.Module]


# --------------------------------------------------------------------------
# Per-family plans.


def _lenet5_plan(model: lenet.LeNet5) -> _Plan:
  spaces = [
      _Space(
          'conv1',
          [
              _Step(
                  [_Writer('conv1')],
                  model.conv_relu,
                  [_Reader('conv2', exact=True)],
              )
          ],
      ),
      _Space(
          'conv2',
          [
              _Step(
                  [_Writer('conv2')],
                  model.conv_relu,
                  [_Reader('fc1', exact=True, flatten=True)],
              )
          ],
      ),
      _Space(
          'fc1', [_Step([_Writer('fc1')], True, [_Reader('fc2', exact=True)])]
      ),
  ]
  return _Plan(
      spaces, lambda w: model.clone(features=(w['conv1'], w['conv2'], w['fc1']))
  )


def _mlp_plan(model: lenet.LeNet300100) -> _Plan:
  n = len(model.features)
  spaces = [
      _Space(
          f'fc{i}',
          [
              _Step(
                  [_Writer(f'fc{i}')], True, [_Reader(f'fc{i + 1}', exact=True)]
              )
          ],
      )
      for i in range(1, n + 1)
  ]
  return _Plan(
      spaces,
      lambda w: model.clone(
          features=tuple(w[f'fc{i}'] for i in range(1, n + 1))
      ),
  )


def _vgg_plan(model: vgg.VGG) -> _Plan:
  n_conv = sum(1 for item in model.cfg if item != 'M')
  bn_of = lambda k: None if model.conv_bias else f'bn{k}'
  spaces = []
  for k in range(1, n_conv + 1):
    if k < n_conv:
      reader = _Reader(f'conv{k + 1}', exact=False, bn=bn_of(k + 1))
    elif model.variant == 'cifar':
      reader = _Reader('fc', exact=True)
    else:
      reader = _Reader('fc1', exact=True, flatten=True)
    spaces.append(
        _Space(
            f'conv{k}', [_Step([_Writer(f'conv{k}', f'bn{k}')], True, [reader])]
        )
    )
  if model.variant == 'imagenet':
    for i in range(1, len(model.hidden) + 1):
      spaces.append(
          _Space(
              f'fc{i}',
              [_Step([_Writer(f'fc{i}')], True, [_Reader(f'fc{i + 1}', True)])],
          )
      )

  def rebuild(w):
    widths = iter(w[f'conv{k}'] for k in range(1, n_conv + 1))
    cfg = tuple(item if item == 'M' else next(widths) for item in model.cfg)
    if model.variant != 'imagenet':
      return model.clone(cfg=cfg)
    hidden = tuple(w[f'fc{i}'] for i in range(1, len(model.hidden) + 1))
    return model.clone(cfg=cfg, hidden=hidden)

  return _Plan(spaces, rebuild)


def _resnet_plan(model: resnet.ResNet) -> _Plan:
  widths = resnet.resolve_widths(model)
  bottleneck = issubclass(model.block_cls, resnet.BottleneckBlock)
  spaces = []
  # The residual stream: the stem opens it; a block with an identity shortcut
  # adds into the current stream (one more step), a projection opens a new one.
  stream = _Space('stream:stem', [_Step([_Writer('conv1', 'bn1')], relu=True)])
  spaces.append(stream)
  stage_space = []  # the stream space holding each stage's output
  inner_spaces = []  # (stage, block, inner index, space name)
  for i, n_blocks in enumerate(model.stage_sizes):
    for j in range(n_blocks):
      block = f'layer{i + 1}_block{j}'
      feed = stream.steps[-1]
      # (conv, its bn, the conv reading it, that reader's bn, reader exact?)
      if bottleneck:
        first_exact = True  # 1x1 conv1 has no padding
        inner = [
            ('conv1', 'bn1', 'conv2', 'bn2', False),
            ('conv2', 'bn2', 'conv3', 'bn3', True),
        ]
        last = ('conv3', 'bn3')
      else:
        first_exact = False  # 3x3 conv1 with zero padding
        inner = [('conv1', 'bn1', 'conv2', 'bn2', False)]
        last = ('conv2', 'bn2')
      feed.readers.append(
          _Reader(f'{block}/conv1', first_exact, f'{block}/bn1')
      )
      for k, (conv, bn, reader, reader_bn, exact) in enumerate(inner):
        name = f'{block}/{conv}'
        spaces.append(
            _Space(
                name,
                [
                    _Step(
                        [_Writer(name, f'{block}/{bn}')],
                        relu=True,
                        readers=[
                            _Reader(
                                f'{block}/{reader}',
                                exact,
                                f'{block}/{reader_bn}',
                            )
                        ],
                    )
                ],
            )
        )
        inner_spaces.append((i, j, k, name))
      out = _Writer(f'{block}/{last[0]}', f'{block}/{last[1]}')
      if j == 0 and widths.projections[i]:
        feed.readers.append(
            _Reader(f'{block}/downsample_conv', True, f'{block}/downsample_bn')
        )
        stream = _Space(
            f'stream:layer{i + 1}',
            [
                _Step(
                    [
                        out,
                        _Writer(
                            f'{block}/downsample_conv', f'{block}/downsample_bn'
                        ),
                    ],
                    relu=True,
                )
            ],
        )
        spaces.append(stream)
      else:
        if j == 0:
          stream.name += f'+layer{i + 1}'
        stream.steps.append(_Step([out], relu=True, residual=True))
    stage_space.append(stream)
  stream.steps[-1].readers.append(_Reader('fc', True))
  stem_space = spaces[0]

  def rebuild(w):
    blocks = [[list(ws) for ws in stage] for stage in widths.blocks]
    for i, j, k, name in inner_spaces:
      blocks[i][j][k] = w[name]
    return model.clone(
        stem_width=w[stem_space.name],
        stage_widths=tuple(w[s.name] for s in stage_space),
        block_widths=tuple(
            tuple(tuple(ws) for ws in stage) for stage in blocks
        ),
        projections=widths.projections,
    )

  return _Plan(spaces, rebuild)


def _wide_resnet_plan(model: wide_resnet.WideResNet) -> _Plan:
  # Inner channels: conv1 -> bn2 -> ReLU -> (dropout) -> conv2 (padded).
  # Residual streams (pre-activation): the stem conv opens one; each block
  # reads it through bn1 -> ReLU (conv1, padded; the projection shortcut,
  # 1x1) and adds conv2 into it, or opens the next with its shortcut.
  n = (model.depth - 4) // 6
  k = model.widen_factor
  widths = (
      tuple(model.widths)
      if model.widths is not None
      else (16, 16 * k, 32 * k, 64 * k)
  )
  projections = (
      tuple(model.projections)
      if model.projections is not None
      else tuple(g > 0 or widths[0] != widths[1] for g in range(3))
  )
  stream = _Space('stream:stem', [_Step([_Writer('conv1')], relu=False)])
  spaces, group_spaces, inner = [stream], [], []
  for g in range(3):
    for b in range(n):
      block = f'group{g + 1}_block{b}'
      feed = stream.steps[-1]
      feed.readers.append(
          _Reader(
              f'{block}/conv1',
              exact=False,
              bn=f'{block}/bn2',
              pre_bn=f'{block}/bn1',
          )
      )
      spaces.append(
          _Space(
              f'{block}/conv1',
              [
                  _Step(
                      [_Writer(f'{block}/conv1', f'{block}/bn2')],
                      relu=True,
                      readers=[_Reader(f'{block}/conv2', exact=False)],
                  )
              ],
          )
      )
      inner.append(spaces[-1].name)
      if b == 0 and projections[g]:
        feed.readers.append(
            _Reader(f'{block}/shortcut_conv', exact=True, pre_bn=f'{block}/bn1')
        )
        stream = _Space(
            f'stream:group{g + 1}',
            [
                _Step(
                    [
                        _Writer(f'{block}/conv2'),
                        _Writer(f'{block}/shortcut_conv'),
                    ],
                    relu=False,
                )
            ],
        )
        spaces.append(stream)
      else:
        if b == 0:
          stream.name += f'+group{g + 1}'
        stream.steps.append(
            _Step([_Writer(f'{block}/conv2')], relu=False, residual=True)
        )
    group_spaces.append(stream)
  # The head: bn -> ReLU -> global mean -> fc (a constant folds exactly).
  stream.steps[-1].readers.append(_Reader('fc', exact=True, pre_bn='bn'))
  stem_space = spaces[0]

  def rebuild(w):
    return model.clone(
        widths=(w[stem_space.name], *(w[s.name] for s in group_spaces)),
        block_widths=tuple(
            tuple(w[f'group{g + 1}_block{b}/conv1'] for b in range(n))
            for g in range(3)
        ),
        projections=projections,
    )

  return _Plan(spaces, rebuild)


def _plan(model: nn.Module) -> _Plan:
  if isinstance(model, lenet.LeNet5):
    return _lenet5_plan(model)
  if isinstance(model, lenet.LeNet300100):
    return _mlp_plan(model)
  if isinstance(model, vgg.VGG):
    return _vgg_plan(model)
  if isinstance(model, resnet.ResNet):
    return _resnet_plan(model)
  if isinstance(model, wide_resnet.WideResNet):
    return _wide_resnet_plan(model)
  raise NotImplementedError(
      f'Channel compaction supports LeNet5, LeNet300100, VGG, ResNet and '
      f'WideResNet, not {type(model).__name__}.'
  )


# --------------------------------------------------------------------------
# Result types.


@dataclasses.dataclass(frozen=True)
class LayerCompaction:
  """What compaction did to the output channels of one layer.

  Attributes:
    name: layer path, e.g. ``"layer1_block0/conv2"``.
    space: the channel space it writes (several layers share a residual
      stream, e.g. ``"stream:stem+layer1"``).
    channels: output channels before.
    kept: output channels after.
    zero: channels whose weights are all zero in this layer.
    removed: channels removed.
    kept_residual: zero here but kept because another layer adding into the
      same residual stream uses them.
    kept_constant: zero in every writer but kept because their constant
      output is nonzero and is read by a zero-padded convolution.
    kept_minimum: removable but kept so that the layer keeps one channel.
    kept_padding: removable but kept to round the width up to a multiple of
      ``width_multiple`` (see :func:`compact`).
  """

  name: str
  space: str
  channels: int
  kept: int
  zero: Tuple[int, ...]
  removed: Tuple[int, ...]
  kept_residual: Tuple[int, ...]
  kept_constant: Tuple[int, ...]
  kept_minimum: Tuple[int, ...]
  kept_padding: Tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class CompactionResult:
  """A compacted model.

  Attributes:
    model: the smaller module (same class, narrower widths).
    variables: its variables (``params`` and, if any, ``batch_stats``).
    layers: one :class:`LayerCompaction` per conv/dense layer whose outputs
      were considered (every layer except the classifier).
  """

  model: nn.Module
  variables: Dict[str, Any]
  layers: Tuple[LayerCompaction, ...]

  @property
  def removed_channels(self) -> int:
    """Channels removed over all channel spaces (a residual stream counts
    once)."""
    seen = {}
    for layer in self.layers:
      seen[layer.space] = len(layer.removed)
    return sum(seen.values())

  def __getitem__(self, name: str) -> LayerCompaction:
    for layer in self.layers:
      if layer.name == name:
        return layer
    raise KeyError(name)

  def table(self) -> str:
    """Markdown table of the per-layer report."""
    lines = [
        '| layer | space | channels | zero | removed | kept (residual) '
        '| kept (constant) | kept (minimum) | kept (padding) |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for l in self.layers:
      lines.append(
          f'| {l.name} | {l.space} | {l.channels} -> {l.kept} | {len(l.zero)} '
          f'| {len(l.removed)} | {len(l.kept_residual)} '
          f'| {len(l.kept_constant)} | {len(l.kept_minimum)} '
          f'| {len(l.kept_padding)} |'
      )
    return '\n'.join(lines)


# --------------------------------------------------------------------------
# The engine.


def _tree_to_numpy(tree):
  if isinstance(tree, Mapping):
    return {k: _tree_to_numpy(v) for k, v in tree.items()}
  return np.array(tree)


def _node(tree, path: str):
  for key in path.split('/'):
    tree = tree[key]
  return tree


def _zero_outputs(params, writer: _Writer) -> np.ndarray:
  """The output channels of ``writer`` that carry no signal: its kernel is
  zero there, or the scale of the batch norm after it is (network slimming,
  Liu et al. 2017: ``scale·(x − μ)/σ + shift`` is then ``shift`` whatever the
  kernel); either way the channel is the constant of :func:`_writer_constant`.
  """
  kernel = _node(params, writer.name)['kernel']
  zero = np.all(kernel == 0, axis=tuple(range(kernel.ndim - 1)))
  if writer.bn is not None:
    bn = _node(params, writer.bn)
    if 'scale' in bn:
      zero = zero | (np.asarray(bn['scale']) == 0)
  return zero


def _writer_constant(params, stats, writer: _Writer, eps: float) -> np.ndarray:
  """Per-channel output of ``writer`` (after its BN) where its kernel or its
  batch norm's scale is 0 (with a zero scale the batch norm gives its shift,
  as this formula does; the kernel is not read)."""
  layer = _node(params, writer.name)
  width = layer['kernel'].shape[-1]
  value = (
      layer['bias'].astype(np.float64) if 'bias' in layer else np.zeros(width)
  )
  if writer.bn is not None:
    value = _bn_apply(params, stats, writer.bn, value, eps)
  return value


def _bn_apply(
    params, stats, bn_name: str, value: np.ndarray, eps: float
) -> np.ndarray:
  bn = _node(params, bn_name)
  st = _node(stats, bn_name)
  scale = bn['scale'].astype(np.float64) if 'scale' in bn else 1.0
  shift = bn['bias'].astype(np.float64) if 'bias' in bn else 0.0
  return (value - st['mean'].astype(np.float64)) * scale / np.sqrt(
      st['var'].astype(np.float64) + eps
  ) + shift


def _reader_input(
    params, stats, reader: _Reader, value: np.ndarray, eps: float
) -> np.ndarray:
  """What ``reader`` sees of constant channels ``value`` of its space."""
  if reader.pre_bn is None:
    return value
  return np.maximum(_bn_apply(params, stats, reader.pre_bn, value, eps), 0.0)


def _absorbs(params, reader: _Reader) -> bool:
  """``reader`` has a bias or a batch norm after it to fold a constant into."""
  return 'bias' in _node(params, reader.name) or reader.bn is not None


def _fold(params, stats, reader: _Reader, value: np.ndarray) -> None:
  """Adds the effect of constant input channels ``value`` to ``reader``."""
  layer = _node(params, reader.name)
  kernel = layer['kernel'].astype(np.float64)
  if reader.flatten:
    kernel = kernel.reshape(-1, value.shape[0], kernel.shape[-1])
  delta = np.einsum(
      'co,c->o', kernel.reshape(-1, *kernel.shape[-2:]).sum(0), value
  )
  if 'bias' in layer:
    layer['bias'] = (layer['bias'] + delta).astype(layer['bias'].dtype)
  elif reader.bn is not None:
    st = _node(stats, reader.bn)
    st['mean'] = (st['mean'] - delta).astype(st['mean'].dtype)
  else:
    raise ValueError(
        f'{reader.name} has neither a bias nor a batch norm to '
        'absorb a removed constant channel.'
    )


def _slice_writer(params, stats, writer: _Writer, keep: np.ndarray) -> None:
  layer = _node(params, writer.name)
  layer['kernel'] = layer['kernel'][..., keep]
  if 'bias' in layer:
    layer['bias'] = layer['bias'][keep]
  if writer.bn is not None:
    _slice_bn(params, stats, writer.bn, keep)


def _slice_bn(params, stats, bn_name: str, keep: np.ndarray) -> None:
  for tree in (params, stats):
    node = _node(tree, bn_name)
    for key in list(node):
      node[key] = node[key][keep]


def _slice_reader(params, reader: _Reader, keep: np.ndarray) -> None:
  layer = _node(params, reader.name)
  kernel = layer['kernel']
  if reader.flatten:
    out = kernel.shape[-1]
    kernel = kernel.reshape(-1, keep.shape[0], out)[:, keep].reshape(-1, out)
  else:
    kernel = kernel[..., keep, :]
  layer['kernel'] = kernel


def coupled_scales(
    model: nn.Module, shifts: bool = False
) -> Tuple[Tuple[str, ...], ...]:
  """The batch-norm scales that share channels, one set per channel space.

  Channel ``c`` of a space carries no signal when the scale ``c`` of the
  batch norm after every layer writing it is zero: for a ResNet residual
  stream that is the stem's and every block's last batch norm (and the
  projection's); for a block-internal channel or a VGG layer, one scale.
  With ``shifts=True`` each set holds the shifts (``.../bias``) too: when
  they are zero as well the channel is exactly zero, which :func:`compact`
  removes even where a zero-padded convolution reads it.
  Paths join keys with ``/`` (``'layer1_block0/bn2/scale'``), as
  :func:`rda_optax.coupled_group_lasso` takes them; writers without a batch
  norm after them (LeNet, Wide-ResNet's pre-activation blocks) contribute
  nothing.

  Example:
    >>> import models
    >>> sets = models.coupled_scales(models.create('resnet8'))
    >>> sets[0]
    ('bn1/scale', 'layer1_block0/bn2/scale')
  """
  sets = []
  for space in _plan(model).spaces:
    paths = tuple(
        f'{w.bn}/{leaf}'
        for step in space.steps
        for w in step.writers
        if w.bn is not None
        for leaf in (('scale', 'bias') if shifts else ('scale',))
    )
    if paths:
      sets.append(paths)
  return tuple(sets)


@dataclasses.dataclass
class _Decision:
  """What :func:`compact` decided for one channel space (boolean masks over
  its channels) and the constant each step of it carries."""

  space: _Space
  writers: List[_Writer]
  zero: Dict[str, np.ndarray]
  all_zero: np.ndarray
  blocked: np.ndarray
  removable: np.ndarray
  minimum: np.ndarray
  padding: np.ndarray
  values: List[np.ndarray]


def compact(
    model: nn.Module,
    variables: Mapping[str, Any],
    eps: float = BN_EPSILON,
    *,
    width_multiple: int = 1,
) -> CompactionResult:
  """Removes all-zero output channels / neurons and builds a smaller model.

  Args:
    model: a LeNet5, LeNet300100, VGG, ResNet or WideResNet module (unbound).
    variables: its variables ``{"params": ..., "batch_stats": ...}``.
    eps: the batch-norm epsilon of the model.
    width_multiple: round every width that compaction reduces up to a
      multiple of this (never above the original width), by keeping some
      removable channels (the lowest-numbered; reported in
      ``kept_padding``). CPU and GPU convolution kernels are often faster
      at such widths than at the exact, smaller one
      (``benchmarks/models_forward.py`` measures it). 1: no padding.

  Returns:
    A :class:`CompactionResult`: ``model`` (same class, narrower widths),
    ``variables`` and the per-layer report. In eval mode
    (``train=False``), ``result.model.apply(result.variables, x)`` equals
    ``model.apply(variables, x)`` up to float rounding.
  """
  if (
      not isinstance(width_multiple, (int, np.integer))
      or isinstance(width_multiple, bool)
      or width_multiple < 1
  ):
    raise ValueError(
        f'width_multiple must be a positive int (1: no padding; e.g. 8), '
        f'got {width_multiple!r}.'
    )
  width_multiple = int(width_multiple)
  plan = _plan(model)
  params = _tree_to_numpy(variables['params'])
  stats = _tree_to_numpy(variables.get('batch_stats', {}))
  orig_params = _tree_to_numpy(variables['params'])
  orig_stats = _tree_to_numpy(variables.get('batch_stats', {}))

  decisions = []
  for space in plan.spaces:
    writers = [w for step in space.steps for w in step.writers]
    zero = {}
    for w in writers:
      zero[w.name] = _zero_outputs(orig_params, w)
    all_zero = np.logical_and.reduce(list(zero.values()))
    values, previous = [], None
    for step in space.steps:
      total = sum(
          _writer_constant(orig_params, orig_stats, w, eps)
          for w in step.writers
      )
      if step.residual:
        total = total + previous
      previous = np.maximum(total, 0.0) if step.relu else total
      values.append(previous)
    blocked = np.zeros_like(all_zero)
    for step, value in zip(space.steps, values):
      for r in step.readers:
        if not r.exact or not _absorbs(orig_params, r):
          seen = _reader_input(orig_params, orig_stats, r, value, eps)
          blocked |= all_zero & (seen != 0)
    removable = all_zero & ~blocked
    minimum = np.zeros_like(removable)
    if removable.all():
      minimum[0] = True
      removable[0] = False
    padding = np.zeros_like(removable)
    kept = int((~removable).sum())
    if removable.any() and kept % width_multiple:
      target = min(removable.size, -(-kept // width_multiple) * width_multiple)
      padding[np.flatnonzero(removable)[: target - kept]] = True
      removable &= ~padding
    decisions.append(
        _Decision(
            space,
            writers,
            zero,
            all_zero,
            blocked,
            removable,
            minimum,
            padding,
            values,
        )
    )

  report, new_widths = [], {}
  for d in decisions:
    for step, value in zip(d.space.steps, d.values):
      for reader in step.readers:
        constant = np.where(
            d.removable,
            _reader_input(orig_params, orig_stats, reader, value, eps),
            0.0,
        )
        if np.any(constant != 0):
          _fold(params, stats, reader, constant)
    keep = ~d.removable
    pre_bns = set()
    for step in d.space.steps:
      for w in step.writers:
        _slice_writer(params, stats, w, keep)
      for reader in step.readers:
        _slice_reader(params, reader, keep)
        if reader.pre_bn is not None and reader.pre_bn not in pre_bns:
          pre_bns.add(reader.pre_bn)
          _slice_bn(params, stats, reader.pre_bn, keep)
    new_widths[d.space.name] = int(keep.sum())
    idx = lambda mask: tuple(int(i) for i in np.flatnonzero(mask))
    for w in d.writers:
      report.append(
          LayerCompaction(
              name=w.name,
              space=d.space.name,
              channels=int(keep.shape[0]),
              kept=int(keep.sum()),
              zero=idx(d.zero[w.name]),
              removed=idx(d.removable),
              kept_residual=idx(d.zero[w.name] & ~d.all_zero),
              kept_constant=idx(d.blocked),
              kept_minimum=idx(d.minimum),
              kept_padding=idx(d.padding),
          )
      )

  order = {}
  for path in traverse_util.flatten_dict(dict(variables['params']), sep='/'):
    order.setdefault(path.rsplit('/', 1)[0], len(order))
  report.sort(key=lambda layer: order[layer.name])
  new_variables = {'params': jax.tree.map(jnp.asarray, params)}
  if 'batch_stats' in variables:
    new_variables['batch_stats'] = jax.tree.map(jnp.asarray, stats)
  for key in variables:
    if key not in new_variables:
      new_variables[key] = variables[key]
  return CompactionResult(
      plan.rebuild(new_widths), new_variables, tuple(report)
  )

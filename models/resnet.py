"""ResNet-18/34/50 (torchvision layout) with a CIFAR or an ImageNet stem."""

import dataclasses
import functools
from typing import Callable, Optional, Sequence, Tuple

import jax.numpy as jnp
from flax import linen as nn

from .layers import (
    Dtype,
    ModuleDef,
    conv_and_norm,
    default_kernel_init,
    projection_shortcut,
)

STEMS = ('cifar', 'imagenet')


class BasicBlock(nn.Module):
  """Basic residual block: 3x3 ``conv1``/``bn1``/ReLU, 3x3 ``conv2``/``bn2``.

  The shortcut is the identity, or ``downsample_conv`` (1x1, strided) +
  ``downsample_bn`` when ``projection`` is set; ReLU after the sum.

  Attributes:
    widths: inner widths, ``(conv1 channels,)``.
    features: output channels (the width of the residual stream).
    conv: conv constructor (bias-free ``nn.Conv`` partial).
    norm: batch-norm constructor.
    strides: stride of ``conv1`` and of the projection.
    projection: use a projection shortcut.
  """

  expansion = 1
  widths: Sequence[int]
  features: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  projection: bool = False
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x):
    y = self.conv(
        self.widths[0], (3, 3), self.strides, padding=1, name='conv1'
    )(x)
    y = nn.relu(self.norm(name='bn1')(y))
    y = self.conv(self.features, (3, 3), 1, padding=1, name='conv2')(y)
    y = self.norm(name='bn2', scale_init=_last_scale_init(self))(y)
    return nn.relu(_shortcut(self, x) + y)


class BottleneckBlock(nn.Module):
  """Bottleneck block (torchvision v1.5: the stride is on the 3x3 conv).

  1x1 ``conv1``/``bn1``/ReLU, 3x3 ``conv2``/``bn2``/ReLU, 1x1 ``conv3``/``bn3``,
  plus the identity or a ``downsample_conv``/``downsample_bn`` projection;
  ReLU after the sum.

  Attributes:
    widths: inner widths ``(conv1 channels, conv2 channels)``.
    features: output channels (``4 x`` the inner width in the standard model).
    conv: conv constructor.
    norm: batch-norm constructor.
    strides: stride of ``conv2`` and of the projection.
    projection: use a projection shortcut.
  """

  expansion = 4
  widths: Sequence[int]
  features: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  projection: bool = False
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x):
    y = self.conv(self.widths[0], (1, 1), 1, padding=0, name='conv1')(x)
    y = nn.relu(self.norm(name='bn1')(y))
    y = self.conv(
        self.widths[1], (3, 3), self.strides, padding=1, name='conv2'
    )(y)
    y = nn.relu(self.norm(name='bn2')(y))
    y = self.conv(self.features, (1, 1), 1, padding=0, name='conv3')(y)
    y = self.norm(name='bn3', scale_init=_last_scale_init(self))(y)
    return nn.relu(_shortcut(self, x) + y)


def _shortcut(block, x):
  """The identity, or the block's projection (``downsample_conv`` and
  ``downsample_bn``)."""
  if not block.projection:
    return x
  return projection_shortcut(
      x,
      block.conv,
      block.features,
      block.strides,
      'downsample_conv',
      block.norm,
      'downsample_bn',
  )


def _last_scale_init(block):
  return (
      nn.initializers.zeros_init()
      if block.zero_init_residual
      else nn.initializers.ones_init()
  )


@dataclasses.dataclass(frozen=True)
class ResNetWidths:
  """The resolved channel configuration of a :class:`ResNet`.

  Attributes:
    stem: channels of the stem conv.
    stages: residual-stream width of each stage.
    blocks: ``blocks[i][j]`` = inner widths of block ``j`` of stage ``i``.
    projections: whether block 0 of each stage has a projection shortcut.
  """

  stem: int
  stages: Tuple[int, ...]
  blocks: Tuple[Tuple[Tuple[int, ...], ...], ...]
  projections: Tuple[bool, ...]


def resolve_widths(model: 'ResNet') -> ResNetWidths:
  """Fills in the defaults of a ResNet's width fields."""
  expansion = model.block_cls.expansion
  n_inner = 1 if expansion == 1 else 2
  base = [model.num_filters * 2**i for i in range(len(model.stage_sizes))]
  stem = model.stem_width if model.stem_width is not None else model.num_filters
  stages = (
      tuple(model.stage_widths)
      if model.stage_widths is not None
      else tuple(b * expansion for b in base)
  )
  if model.block_widths is not None:
    blocks = tuple(
        tuple(tuple(w) for w in stage) for stage in model.block_widths
    )
  else:
    blocks = tuple(
        tuple((b,) * n_inner for _ in range(n))
        for b, n in zip(base, model.stage_sizes)
    )
  if (
      len(stages) != len(model.stage_sizes)
      or len(blocks) != len(stages)
      or any(
          len(bs) != n or any(len(w) != n_inner for w in bs)
          for bs, n in zip(blocks, model.stage_sizes)
      )
  ):
    raise ValueError(
        f'ResNet widths do not match stage_sizes={tuple(model.stage_sizes)}: '
        f'stage_widths={stages}, block_widths={blocks} (each block needs '
        f'{n_inner} inner width(s)).'
    )
  if model.projections is not None:
    projections = tuple(bool(p) for p in model.projections)
  else:
    ins = (stem,) + stages[:-1]
    projections = tuple(
        i > 0 or c_in != c_out
        for i, (c_in, c_out) in enumerate(zip(ins, stages))
    )
  return ResNetWidths(stem, stages, blocks, projections)


class ResNet(nn.Module):
  """ResNet v1.5 in the torchvision layout, with a CIFAR or an ImageNet stem.

  Layer names: ``conv1``/``bn1`` (stem), ``layer{i}_block{j}/conv1`` ...
  (stages numbered from 1, blocks from 0), ``.../downsample_conv`` and
  ``.../downsample_bn`` for projection shortcuts, and ``fc``. Convolutions have
  no bias; the classifier has one.

  Attributes:
    stage_sizes: number of blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
    block_cls: :class:`BasicBlock` or :class:`BottleneckBlock`.
    num_classes: number of logits.
    stem: ``"cifar"`` (3x3 conv, stride 1, no max-pool) or ``"imagenet"``
      (7x7 stride-2 conv + 3x3 stride-2 max-pool).
    num_filters: base width (64); stage ``i`` has inner width
      ``num_filters * 2**i``.
    stem_width, stage_widths, block_widths, projections: explicit channel
      configuration overriding ``num_filters`` (see :class:`ResNetWidths`);
      channel compaction builds smaller models through them.
    kernel_init: initializer of every conv and dense kernel.
    zero_init_residual: initialise the last BN scale of each block at zero.
    axis_name: pmap/vmap axis over which batch statistics are averaged.
    dtype: computation dtype (e.g. ``jnp.bfloat16``); logits are float32.
    param_dtype: parameter dtype.
  """

  stage_sizes: Sequence[int]
  block_cls: ModuleDef = BasicBlock
  num_classes: int = 10
  stem: str = 'cifar'
  num_filters: int = 64
  stem_width: Optional[int] = None
  stage_widths: Optional[Sequence[int]] = None
  block_widths: Optional[Sequence[Sequence[Sequence[int]]]] = None
  projections: Optional[Sequence[bool]] = None
  kernel_init: Callable = default_kernel_init
  zero_init_residual: bool = False
  axis_name: Optional[str] = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Logits for NHWC images ``x``; ``train`` selects batch statistics."""
    if self.stem not in STEMS:
      raise ValueError(f'stem must be one of {STEMS}, got {self.stem!r}')
    widths = resolve_widths(self)
    conv, norm = conv_and_norm(self, train)
    if self.stem == 'cifar':
      x = conv(widths.stem, (3, 3), 1, padding=1, name='conv1')(x)
    else:
      x = conv(widths.stem, (7, 7), 2, padding=3, name='conv1')(x)
    x = nn.relu(norm(name='bn1')(x))
    if self.stem == 'imagenet':
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, n_blocks in enumerate(self.stage_sizes):
      for j in range(n_blocks):
        x = self.block_cls(
            widths=tuple(widths.blocks[i][j]),
            features=widths.stages[i],
            conv=conv,
            norm=norm,
            strides=2 if i > 0 and j == 0 else 1,
            projection=j == 0 and widths.projections[i],
            zero_init_residual=self.zero_init_residual,
            name=f'layer{i + 1}_block{j}',
        )(x)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(
        self.num_classes,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name='fc',
    )(x)
    return jnp.asarray(x, jnp.float32)


#: ResNet-18: :class:`ResNet` with basic blocks, stages of (2, 2, 2, 2).
ResNet18 = functools.partial(
    ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock
)
#: ResNet-34: :class:`ResNet` with basic blocks, stages of (3, 4, 6, 3).
ResNet34 = functools.partial(
    ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock
)
#: ResNet-50: :class:`ResNet` with bottleneck blocks (v1.5), stages of
#: (3, 4, 6, 3).
ResNet50 = functools.partial(
    ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock
)

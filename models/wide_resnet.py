"""Wide-ResNet (Zagoruyko & Komodakis 2016), pre-activation, for CIFAR."""

import functools
from typing import Callable, Optional, Sequence

import jax.numpy as jnp
from flax import linen as nn

from .layers import (
    Dtype,
    ModuleDef,
    conv_and_norm,
    default_kernel_init,
    projection_shortcut,
)


class WideBasicBlock(nn.Module):
  """Pre-activation wide block.

  ``o = relu(bn1(x))``; ``y = conv2(dropout(relu(bn2(conv1(o)))))``; the
  output is ``y + x``, or ``y + shortcut_conv(o)`` (1x1, strided) when the
  shape changes.

  Attributes:
    features: output channels.
    width: channels of ``conv1`` (= ``features`` in the standard model).
    conv: conv constructor.
    norm: batch-norm constructor.
    strides: stride of ``conv1`` and of the shortcut.
    projection: use the 1x1 projection shortcut.
    dropout_rate: dropout between the two convolutions.
    train: dropout is active when training.
  """

  features: int
  conv: ModuleDef
  norm: ModuleDef
  width: Optional[int] = None
  strides: int = 1
  projection: bool = False
  dropout_rate: float = 0.0
  train: bool = False

  @nn.compact
  def __call__(self, x):
    o = nn.relu(self.norm(name='bn1')(x))
    width = self.width if self.width is not None else self.features
    y = self.conv(width, (3, 3), self.strides, padding=1, name='conv1')(o)
    y = nn.relu(self.norm(name='bn2')(y))
    if self.dropout_rate > 0:
      y = nn.Dropout(self.dropout_rate, deterministic=not self.train)(y)
    y = self.conv(self.features, (3, 3), 1, padding=1, name='conv2')(y)
    if self.projection:
      x = projection_shortcut(
          o, self.conv, self.features, self.strides, 'shortcut_conv'
      )
    return x + y


class WideResNet(nn.Module):
  """WRN-``depth``-``widen_factor`` (pre-activation, as in the authors' code).

  ``conv1`` (3x3, 16) -> three groups of ``(depth - 4) / 6`` wide blocks of
  width ``16k``, ``32k``, ``64k`` (groups 2 and 3 start with stride 2) ->
  ``bn`` + ReLU -> global average pool -> ``fc``. Convolutions have no bias.
  Block names: ``group{g}_block{b}`` (g from 1, b from 0).

  Attributes:
    depth: total depth, ``6n + 4`` (28).
    widen_factor: ``k`` (10).
    num_classes: number of logits.
    dropout_rate: dropout between the convolutions of each block (the paper
      uses 0.3 on CIFAR; 0 disables it).
    widths: explicit (stem, group1, group2, group3) widths overriding the
      defaults ``(16, 16k, 32k, 64k)``.
    block_widths: ``block_widths[g][b]`` = channels of ``conv1`` of block
      ``b`` of group ``g`` (default: the group width); channel compaction
      builds smaller models through it.
    projections: whether the first block of each group has the 1x1
      projection shortcut (default: where the stride or the width changes);
      compaction keeps the original's, whatever the new widths.
    kernel_init: initializer of every conv and dense kernel.
    axis_name: pmap/vmap axis over which batch statistics are averaged.
    dtype: computation dtype; logits are float32.
    param_dtype: parameter dtype.
  """

  depth: int = 28
  widen_factor: int = 10
  num_classes: int = 10
  dropout_rate: float = 0.0
  widths: Optional[Sequence[int]] = None
  block_widths: Optional[Sequence[Sequence[int]]] = None
  projections: Optional[Sequence[bool]] = None
  kernel_init: Callable = default_kernel_init
  axis_name: Optional[str] = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Logits for NHWC images ``x``; ``train`` enables dropout / batch stats."""
    if (self.depth - 4) % 6 != 0:
      raise ValueError(f'WideResNet depth must be 6n + 4, got {self.depth}')
    n = (self.depth - 4) // 6
    k = self.widen_factor
    widths = (
        tuple(self.widths)
        if self.widths is not None
        else (16, 16 * k, 32 * k, 64 * k)
    )
    conv, norm = conv_and_norm(self, train)
    x = conv(widths[0], (3, 3), 1, padding=1, name='conv1')(x)
    in_width = widths[0]
    for g in range(3):
      for b in range(n):
        strides = 2 if g > 0 and b == 0 else 1
        if self.projections is not None:
          projection = b == 0 and bool(self.projections[g])
        else:
          projection = b == 0 and (strides != 1 or in_width != widths[g + 1])
        x = WideBasicBlock(
            features=widths[g + 1],
            conv=conv,
            norm=norm,
            strides=strides,
            width=(
                self.block_widths[g][b]
                if self.block_widths is not None
                else None
            ),
            projection=projection,
            dropout_rate=self.dropout_rate,
            train=train,
            name=f'group{g + 1}_block{b}',
        )(x)
        in_width = widths[g + 1]
    x = nn.relu(norm(name='bn')(x))
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(
        self.num_classes,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name='fc',
    )(x)
    return jnp.asarray(x, jnp.float32)


#: Wide-ResNet-28-10: :class:`WideResNet` of depth 28, widening factor 10.
WRN28_10 = functools.partial(WideResNet, depth=28, widen_factor=10)

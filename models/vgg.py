"""VGG-11/13/16/19 with batch norm, in a CIFAR and an ImageNet form."""

import functools
from typing import Callable, Optional, Sequence, Union

import jax.numpy as jnp
from flax import linen as nn

from .layers import (
    Dtype,
    adaptive_avg_pool,
    conv_and_norm,
    default_kernel_init,
)

VARIANTS = ('cifar', 'imagenet')

#: Feature configurations (torchvision's ``cfgs``): conv widths, 'M' = 2x2
#: max-pool.
CONFIGS = {
    11: (64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'),
    13: (
        64,
        64,
        'M',
        128,
        128,
        'M',
        256,
        256,
        'M',
        512,
        512,
        'M',
        512,
        512,
        'M',
    ),
    16: (
        64,
        64,
        'M',
        128,
        128,
        'M',
        256,
        256,
        256,
        'M',
        512,
        512,
        512,
        'M',
        512,
        512,
        512,
        'M',
    ),
    19: (
        64,
        64,
        'M',
        128,
        128,
        'M',
        256,
        256,
        256,
        256,
        'M',
        512,
        512,
        512,
        512,
        'M',
        512,
        512,
        512,
        512,
        'M',
    ),
}


class VGG(nn.Module):
  """VGG with batch norm (``vgg*_bn``).

  Features: for each width in ``cfg`` a 3x3 conv (padding 1, with bias as in
  torchvision) ``conv{k}`` + ``bn{k}`` + ReLU (k = 1, 2, ...), and a 2x2
  max-pool for each ``'M'``.

  Classifier:
    * ``variant="cifar"``: global average pool (the identity flatten of the
      1x1x512 map of a 32x32 input) and one dense layer ``fc`` (512 -> classes).
    * ``variant="imagenet"``: adaptive average pool to 7x7, flatten (25088),
      ``fc1`` (4096) ReLU dropout, ``fc2`` (4096) ReLU dropout, ``fc3``.

  Attributes:
    cfg: feature configuration (see :data:`CONFIGS`); channel compaction
      builds smaller models through it.
    num_classes: number of logits.
    variant: ``"cifar"`` or ``"imagenet"``.
    hidden: widths of the ImageNet classifier's hidden layers.
    dropout_rate: dropout of the ImageNet classifier (0.5).
    conv_bias: give the convolutions a bias (torchvision does; it is redundant
      before batch norm).
    kernel_init: initializer of every conv and dense kernel.
    axis_name: pmap/vmap axis over which batch statistics are averaged.
    dtype: computation dtype; logits are float32.
    param_dtype: parameter dtype.
  """

  cfg: Sequence[Union[int, str]]
  num_classes: int = 10
  variant: str = 'cifar'
  hidden: Sequence[int] = (4096, 4096)
  dropout_rate: float = 0.5
  conv_bias: bool = True
  kernel_init: Callable = default_kernel_init
  axis_name: Optional[str] = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Logits for NHWC images ``x``; ``train`` enables dropout / batch stats."""
    if self.variant not in VARIANTS:
      raise ValueError(
          f'variant must be one of {VARIANTS}, got {self.variant!r}'
      )
    conv, norm = conv_and_norm(self, train, conv_bias=self.conv_bias)
    dense = functools.partial(
        nn.Dense,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
    )
    k = 0
    for item in self.cfg:
      if item == 'M':
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        continue
      k += 1
      x = conv(item, (3, 3), padding=1, name=f'conv{k}')(x)
      x = nn.relu(norm(name=f'bn{k}')(x))
    if self.variant == 'cifar':
      x = jnp.mean(x, axis=(1, 2))
      x = dense(self.num_classes, name='fc')(x)
    else:
      x = adaptive_avg_pool(x, (7, 7))
      x = x.reshape((x.shape[0], -1))
      for i, width in enumerate(self.hidden):
        x = nn.relu(dense(width, name=f'fc{i + 1}')(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = dense(self.num_classes, name=f'fc{len(self.hidden) + 1}')(x)
    return jnp.asarray(x, jnp.float32)


#: VGG-11 with batch norm: :class:`VGG` with the configuration ``CONFIGS[11]``.
VGG11 = functools.partial(VGG, cfg=CONFIGS[11])
#: VGG-13 with batch norm: :class:`VGG` with the configuration ``CONFIGS[13]``.
VGG13 = functools.partial(VGG, cfg=CONFIGS[13])
#: VGG-16 with batch norm: :class:`VGG` with the configuration ``CONFIGS[16]``.
VGG16 = functools.partial(VGG, cfg=CONFIGS[16])
#: VGG-19 with batch norm: :class:`VGG` with the configuration ``CONFIGS[19]``.
VGG19 = functools.partial(VGG, cfg=CONFIGS[19])

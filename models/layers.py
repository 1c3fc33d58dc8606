"""Pieces shared by the model definitions: default initializer, the conv and
batch-norm constructors, the projection shortcut, and pooling."""

import functools
from typing import Any, Optional, Sequence

import jax.numpy as jnp
from flax import linen as nn

ModuleDef = Any
Dtype = Any

#: Default kernel initializer of every conv and dense layer: He et al.'s
#: fan-in normal initialization (variance 2 / fan_in, truncated normal).
#: The RDA initialization of scale ``s`` is
#: ``jax.nn.initializers.variance_scaling(s, "fan_in", "uniform")``
#: (``rda_optax.rda_uniform(s)``); pass it as ``kernel_init``.
default_kernel_init = nn.initializers.he_normal()

#: Batch-norm defaults shared by all models (PyTorch's momentum 0.1 and
#: epsilon 1e-5; Flax's ``momentum`` is the decay of the running average).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv_and_norm(
    model: nn.Module, train: bool, conv_bias: bool = False
) -> tuple[ModuleDef, ModuleDef]:
  """The conv and batch-norm constructors of ``model``'s layers.

  Both take ``model``'s ``kernel_init`` (conv), ``axis_name`` (batch norm),
  ``dtype`` and ``param_dtype``; batch norm uses batch statistics when
  ``train`` and the running averages otherwise, with :data:`BN_MOMENTUM`
  and :data:`BN_EPSILON`.

  Args:
    model: a module with the fields ``kernel_init``, ``axis_name``,
      ``dtype`` and ``param_dtype`` (ResNet, VGG, Wide-ResNet).
    train: whether batch norm normalizes with the batch's statistics.
    conv_bias: give the convolutions a bias (redundant before batch norm;
      torchvision's VGG has one).

  Returns:
    ``(conv, norm)``: ``functools.partial`` of ``nn.Conv`` and
    ``nn.BatchNorm``; call them with the layer's own arguments, e.g.
    ``conv(64, (3, 3), 2, padding=1, name='conv1')``.
  """
  conv = functools.partial(
      nn.Conv,
      use_bias=conv_bias,
      kernel_init=model.kernel_init,
      dtype=model.dtype,
      param_dtype=model.param_dtype,
  )
  norm = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=BN_MOMENTUM,
      epsilon=BN_EPSILON,
      axis_name=model.axis_name,
      dtype=model.dtype,
      param_dtype=model.param_dtype,
  )
  return conv, norm


def projection_shortcut(
    x: jnp.ndarray,
    conv: ModuleDef,
    features: int,
    strides: int,
    name: str,
    norm: Optional[ModuleDef] = None,
    norm_name: Optional[str] = None,
) -> jnp.ndarray:
  """A residual block's projection: a strided 1x1 conv ``name`` of ``x``,
  then batch norm ``norm_name`` when ``norm`` is given (ResNet's
  ``downsample_conv`` / ``downsample_bn``; Wide-ResNet's ``shortcut_conv``
  has none).

  Call it inside the block's ``nn.compact`` method: the layers are the
  block's own.
  """
  y = conv(features, (1, 1), strides, padding=0, name=name)(x)
  return y if norm is None else norm(name=norm_name)(y)


def adaptive_avg_pool(
    x: jnp.ndarray, output_size: Sequence[int]
) -> jnp.ndarray:
  """Adaptive average pooling of an NHWC tensor (``torch.nn.AdaptiveAvgPool2d``).

  Output cell ``i`` averages input rows ``floor(i*H/out)`` to
  ``ceil((i+1)*H/out)`` (and likewise for columns), so it is the identity when
  the input already has ``output_size`` and replicates small inputs.

  Args:
    x: array of shape (N, H, W, C).
    output_size: (out_h, out_w).

  Returns:
    Array of shape (N, out_h, out_w, C).
  """
  _, height, width, _ = x.shape
  out_h, out_w = output_size
  if (height, width) == (out_h, out_w):
    return x

  def bounds(i, size, out):
    return (i * size) // out, -((-(i + 1) * size) // out)

  rows = []
  for i in range(out_h):
    h0, h1 = bounds(i, height, out_h)
    cols = []
    for j in range(out_w):
      w0, w1 = bounds(j, width, out_w)
      cols.append(jnp.mean(x[:, h0:h1, w0:w1, :], axis=(1, 2)))
    rows.append(jnp.stack(cols, axis=1))
  return jnp.stack(rows, axis=1)

"""Pieces shared by the model definitions: default initializer and pooling."""

from typing import Any, Sequence

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

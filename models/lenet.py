"""LeNet-5-Caffe and LeNet-300-100 for MNIST-sized inputs."""

from typing import Callable, Optional, Sequence

import jax.numpy as jnp
from flax import linen as nn

from .layers import Dtype, default_kernel_init


class LeNet5(nn.Module):
  """LeNet-5 in its Caffe form (the model of the sparsity literature).

  ``conv1`` 5x5 (20) -> 2x2 max-pool -> ``conv2`` 5x5 (50) -> 2x2 max-pool ->
  flatten -> ``fc1`` (500) -> ReLU -> ``fc2`` (classes). Convolutions are VALID
  and have biases; as in Caffe's ``lenet_train_test.prototxt`` there is no
  activation after the convolutions unless ``conv_relu=True``. For 28x28x1
  inputs and 10 classes it has 431,080 parameters.

  Attributes:
    num_classes: number of output logits.
    features: widths (conv1 channels, conv2 channels, fc1 neurons); channel
      compaction builds smaller models through this field.
    conv_relu: apply a ReLU after each convolution (before pooling).
    kernel_init: initializer of every kernel.
    dtype: computation dtype (e.g. ``jnp.bfloat16``); logits are float32.
    param_dtype: parameter dtype.
    axis_name: accepted for a uniform interface; unused (no batch norm).
  """

  num_classes: int = 10
  features: Sequence[int] = (20, 50, 500)
  conv_relu: bool = False
  kernel_init: Callable = default_kernel_init
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Logits for NHWC inputs ``x`` (``train`` is accepted for uniformity)."""
    del train  # no dropout or batch norm
    conv = lambda f, name: nn.Conv(
        f,
        (5, 5),
        padding='VALID',
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=name,
    )
    dense = lambda f, name: nn.Dense(
        f,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=name,
    )
    act = nn.relu if self.conv_relu else (lambda y: y)
    x = conv(self.features[0], 'conv1')(x)
    x = nn.max_pool(act(x), (2, 2), strides=(2, 2))
    x = conv(self.features[1], 'conv2')(x)
    x = nn.max_pool(act(x), (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(dense(self.features[2], 'fc1')(x))
    x = dense(self.num_classes, 'fc2')(x)
    return jnp.asarray(x, jnp.float32)


class LeNet300100(nn.Module):
  """LeNet-300-100: a multilayer perceptron 784 -> 300 -> 100 -> classes.

  Inputs of any shape (N, ...) are flattened, so (N, 28, 28, 1) and (N, 784)
  both work. ReLU after each hidden layer; 266,610 parameters for MNIST.

  Attributes:
    num_classes: number of output logits.
    features: hidden widths (``fc1``, ``fc2``).
    kernel_init: initializer of every kernel.
    dtype: computation dtype; logits are float32.
    param_dtype: parameter dtype.
    axis_name: accepted for a uniform interface; unused (no batch norm).
  """

  num_classes: int = 10
  features: Sequence[int] = (300, 100)
  kernel_init: Callable = default_kernel_init
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Logits for inputs ``x`` of shape (N, ...)."""
    del train
    x = x.reshape((x.shape[0], -1))
    for i, width in enumerate(self.features):
      x = nn.Dense(
          width,
          kernel_init=self.kernel_init,
          dtype=self.dtype,
          param_dtype=self.param_dtype,
          name=f'fc{i + 1}',
      )(x)
      x = nn.relu(x)
    x = nn.Dense(
        self.num_classes,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f'fc{len(self.features) + 1}',
    )(x)
    return jnp.asarray(x, jnp.float32)

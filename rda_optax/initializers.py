"""Weight initializers for regularized dual averaging.

RDA centres its proximal term at the initial weights ``w0`` (see
:func:`rda_optax.rda`), so the scale of ``w0`` matters much more than for
SGD: with batch norm after every convolution a larger initial scale makes the
fixed ℓ1 threshold relatively smaller. He et al. (2020, §4.1) draw ``w0``
uniformly with a bound that grows with a scale ``s`` and shrinks with the
fan-in (a zero ``w0`` cannot work for a ReLU network: their Proposition 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def rda_uniform(
    scale: float = 1.0,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    dtype: jax.typing.DTypeLike = jnp.float32,
) -> jax.nn.initializers.Initializer:
  r"""The RDA paper's uniform initializer, variance ``scale / fan_in``.

  Draws every weight independently from

  .. math::

    w \sim \mathcal{U}(-a, a), \qquad a = \sqrt{3 s / n_{\text{in}}},
    \qquad \operatorname{Var}(w) = s / n_{\text{in}},

  where ``n_in`` is the fan-in: the input width ``c_in`` of a dense kernel of
  shape ``(c_in, c_out)``, and ``k_h·k_w·c_in`` for a convolution kernel in
  Flax's layout ``(k_h, k_w, c_in, c_out)``. The paper's formula (29) did not
  survive extraction; we read it as variance ``s / n_in``, which is exactly
  :func:`jax.nn.initializers.variance_scaling` with ``mode="fan_in"`` and
  ``distribution="uniform"``. ``s = 2`` is He et al.'s scale; the paper finds
  ``s = 1, 2`` fail with RDA and uses ``s = 10`` (ResNet-18, CIFAR-10),
  ``20`` (VGG-16bn, CIFAR-10) or ``2`` (ResNet-18, ImageNet), among others
  (Tables 1 and 3).

  The result has the Flax/JAX initializer signature ``(key, shape, dtype)``,
  so it can be passed as ``kernel_init`` to ``flax.linen.Dense`` or
  ``flax.linen.Conv``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> init = rda_uniform(scale=10.0)
    >>> w = init(jax.random.key(0), (3, 3, 16, 32))   # fan_in = 3*3*16 = 144
    >>> bound = (3 * 10.0 / 144) ** 0.5
    >>> bool(jnp.all(jnp.abs(w) <= bound)), w.dtype
    (True, dtype('float32'))

  Args:
    scale: the variance scale ``s > 0``.
    in_axis: axis or axes of the kernel shape that make up the fan-in
      (Flax layouts: ``-2``, with every leading axis a receptive-field axis).
    out_axis: axis or axes of the fan-out.
    batch_axis: axes to ignore when computing fans (e.g. a stacked layer axis).
    dtype: the default dtype of the weights, overridden by a ``dtype`` passed
      to the initializer.

  Returns:
    An initializer ``init(key, shape, dtype=dtype) -> jax.Array``.

  Raises:
    ValueError: if ``scale`` is not a finite positive number.

  References:
    He, Jia, Xu, Zhang & Zhao, `Make ℓ1 Regularization Effective in Training
    Sparse CNN <https://arxiv.org/abs/1807.04222>`_, Comput. Optim. Appl.,
    2020 (§4.1, Tables 1-3).
    He, Zhang, Ren & Sun, `Delving Deep into Rectifiers
    <https://arxiv.org/abs/1502.01852>`_, 2015.
  """
  try:
    value = float(scale)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f'rda_uniform: scale must be a positive number, got {scale!r}.'
    ) from e
  if not (math.isfinite(value) and value > 0):
    raise ValueError(
        f'rda_uniform: scale must be a finite positive number, got {scale!r}.'
    )
  return jax.nn.initializers.variance_scaling(
      value,
      'fan_in',
      'uniform',
      in_axis=in_axis,
      out_axis=out_axis,
      batch_axis=batch_axis,
      dtype=dtype,
  )

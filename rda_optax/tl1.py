r"""Transformed ℓ1's closed-form thresholding and its penalty.

``ρ_a(x) = (a+1)|x|/(a+|x|)``; the prox of ``t·ρ_a`` is Zhang & Xin's
thresholding, a root of a cubic written with an arccos and a cosine. XLA
computes ``jnp.arccos`` on a CPU as a scalar ``atan2`` call per entry (5 ns
an entry on a 2-core EPYC) and its cosine with a general range reduction:
an RMDA step with transformed ℓ1 on the ResNet-18-sized tree took 17 SGD
steps (66 ms), most of it there. :func:`arccos` here is Cephes'
single-precision one (a polynomial and a square root) and the cosine of
``φ/3 <= π/3`` a short Taylor series, both of which XLA vectorizes: 2.75
SGD steps (11 ms; ``python -m benchmarks.optimizer_step``), with the same
float32 errors.

References:
  Zhang & Xin, *Minimization of transformed L1 penalty: closed form
  representation and iterative thresholding algorithms*, Communications in
  Mathematical Sciences 15(2), 2017.
  Moshier, *Cephes Mathematical Library* (``acosf``, ``asinf``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# asin(x) = x + x·z·P(z), z = x², for |x| <= 1/2 (Cephes' asinf).
_ASIN = (4.2163199048e-2, 2.4181311049e-2, 4.5470025998e-2, 7.4953002686e-2)
_ASIN_LAST = 1.6666752422e-1


def _asin_half(x: jax.Array) -> jax.Array:
  """``asin(x)`` for ``|x| <= 1/2``."""
  z = x * x
  p = jnp.asarray(_ASIN[0], x.dtype)
  for c in _ASIN[1:] + (_ASIN_LAST,):
    p = p * z + c
  return x + x * z * p


def arccos(x: jax.Array) -> jax.Array:
  """``arccos(x)`` for ``x`` in ``[-1, 1]`` (NaN outside), in float32
  (float64 inputs: ``jnp.arccos``, to float64's precision), from
  elementwise arithmetic and one square root: within 3.1e-7 (1.3 float32
  spacings at π) of float64's arccos on ``[-1, 1]``, XLA's own within
  2.6e-7 (``tests/test_tl1.py``).

  Example:
    >>> import jax.numpy as jnp
    >>> from rda_optax import tl1
    >>> tl1.arccos(jnp.array([1.0, 0.0, -1.0]))
    Array([0.       , 1.5707964, 3.1415927], dtype=float32)
  """
  x = jnp.asarray(x)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  if x.dtype == jnp.float64:  # The polynomial is float32's.
    return jnp.arccos(x)
  ax = jnp.abs(x)
  outer = ax > 0.5
  # |x| > 1/2: acos(|x|) = 2·asin(√((1−|x|)/2)), its argument at most 1/2.
  s = jnp.sqrt(jnp.maximum(0.5 * (1 - ax), 0))
  a = _asin_half(jnp.where(outer, s, x))
  pi = jnp.asarray(math.pi, x.dtype)
  out = jnp.where(outer, jnp.where(x < 0, pi - 2 * a, 2 * a), pi / 2 - a)
  return jnp.where(ax <= 1, out, jnp.nan)


def _cos_third(phi: jax.Array) -> jax.Array:
  """``cos(φ/3)`` for ``φ`` in ``[0, π]``: its Taylor series in
  ``θ = φ/3 <= π/3`` to ``θ¹⁰`` (the next term is below 1e-8; float64:
  ``jnp.cos``)."""
  if phi.dtype == jnp.float64:
    return jnp.cos(phi / 3)
  u = jnp.square(phi / 3)
  p = jnp.asarray(-1 / 3628800, phi.dtype)
  for c in (1 / 40320, -1 / 720, 1 / 24, -1 / 2, 1.0):
    p = p * u + c
  return p


def tl1_threshold(y: jax.Array, t: jax.Array, a: float) -> jax.Array:
  r"""Prox of ``t·ρ_a`` with ``ρ_a(x) = (a+1)|x|/(a+|x|)`` (Zhang & Xin
  2017): 0 where ``|y|`` is at most the threshold

  .. math::

    \tau = \begin{cases} t(a+1)/a & t \le a^2/(2(a+1)) \\
    \sqrt{2t(a+1)} - a/2 & \text{otherwise,} \end{cases}

  else ``sign(y)·(⅔(a+|y|)·cos(φ/3) − ⅔a + |y|/3)`` with
  ``φ = arccos(1 − 27ta(a+1)/(2(a+|y|)³))``.

  Example:
    >>> import jax.numpy as jnp
    >>> from rda_optax import tl1
    >>> tl1.tl1_threshold(jnp.array([0.5, 3.0]), 0.5, 1.0)
    Array([0.       , 2.9354322], dtype=float32)
  """
  t = jnp.asarray(t, y.dtype)
  ay = jnp.abs(y)
  arg = 1 - 27 * t * a * (a + 1) / (2 * (a + ay) ** 3)
  phi = arccos(jnp.clip(arg, -1, 1)).astype(y.dtype)
  g = jnp.sign(y) * (2 / 3 * (a + ay) * _cos_third(phi) - 2 * a / 3 + ay / 3)
  thr = jnp.where(
      t <= a * a / (2 * (a + 1)),
      t * (a + 1) / a,
      jnp.sqrt(jnp.maximum(2 * t * (a + 1), 0)) - a / 2,
  )
  return jnp.where((ay > thr) & (t > 0), g, jnp.where(t > 0, 0, y))


def tl1_penalty(x: jax.Array, a: float) -> jax.Array:
  """``Σ ρ_a(x_i) = Σ (a+1)|x_i| / (a + |x_i|)``."""
  ax = jnp.abs(x)
  return jnp.sum((a + 1) * ax / (a + ax))

"""Transformed ℓ1's thresholding: its arccos and cosine against float64,
and the thresholding against a float64 transcription of Zhang & Xin's
formula (the prox against brute force: test_regularizers.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rda_optax import tl1


def test_arccos_is_within_float32_rounding_of_float64():
  x = np.concatenate(
      [
          np.linspace(-1, 1, 400_001),
          [-1.0, -0.5, 0.0, 0.5, 1.0],
          np.nextafter(np.float32([-1, -0.5, 0.5, 1]), np.float32(0)),
      ]
  ).astype(np.float32)
  got = np.asarray(tl1.arccos(jnp.asarray(x)), np.float64)
  want = np.arccos(x.astype(np.float64))
  # 3.1e-7: 1.3 float32 spacings at π (XLA's own arccos: 2.6e-7).
  assert np.abs(got - want).max() <= 3.1e-7
  ends = np.asarray(tl1.arccos(jnp.asarray([1.0, -1.0])))
  assert ends[0] == 0.0 and ends[1] == np.float32(np.pi)


def test_arccos_outside_its_domain_and_in_low_precision():
  out = np.asarray(tl1.arccos(jnp.asarray([1.0001, -1.5, np.nan])))
  assert np.isnan(out).all()
  # bfloat16 is computed in float32 (as XLA computes its arccos).
  half = tl1.arccos(jnp.asarray([0.5], jnp.bfloat16))
  assert half.dtype == jnp.float32
  assert float(half[0]) == pytest.approx(np.pi / 3, rel=1e-6)


def test_float64_keeps_its_precision():
  """With float64 enabled the thresholding is float64's (XLA's arccos
  and cosine: the polynomials are float32's)."""
  with jax.enable_x64(True):
    x = np.linspace(-1, 1, 10_001)
    got = np.asarray(tl1.arccos(jnp.asarray(x, jnp.float64)))
    assert np.abs(got - np.arccos(x)).max() < 1e-14
    y = np.random.default_rng(1).normal(size=1000)
    out = np.asarray(tl1.tl1_threshold(jnp.asarray(y), 0.3, 1.0))
    want, _ = _tl1_float64(y, 0.3, 1.0)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-13)


def test_cos_third_is_within_float32_rounding_of_float64():
  phi = np.linspace(0, np.pi, 200_001).astype(np.float32)
  got = np.asarray(tl1._cos_third(jnp.asarray(phi)), np.float64)
  want = np.cos(phi.astype(np.float64) / 3)
  assert np.abs(got - want).max() <= 2e-7  # ≈ one spacing in [0.5, 1].


def _tl1_float64(y, t, a):
  """Zhang & Xin's thresholding, in float64 with NumPy's arccos and cos."""
  ay = np.abs(y)
  arg = 1 - 27 * t * a * (a + 1) / (2 * (a + ay) ** 3)
  phi = np.arccos(np.clip(arg, -1, 1))
  g = np.sign(y) * (2 / 3 * (a + ay) * np.cos(phi / 3) - 2 * a / 3 + ay / 3)
  if t <= a * a / (2 * (a + 1)):
    thr = t * (a + 1) / a
  else:
    thr = np.sqrt(2 * t * (a + 1)) - a / 2
  return np.where(ay > thr, g, 0.0), thr


@pytest.mark.parametrize('a', [0.1, 1.0, 3.0])
@pytest.mark.parametrize('t', [1e-4, 0.02, 0.3, 2.0])  # Both regimes.
def test_thresholding_matches_float64(a, t):
  rng = np.random.default_rng(0)
  y = (rng.normal(size=20_000) * rng.choice([0.01, 0.3, 3.0], 20_000)).astype(
      np.float32
  )
  got = np.asarray(tl1.tl1_threshold(jnp.asarray(y), t, a), np.float64)
  want, thr = _tl1_float64(y.astype(np.float64), t, a)
  # Away from the threshold (where float32 rounding of |y| may decide),
  # the same zeros, and the values within float32 rounding of the
  # formula's terms, of size a + |y| (it subtracts them: XLA's arccos and
  # cosine give the same errors, at most 5.7e-7·(a + |y|) here).
  clear = np.abs(np.abs(y) - thr) > 1e-5 * max(thr, 1.0)
  np.testing.assert_array_equal(got[clear] == 0, want[clear] == 0)
  scale = a + np.abs(y[clear])
  assert np.all(np.abs(got[clear] - want[clear]) <= 1e-6 * scale)

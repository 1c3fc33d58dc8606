"""rda_optax.threshold_keys: order-preserving keys of floats."""

import jax.numpy as jnp
import numpy as np
import pytest

from rda_optax import threshold_keys as keys


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_keys_order_as_the_floats_and_round_trip(dtype):
  """-inf < negatives < ±0 < positives < inf < NaN; -0.0 and +0.0 one key;
  a key gives its float back."""
  x = jnp.asarray(
      [-np.inf, -2.0, -0.5, -0.0, 0.0, 0.25, 3.0, np.inf, np.nan], dtype
  )
  k = np.asarray(keys._to_key(x)).astype(np.int64)
  assert k[3] == k[4]
  assert np.all(np.diff(np.delete(k, 3)) > 0)
  back = keys._from_key(keys._to_key(x[:3]), dtype)
  np.testing.assert_array_equal(np.asarray(back), np.asarray(x[:3]))


def test_flush_and_the_zero_keys_bracket_the_zeros():
  tiny = float(jnp.finfo(jnp.float32).tiny)
  x = jnp.asarray([tiny / 4, -tiny / 4, tiny, 0.0], jnp.float32)
  np.testing.assert_array_equal(
      np.asarray(keys._flush(x)), [0.0, 0.0, tiny, 0.0]
  )
  lo, hi = keys._zero_keys(jnp.float32, jnp.uint32)
  flushed = keys._flush(x)
  inside = keys._between(flushed, lo, hi)
  np.testing.assert_array_equal(np.asarray(inside), [True, True, False, True])


def test_offsets_are_symmetric():
  off = np.asarray(keys._offsets(6, 0.5, 8.0))
  np.testing.assert_allclose(off, -off[::-1])
  assert off[-1] == pytest.approx(8.0) and off[3] == pytest.approx(0.25)

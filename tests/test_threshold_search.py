"""rda_optax.threshold_search: the pivots of a refinement pass (the search
itself is checked against a stable sort through kth_smallest in
test_threshold)."""

import jax
import jax.numpy as jnp
import numpy as np

from rda_optax import threshold_keys
from rda_optax import threshold_search


def _keys(values):
  return threshold_keys._to_key(jnp.asarray(values, jnp.float32))


def test_refinement_pivots_halve_the_bracket_and_isolate_zero():
  """Whatever the counts say, a refinement pass puts a pivot at the middle
  of the bracket's keys (at least a twofold shrink: the bound on the
  passes) and one just below its top (the answer may be the top value);
  with zero inside the bracket, two pivots bracket exactly the zeros."""
  rng = np.random.default_rng(0)
  z_lo, z_hi = threshold_keys._zero_keys(jnp.float32, jnp.uint32)
  refine = jax.jit(
      lambda lo, hi, c_lo, c_hi, k: threshold_search._refine_pivots(
          lo, hi, c_lo, c_hi, k, jnp.float32, jnp.uint32, 6, 1024
      )
  )
  with_zero = 0
  for _ in range(20):
    a, b = np.sort(rng.normal(size=2) * 10.0 ** rng.integers(-6, 3))
    lo, hi = _keys([a, b])
    c_lo, c_hi = jnp.int32(100), jnp.int32(100 + int(rng.integers(5, 10**6)))
    k = jnp.int32(int(rng.integers(int(c_lo) + 1, int(c_hi) + 1)))
    keys = refine(lo, hi, c_lo, c_hi, k)
    keys = np.asarray(keys, np.uint64)
    lo, hi = int(lo), int(hi)
    assert keys.shape == (6,)
    assert lo + (hi - lo) // 2 in keys and hi - 1 in keys
    if lo < int(z_hi) <= hi:
      with_zero += 1
      assert int(z_lo) in keys and int(z_hi) in keys
  assert 0 < with_zero < 20

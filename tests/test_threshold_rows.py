"""rda_optax.threshold_rows: the search's counting pass and last step (the
rest of the search is tested through kth_smallest in test_threshold)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rda_optax import threshold_rows


@pytest.mark.parametrize('span', [50, 2**20, 2**29])
def test_the_last_step_picks_by_key_then_position(span):
  """The search's last step (the ``i``-th smallest among the candidates
  inside the bracket ``(lo, hi]``, by key then position): as numpy's stable
  sort, for a narrow bracket (float32 keys relative to it, ties everywhere)
  and a wide one (keys 1 apart that float32 cannot tell apart)."""
  rng = np.random.default_rng(span % 101)
  n, cap, lo = 5000, 1024, np.uint32(7)
  hi = np.uint32(int(lo) + span)
  least = 2**28 + 2 if span > 2**24 else 0
  keys = (int(lo) + 1 + rng.integers(least, span, n)).astype(np.uint32)
  if span > 2**24:  # The two smallest: 1 apart, one float32 (2**28).
    keys[:2] = [int(lo) + 1 + 2**28 + 1, int(lo) + 1 + 2**28]
  inside = np.zeros(n, bool)
  inside[rng.choice(n, 900, replace=False)] = True
  inside[:2] = True
  keys[~inside & (rng.random(n) < 0.5)] = np.iinfo(np.uint32).max
  pos = np.sort(rng.choice(10 * n, n, replace=False)).astype(np.int32)
  order = np.lexsort((pos[inside], keys[inside]))
  umax = jnp.asarray(np.iinfo(np.uint32).max, jnp.uint32)
  pick = jax.jit(
      lambda i: threshold_rows._smallest_inside(
          jnp.asarray(keys),
          jnp.asarray(pos),
          jnp.asarray(inside),
          jnp.asarray(lo),
          jnp.asarray(hi),
          umax,
          cap,
          i,
      )
  )
  for i in (0, 1, 2, 450, 899):
    key, where = pick(jnp.int32(i))
    assert (int(key), int(where)) == (
        int(keys[inside][order[i]]),
        int(pos[inside][order[i]]),
    ), i

"""rda_optax.threshold_warm: the search state and its prediction."""

import jax.numpy as jnp
import numpy as np

from rda_optax import threshold_warm as warm


def test_a_cold_state_is_not_usable_and_a_known_one_predicts():
  cold = warm.threshold_state(2)
  assert not bool(warm._warm_usable(cold, 0, 10, 1000))
  state = cold._replace(
      value=jnp.asarray([1.0, 0.0]),
      drift=jnp.asarray([0.1, 0.0]),
      accel=jnp.asarray([0.01, 0.0]),
      density=jnp.asarray([100.0, 0.0]),
      rank=jnp.asarray([10, 0], jnp.int32),
  )
  assert bool(warm._warm_usable(state, 0, 12, 1000))
  # The last value, its drift and acceleration, and 2 ranks at 100 / unit.
  assert float(warm._predicted(state, 0, 12)) == np.float32(
      1.0 + 0.1 + 0.01 + 0.02
  )
  # A rank that jumped by more than n / 32: cold again.
  assert not bool(warm._warm_usable(state, 0, 100, 1000))


def test_the_next_state_records_the_answer_and_its_drift():
  state = warm.threshold_state(1)
  state = warm._next_state(
      state, 0, jnp.int32(5), jnp.float32(2.0), 10.0, 3, 100
  )
  assert float(state.value[0]) == 2.0 and int(state.passes[0]) == 3
  assert np.isnan(float(state.drift[0]))  # Cold: no drift known yet.
  state = warm._next_state(
      state, 0, jnp.int32(5), jnp.float32(2.5), 10.0, 1, 100
  )
  assert float(state.drift[0]) == 0.5
  pivots = warm._warm_pivots(
      state, 0, jnp.int32(5), jnp.float32, jnp.uint32, 6, 256
  )
  p = np.asarray(pivots).astype(np.int64)
  assert p.shape == (6,) and np.all(np.diff(p) > 0)


def test_the_drift_and_its_change_are_smoothed():
  """Holt's linear method: the first known drift and change as they are,
  then each moved toward the new one by _DRIFT_SMOOTHING (the drift, from
  its expected value) and _ACCEL_SMOOTHING (the change)."""
  a, b = warm._DRIFT_SMOOTHING, warm._ACCEL_SMOOTHING
  state = warm.threshold_state(1)
  drifts, accels = [], []
  for value in (2.0, 2.5, 3.0, 3.7):  # The rank stays: raw drifts .5 .5 .7.
    state = warm._next_state(
        state, 0, jnp.int32(5), jnp.float32(value), 10.0, 1, 100
    )
    drifts.append(float(state.drift[0]))
    accels.append(float(state.accel[0]))
  assert np.isnan(drifts[0]) and np.isnan(accels[1])
  np.testing.assert_allclose(drifts[1:3], [0.5, 0.5], rtol=1e-6)
  assert accels[2] == 0.0  # The first change, as it is.
  d3 = a * 0.7 + (1 - a) * (0.5 + 0.0)
  np.testing.assert_allclose(drifts[3], d3, rtol=1e-5)
  np.testing.assert_allclose(accels[3], b * (d3 - 0.5), rtol=1e-5)
  # The prediction: the value plus the smoothed drift and change.
  np.testing.assert_allclose(
      float(warm._predicted(state, 0, 5)), 3.7 + d3 + accels[3], rtol=1e-6
  )
  # An unknown drift (a tie at a new value: no density) restarts both.
  state = warm._next_state(
      state, 0, jnp.int32(5), jnp.float32(4.0), 0.0, 1, 100
  )
  assert np.isnan(float(state.drift[0])) and np.isnan(float(state.accel[0]))

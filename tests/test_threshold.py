"""The k smallest entries of many arrays (rda_optax.threshold) against a
stable argsort: every kind of data, warm starts along runs where the
threshold moves, jumps of the rank, ties straddling it, low-precision
dtypes, states that predict nothing; and the one-buffer helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rda_optax
from rda_optax import threshold

# Shapes of one group (tails that are not whole rows of 128 included).
SHAPES = [(100, 37), (3, 3, 16, 32), (1000,), (5, 3001), (17,)]
SIZES = [int(np.prod(s)) for s in SHAPES]
N = sum(SIZES)


def np_smallest(xs, k, magnitude=False):
  """The first k of a stable argsort of the concatenation (NaNs last; values
  below the smallest normal float32 rank as zeros, as documented)."""
  flat = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in xs])
  if magnitude:
    flat = np.abs(flat)
  flat = np.where(np.abs(flat) < np.finfo(np.float32).tiny, 0.0, flat)
  order = np.argsort(flat, kind='stable')
  out = np.zeros(flat.size, bool)
  out[order[:k]] = True
  return out


def split_into(v, shapes=SHAPES):
  out, offset = [], 0
  for s in shapes:
    size = int(np.prod(s))
    out.append(v[offset : offset + size].reshape(s))
    offset += size
  return out


def kinds(rng, n=N):
  """Values of the kinds a model gives, and adversarial ones."""
  normal = lambda: rng.normal(size=n)
  yield 'gaussian', np.abs(normal())
  yield 'layers', np.abs(
      np.concatenate(
          [
              rng.normal(size=n - 9_300) * 0.01,
              rng.normal(size=9_000) * 0.2,
              rng.normal(size=300) * 3.0,
          ]
      )
  )
  yield 'bfloat16 values', np.abs(
      np.asarray(jnp.asarray(normal(), jnp.bfloat16).astype(jnp.float32))
  )
  yield 'float16 values', np.abs(normal().astype(np.float16))
  yield 'half zeros', np.where(rng.random(n) < 0.5, 0.0, normal())
  yield 'few integers', rng.integers(-3, 4, size=n) * 1.0
  yield 'signed, 60 decades', normal() * 10.0 ** rng.integers(-30, 30, n)
  yield 'sorted', np.sort(np.abs(normal()))
  yield 'two values', np.where(rng.random(n) < 0.3, 1e-30, 1e30)
  inf = normal()
  inf[:50], inf[-50:] = -np.inf, np.inf
  yield 'infinities', inf
  nan = normal()
  nan[rng.integers(0, n, 30)] = np.nan
  yield 'NaNs', nan
  yield 'signed zeros', np.where(rng.random(n) < 0.5, -0.0, 0.0) + np.where(
      rng.random(n) < 0.1, 1.0, 0.0
  )


def _flat(masks):
  return np.concatenate([np.ravel(m) for m in masks])


@jax.jit
def _cold(xs, k):
  split, state = threshold.kth_smallest(xs, k, sort_below=100)
  return threshold.smallest_masks(xs, split), state.passes[0]


def test_every_kind_of_data_matches_a_stable_sort_in_few_passes():
  """Counting passes (no sort) over arrays with tails, at every level: the
  same entries as a stable argsort, ties by position; a few passes from a
  cold start on float weights, and within the bound (bits + 2) on any
  data."""
  rng = np.random.default_rng(3)
  worst = {}
  for name, v in kinds(rng):
    xs = [jnp.asarray(x, jnp.float32) for x in split_into(v)]
    for frac in (0.0, 0.001, 0.3, 0.9, 0.95, 0.98, 0.995, 1.0):
      k = round(frac * N)
      masks, passes = _cold(xs, k)
      np.testing.assert_array_equal(
          _flat(masks), np_smallest(xs, k), err_msg=f'{name}, k={k}'
      )
      worst[name] = max(worst.get(name, 0), int(passes))
  assert max(worst.values()) <= 32 + 2, worst
  assert max(worst[n] for n in ('gaussian', 'layers', 'sorted')) <= 4, worst


def test_magnitudes_of_one_flat_buffer_match_a_stable_sort():
  """The optimizers' layout: the selected leaves end to end in one array,
  ranked by magnitude (the 'few integers' data: ties at every level)."""
  rng = np.random.default_rng(5)
  v = (rng.integers(-40, 41, size=N) * 0.25).astype(np.float32)
  for k in (1, N // 3, round(0.95 * N), N - 1):
    (mask,), _ = _warm([jnp.asarray(v)], k, threshold.threshold_state())
    np.testing.assert_array_equal(mask, np_smallest([v], k, True), str(k))


def test_small_inputs_are_sorted_exactly():
  """Ties, signs, zeros, infinities, NaNs on inputs small enough to sort."""
  rng = np.random.default_rng(7)
  search = jax.jit(
      lambda x, k: threshold.smallest_masks(
          [x], threshold.kth_smallest([x], k)[0]
      )[0]
  )
  for trial in range(200):
    n = int(rng.choice([1, 2, 5, 60]))  # Few shapes: few compilations.
    if trial % 3 == 0:
      v = rng.normal(scale=10.0 ** rng.integers(-30, 30), size=n)
    else:
      v = rng.integers(-3, 4, size=n) * rng.choice([1.0, 0.5, 1e-20])
    if trial % 11 == 0:
      v[0], v[-1] = -np.inf, np.inf
    if trial % 13 == 0:
      v[n // 2] = np.nan
    v = v.astype(np.float32)
    k = int(rng.integers(0, n + 1))
    np.testing.assert_array_equal(
        search(jnp.asarray(v), k), np_smallest([v], k), err_msg=f'{v}, {k}'
    )


def _drifting_run(dtype, steps, rng, ties_every=0, jump_at=None, shapes=SHAPES):
  """Values moving a little each step (a dual point under training): their
  magnitudes ranked together at 95% (60% from ``jump_at`` on); every
  ``ties_every`` steps on a grid (ties at every level, straddling the
  threshold)."""
  base = [rng.normal(size=s) * 0.05 for s in shapes]
  drift = [rng.normal(size=s) * 0.05 for s in shapes]
  for t in range(steps):
    xs = [b - (t + 1) * 0.02 * d for b, d in zip(base, drift)]
    if ties_every and t % ties_every == 0:
      xs = [np.round(x * 200) / 200 for x in xs]
    level = 0.6 if jump_at is not None and t >= jump_at else 0.95
    yield t, [jnp.asarray(x, dtype) for x in xs], round(level * N)


@jax.jit
def _warm(xs, k, state):
  split, state = threshold.kth_smallest(xs, k, state=state, magnitude=True)
  return threshold.smallest_masks(xs, split, magnitude=True), state


def _check_run(run):
  state = threshold.threshold_state()
  passes = []
  for t, xs, k in run:
    masks, state = _warm(xs, k, state)
    want = np_smallest([np.asarray(x.astype(jnp.float32)) for x in xs], k, True)
    np.testing.assert_array_equal(_flat(masks), want, err_msg=f'step {t}')
    passes.append(int(state.passes[0]))
  return passes


@pytest.mark.xla_default
def test_warm_start_is_exact_along_a_run_and_takes_one_pass():
  """Each step starts from the last step's threshold (predicted from its
  drift): the same entries as a stable argsort of the magnitudes at every
  step, and one counting pass once the drift is known, also after a jump
  of the level (a schedule's, a restart's)."""
  passes = _check_run(
      _drifting_run('float32', 30, np.random.default_rng(0), jump_at=20)
  )
  settled = [p for t, p in enumerate(passes) if t not in (0, 1, 2, 20, 21)]
  assert np.mean(np.asarray(settled) == 1) >= 0.9, passes
  assert max(passes[20:23]) <= 4, passes  # The jump: a cold start again.


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16', 'float16'])
def test_warm_start_is_exact_with_ties_and_low_precision(dtype):
  """Ties straddling the threshold every fifth step (the grid's), values
  in bfloat16 / float16 (few distinct values): exact at every step, within
  the bound on the passes. (One flat array, the optimizers' layout: a
  smaller program to compile.)"""
  passes = _check_run(
      _drifting_run(
          dtype, 15, np.random.default_rng(1), ties_every=5, shapes=[(N,)]
      )
  )
  assert max(passes) <= 16 + 2 if dtype != 'float32' else 32 + 2, passes


def test_a_tie_at_zero_takes_one_pass_warm():
  """ASR's case: frozen weights are exact zeros, and the k-th smallest
  magnitude is the last of them at every step. Warm, the search checks the
  same value again: one pass."""
  rng = np.random.default_rng(2)
  k = round(0.9 * N)
  state = threshold.threshold_state()
  passes = []
  for t in range(6):
    v = rng.normal(size=N) * (1 + 0.1 * t)
    v[: k + 3 * t] = 0.0  # More zeros than k: the tie straddles k.
    v = rng.permutation(v)
    xs = [jnp.asarray(x, jnp.float32) for x in split_into(v)]
    masks, state = _warm(xs, k, state)
    np.testing.assert_array_equal(_flat(masks), np_smallest(xs, k, True))
    passes.append(int(state.passes[0]))
  assert passes[1:] == [1] * 5, passes


def test_any_state_gives_the_exact_answer():
  """A state that predicts nothing (NaN, infinite, negative or absurd
  values, another run's) costs passes, never exactness."""
  rng = np.random.default_rng(1)
  xs = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in SHAPES]
  k = round(0.9 * N)
  want = np_smallest(xs, k, True)
  one = lambda v: jnp.full((1,), v, jnp.float32)
  ints = lambda v: jnp.full((1,), v, jnp.int32)
  states = [
      threshold.threshold_state(),
      threshold.ThresholdState(
          one(np.nan),
          one(np.inf),
          one(np.nan),
          one(-1.0),
          one(np.nan),
          ints(0),
          ints(0),
      ),
      threshold.ThresholdState(
          one(1e30),
          one(-1e30),
          one(1e30),
          one(1e-30),
          one(1e30),
          ints(7),
          ints(7),
      ),
      threshold.ThresholdState(
          one(0.0),
          one(0.0),
          one(0.0),
          one(1e30),
          one(0.0),
          ints(k),
          ints(1),
      ),
      threshold.ThresholdState(
          one(2.0),
          one(0.0),
          one(0.0),
          one(0.0),
          one(0.0),
          ints(k),
          ints(1),
      ),
  ]
  for state in states:
    masks, _ = _warm(xs, k, state)
    np.testing.assert_array_equal(_flat(masks), want)


def test_k_of_zero_and_of_all():
  xs = [jnp.asarray(np.random.default_rng(2).normal(size=s)) for s in SHAPES]
  for k in (0, N):
    masks, _ = _cold(xs, k)
    assert sum(int(np.sum(m)) for m in masks) == k


def test_a_traced_rank():
  """``k`` traced under jit (one program for every rank), the state
  following it."""
  b = jnp.asarray(np.random.default_rng(4).normal(size=N) * 10, jnp.float32)
  state = threshold.threshold_state()
  for k in (N - 5, 7, N // 2):
    (mask,), state = _warm([b], k, state)
    np.testing.assert_array_equal(mask, np_smallest([b], k, True))
    assert float(state.value[0]) == np.sort(np.abs(np.asarray(b)))[k - 1]
    assert int(state.rank[0]) == k


def test_denormals_rank_as_zeros():
  """XLA:CPU compares values below the smallest normal float32 as zeros; the
  search ranks them so on every platform (ties broken by position)."""
  tiny = np.finfo(np.float32).tiny
  v = np.array([tiny / 4, -tiny / 8, 0.0, 1.0, -tiny / 2, 2.0], np.float32)
  for sort_below in (0, 100):  # Counted, and sorted.
    search = lambda x: threshold.smallest_masks(
        [x], threshold.kth_smallest([x], 2, sort_below=sort_below)[0]
    )[0]
    mask = jax.jit(search)(jnp.asarray(v))
    # Four "zeros" tie; the first two by position go.
    np.testing.assert_array_equal(
        mask, [True, True, False, False, False, False]
    )


def test_errors_name_the_fix():
  big = jax.ShapeDtypeStruct((2**31,), jnp.float32)
  with pytest.raises(ValueError, match='scope="layer"'):
    jax.eval_shape(lambda x: threshold.kth_smallest([x], 1), big)
  x = jnp.ones(10)
  with pytest.raises(ValueError, match='pivots in'):
    threshold.kth_smallest([x], 1, pivots=16)
  with pytest.raises(ValueError, match='threshold_state'):
    threshold.kth_smallest([x], 1, state=threshold.threshold_state(1), group=1)


def test_computed_once_and_a_flat_buffer_have_no_copy():
  """``computed_once`` returns ``compute(operands)`` (one program computes
  it); ``computed_into`` writes it into a donated buffer; slices of one
  buffer laid end to end (``flat_view``) flatten back to it without a
  concatenation."""
  a, b = jnp.arange(6.0).reshape(2, 3), jnp.ones(4)
  np.testing.assert_array_equal(
      threshold.computed_once(lambda ops: ops[0] * 2, (a, b))[1], a[1] * 2
  )

  def fill(ops, buf):
    buf = jax.lax.dynamic_update_slice(buf, ops[0].reshape(-1), (0,))
    return jax.lax.dynamic_update_slice(buf, ops[1], (6,))

  def use(a, b, buf):
    flat = threshold.computed_into(fill, (a, b), buf)
    views = threshold.flat_view(flat, [(2, 3), (4,)])
    return threshold.flatten(views) * 1.0, views

  compiled = jax.jit(use, donate_argnums=2).lower(a, b, jnp.zeros(10))
  hlo = compiled.compile().as_text()
  assert 'concatenate(' not in hlo and ' copy(' not in hlo
  flat, views = jax.jit(use)(a, b, jnp.zeros(10))
  np.testing.assert_array_equal(flat, np.concatenate([np.ravel(a), b]))
  np.testing.assert_array_equal(views[0], a)


def test_public_names_and_counts():
  assert rda_optax.kth_smallest is threshold.kth_smallest
  assert rda_optax.smallest_masks is threshold.smallest_masks
  assert rda_optax.ThresholdState is threshold.ThresholdState
  assert rda_optax.ThresholdSplit is threshold.ThresholdSplit
  assert rda_optax.threshold_state is threshold.threshold_state
  assert threshold.fraction_count(0.45, 10) == 4  # Half to even.
  assert int(jax.jit(threshold.fraction_count, static_argnums=1)(0.45, 10)) == 4

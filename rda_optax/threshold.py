r"""The ``k`` smallest entries of many arrays, exactly, without a sort.

A global magnitude threshold (one level over all the kernels of a model)
needs the ``k``-th smallest of ``n`` values spread over many arrays, at every
step of :func:`rda_optax.rmda` with :func:`rda_optax.sparsity_constraint`.
Sorting the 11 million weights of a ResNet-18 takes seconds on a CPU; here
the answer is found by *counting passes*: one read of every array counts,
in one loop, the entries at most each of a few pivots (:data:`PIVOTS`),
per row of :data:`ROWS` entries as well as in total.

The pivots bracket the answer, ``c(lo) < k <= c(hi)`` with
``c(p) = #{x <= p}``, and the next pass puts its pivots inside the bracket.
Once at most :data:`GATHER` entries are left in it, the rows holding them
(the per-row counts say which) are gathered and the answer is found among
those few entries by a sort; if a single value is left (a tie), the position
of the tied entry at rank ``k`` is found from the per-row counts. No array is
concatenated, sorted or copied.

**Warm start.** Between two training steps the threshold moves little. Given
the :class:`ThresholdState` of the previous search (its threshold, its drift
per step and the drift's change, both smoothed, the density of values around
it, how far its last prediction was off), the first pass puts its pivots
around the predicted threshold, spaced so that the sub-bracket holding the
answer has at most :data:`GATHER` entries: the search is then that one pass
and a gather of a few rows. A cold start (no state, a jump of the rank, a
prediction that missed) takes its pivots from a strided sample of the
entries (about 3 passes on a model's weights). A wrong prediction costs
passes, never exactness.

**Bounded.** Every refinement pass also puts a pivot at the middle of the
bracket's range of bit patterns, so whatever the data the search ends
within about ``bits + 2`` passes (34 for float32: few distinct values over
60 decades); float weights take 1 (warm) to 4 (cold).

**Order.** Values are ordered as floats (``-0.0 == +0.0``; values below the
smallest normal float32 rank as zeros, as XLA:CPU compares them), NaNs after
``+inf``; ties are broken by position: the position of entry ``i`` of array
``j`` is its row-major index plus the sizes of the arrays before ``j``. So
the ``k`` smallest are exactly the first ``k`` of a stable argsort of the
concatenated arrays (NaNs last).

**One buffer.** The passes and the masks must see the same bits: pass arrays
that exist in memory (a jitted function's arguments), or compute them with
:func:`computed_once`. XLA fuses an elementwise computation into each of its
consumers and may round it differently in each (a multiply and an add
contracted into a fused multiply-add in one loop and not in another), and
the masks would then not hold exactly ``k`` entries.

Example:
  >>> import jax.numpy as jnp
  >>> from rda_optax import threshold
  >>> xs = [jnp.array([3.0, 1.0, 2.0]), jnp.array([[1.0, 0.5]])]
  >>> split, state = threshold.kth_smallest(xs, 3)
  >>> float(split.value), int(split.position)  # 3rd smallest: the 1.0 at 3
  (1.0, 3)
  >>> [m.tolist() for m in threshold.smallest_masks(xs, split)]
  [[False, True, False], [[True, True]]]
"""

from __future__ import annotations

from collections.abc import Sequence
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# The key arithmetic, the arrays as rows (the counting pass and the last
# step), the search of one group and the warm start live in their own
# modules.
from rda_optax.threshold_keys import _flush
from rda_optax.threshold_keys import _from_key
from rda_optax.threshold_search import _search
from rda_optax.threshold_warm import _next_state
from rda_optax.threshold_warm import ThresholdState
from rda_optax.threshold_warm import threshold_state

__all__ = [
    'GATHER',
    'PIVOTS',
    'ROWS',
    'ThresholdSplit',
    'ThresholdState',
    'computed_into',
    'computed_once',
    'flat_view',
    'flatten',
    'fraction_count',
    'kth_smallest',
    'smallest_masks',
    'threshold_state',
]

ROWS = 128
"""Entries per row: the passes count per row, the gather fetches rows."""

PIVOTS = 6
"""Pivots counted per pass. (XLA:CPU emits a variadic reduction of up to 15
operands as one fast loop; each pivot adds about 12% to a pass.)"""

GATHER = 1024
"""The search gathers the rows of a bracket holding at most this many
entries."""

SORT_BELOW = 2048
"""Up to this many entries, one sort is cheaper than any pass."""


class ThresholdSplit(NamedTuple):
  """Where the ``k`` smallest end.

  The ``k`` smallest entries are those below ``value`` and those equal to it
  at positions ``<= position`` (with ``nan``: every non-NaN entry, and the
  NaNs at positions ``<= position``).

  Attributes:
    value: the ``k``-th smallest value (in the arrays' common dtype;
      ``-inf`` when ``k = 0``).
    position: its position (int32; -1 when ``k = 0``).
    nan: whether the ``k``-th smallest is a NaN (bool).
  """

  value: jax.Array
  position: jax.Array
  nan: jax.Array


def fraction_count(fraction: Any, n: int) -> Any:
  """``round(fraction·n)`` (half to even): a Python int for a static
  fraction, an int32 array for a traced one (formed in float32: exact for
  ``n < 2**24``, within float32 rounding of ``fraction·n`` above).

  Example:
    >>> from rda_optax import threshold
    >>> threshold.fraction_count(0.45, 10), threshold.fraction_count(0.5, 5)
    (4, 2)
  """
  if not isinstance(fraction, jax.core.Tracer):
    try:
      return int(round(float(fraction) * n))
    except TypeError:
      pass
  f = jnp.asarray(fraction).astype(jnp.float32)
  return jnp.round(f * n).astype(jnp.int32)


def _common_dtype(xs: Sequence[Any]) -> Any:
  dtype = jnp.result_type(*[jnp.asarray(x).dtype for x in xs])
  if not jnp.issubdtype(dtype, jnp.floating):
    dtype = jnp.result_type(dtype, jnp.float32)
  return dtype


def _as_common(xs: Sequence[Any]) -> list[jax.Array]:
  dtype = _common_dtype(xs) if xs else jnp.float32
  return [jnp.asarray(x).astype(dtype) for x in xs]


def _runtime_token(operands: Any) -> jax.Array:
  """An int32 ``>= 0`` that XLA cannot compute at compile time: the number
  of bits set in the first entry of the first nonempty leaf."""
  for x in jax.tree.leaves(operands):
    x = jnp.asarray(x)
    if x.size:
      first = jnp.ravel(x)[0]
      if jnp.issubdtype(first.dtype, jnp.floating):
        bits = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}[first.itemsize]
        first = jax.lax.bitcast_convert_type(first, bits)
      elif first.dtype == jnp.bool_:
        first = first.astype(jnp.int32)
      return jax.lax.population_count(first).astype(jnp.int32)
  return jnp.int32(0)


def computed_once(
    compute: Any, operands: Any, token: Any = None, scratch: Any = None
) -> Any:
  """``compute(operands)``, evaluated into buffers that every later use
  reads.

  XLA fuses an elementwise computation into each of its consumers and may
  round it differently in each (a multiply and an add contracted into one
  fused multiply-add in one loop, not in another): the values a search
  counts and the values a mask then compares could differ in their last
  bit. Computed inside a conditional, whose boundary XLA neither fuses
  across nor duplicates, they are computed once, by one program whatever
  the surrounding one (so two programs computing them from the same inputs
  get the same bits). (An ``optimization_barrier`` does not suffice:
  XLA:CPU removes it before fusing.)

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from rda_optax import threshold
    >>> f = jax.jit(lambda a, b: threshold.computed_once(
    ...     lambda ops: ops[0] - ops[1] * 0.5, (a, b)))
    >>> f(jnp.ones(3), jnp.ones(3))
    Array([0.5, 0.5, 0.5], dtype=float32)

  Args:
    compute: a function of ``operands``.
    operands: a pytree of arrays.
    token: a runtime int32 ``>= 0`` that XLA cannot know at compile time
      (an optimizer's step count), the branch predicate; default: derived
      from the bits of the first entry of ``operands``.
    scratch: optional buffers with the structure, shapes and dtypes of the
      result, whose old values are not needed: XLA may write the result into
      them (a donated optimizer-state buffer) rather than into new memory,
      which on a CPU is much slower to write the first time.

  Returns:
    ``compute(operands)``.
  """
  if token is None or not isinstance(token, jax.core.Tracer):
    token = _runtime_token(operands)
  shapes = jax.eval_shape(compute, operands)
  if scratch is not None:
    return jax.lax.cond(
        jnp.asarray(token) >= 0,
        lambda ops: compute(ops[0]),
        lambda ops: jax.tree.map(
            lambda s, x: x.astype(s.dtype), shapes, ops[1]
        ),
        (operands, scratch),
    )
  return jax.lax.cond(
      jnp.asarray(token) >= 0,
      compute,
      lambda _: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
      operands,
  )


def computed_into(
    compute: Any, operands: Any, buffer: jax.Array, token: Any = None
) -> jax.Array:
  """``compute(operands, buffer)``, which writes its result into
  ``buffer`` (``jax.lax.dynamic_update_slice``), as :func:`computed_once`
  computes: once, into memory that every later use reads; into the memory
  of ``buffer`` when it is donated (an optimizer-state buffer: on a CPU,
  new memory costs more to write the first time than the whole
  computation).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from rda_optax import threshold
    >>> fill = lambda ops, buf: jax.lax.dynamic_update_slice(
    ...     buf, ops[0] * ops[1], (1,))
    >>> threshold.computed_into(fill, (jnp.ones(2), 3.0), jnp.zeros(3))
    Array([0., 3., 3.], dtype=float32)
  """
  if token is None or not isinstance(token, jax.core.Tracer):
    token = _runtime_token(operands)
  return jax.lax.cond(
      jnp.asarray(token) >= 0,
      lambda ops: compute(ops[0], ops[1]).astype(buffer.dtype),
      lambda ops: ops[1],
      (operands, buffer),
  )


def flat_view(flat: jax.Array, shapes: Sequence[Any]) -> list[jax.Array]:
  """The arrays of ``shapes`` laid end to end in ``flat`` (reshaped
  slices: no copy; :func:`flatten` of them is ``flat`` again, also no copy
  under ``jit``)."""
  out, offset = [], 0
  for shape in shapes:
    size = int(np.prod(shape))
    out.append(flat[offset : offset + size].reshape(shape))
    offset += size
  return out


def flatten(xs: Sequence[Any]) -> jax.Array:
  """``xs`` end to end in one 1-D array of their common dtype. Under
  ``jit``, slices of one buffer laid end to end (:func:`flat_view`) give
  that buffer back without a copy (XLA merges the concatenation of
  adjacent slices); other arrays are copied. The search is cheapest on
  one array: one loop per pass, one gather."""
  xs = _as_common(list(xs))
  if len(xs) == 1:
    return xs[0].reshape(-1)
  return jnp.concatenate([x.reshape(-1) for x in xs])


def _check_group(xs: Sequence[Any]) -> int:
  n = sum(int(np.prod(jnp.shape(x))) for x in xs)
  if n >= 2**31 - 1:
    raise ValueError(
        f'kth_smallest ranks at most 2**31 - 2 entries together (positions '
        f'are int32), got {n}: split them into groups (e.g. '
        'sparsity_constraint(..., scope="layer")).'
    )
  return n


def kth_smallest(
    xs: Sequence[Any],
    k: Any,
    *,
    state: ThresholdState | None = None,
    group: int = 0,
    magnitude: bool = False,
    rows: int = ROWS,
    pivots: int = PIVOTS,
    gather: int = GATHER,
    sort_below: int = SORT_BELOW,
    compute: Any = None,
    args: Any = (),
    zero: Any = None,
) -> tuple[ThresholdSplit, ThresholdState]:
  r"""The ``k``-th smallest entry of the arrays ``xs`` taken together.

  Exact: the ``k``-th of a stable argsort of the concatenated arrays, NaNs
  last (see :mod:`rda_optax.threshold` for the order), whatever ``state``
  holds; traceable (``k`` may be a traced int).

  **Cost.** Counting passes: each reads every array once and counts, in one
  loop, the entries at most each of ``pivots`` thresholds, per row of
  ``rows`` entries. One pass and a gather of a few rows when ``state``
  predicts the threshold (the previous step's search, the threshold having
  moved by a few dozen entries); 3 to 4 from a cold start on model
  weights; at most about ``bits + 2`` on any data. On the 11.2M weights of
  a ResNet-18, laid end to end in one array, on a 2-core CPU: a pass costs
  about a third of an ``optax.sgd(momentum=0.9)`` step, a warm search
  (one pass and the gather) 0.7 of one (``python -m
  benchmarks.optimizer_step --breakdown``).
  Inputs of at most ``sort_below`` entries are sorted instead.

  Example:
    >>> import jax.numpy as jnp
    >>> from rda_optax import threshold
    >>> xs = [jnp.array([[-3.0, 0.5], [2.0, -1.0]]), jnp.array([0.25])]
    >>> split, state = threshold.kth_smallest(xs, 2, magnitude=True)
    >>> float(split.value), int(state.rank[0])  # |0.25|, |0.5|: the 2nd
    (0.5, 2)

  Args:
    xs: arrays of floats (any shapes; compared in their common dtype), in
      memory (see :func:`computed_once`).
    k: the rank, ``0 <= k <= n`` (``k = 0``: no entry; the split then
      selects nothing).
    state: the :class:`ThresholdState` of the previous search (``None`` or
      a fresh :func:`threshold_state`: a cold start).
    group: which entry of ``state`` this search reads and writes.
    magnitude: rank the entries by ``|x|`` (without writing ``|x|`` out).
    rows: entries per row (the granularity of the counts and the gather).
    pivots: thresholds per pass (4 to 15).
    gather: entries of a bracket few enough to gather.
    sort_below: inputs of at most this many entries are sorted.
    compute: rank computed values, never written out: each of ``xs`` is
      then a tuple of arrays of one shape, its values ``compute(operands,
      args, zero)``, an elementwise function (a hashable one: a module's
      function) that must give the same bits in every loop it is fused
      into: it gets ``zero``, a uint32 0 that the compiler cannot know, to
      pin its rounding (see :func:`rda_optax.rda.pinned_dual_point`):
      inside the counting loop one made from the loop's counter, elsewhere
      ``zero``.
    args: arrays ``compute`` takes besides the operands (scalars).
    zero: with ``compute``, a uint32 0 that neither XLA nor LLVM can
      deduce (:func:`rda_optax.rda.opaque_zero` of a step count read from
      an optimizer's state).

  Returns:
    ``(split, state)``: the :class:`ThresholdSplit` (give it to
    :func:`smallest_masks` with the same ``xs``) and the updated state
    (``threshold_state(1)`` filled in when ``state`` is None).

  Raises:
    ValueError: ``pivots`` outside ``[4, 15]``, ``group`` outside the
      state, more than ``2**31 - 2`` entries.
  """
  return _kth_smallest(
      list(xs),
      k,
      state,
      args,
      zero,
      compute=compute,
      group=group,
      magnitude=magnitude,
      rows=rows,
      pivots=pivots,
      gather=gather,
      sort_below=sort_below,
  )


# Compiled once per shape, also when called outside jit (sparse_params).
@functools.partial(
    jax.jit,
    static_argnames=(
        'compute',
        'group',
        'magnitude',
        'rows',
        'pivots',
        'gather',
        'sort_below',
    ),
)
def _kth_smallest(
    xs,
    k,
    state,
    args,
    zero,
    *,
    compute,
    group,
    magnitude,
    rows,
    pivots,
    gather,
    sort_below,
):
  if compute is None:
    xs = _as_common(list(xs))
    dtype = xs[0].dtype if xs else jnp.float32
    n = _check_group(xs)
    bound = None
  else:
    if zero is None:
      raise ValueError(
          'kth_smallest(compute=...) needs zero=, a uint32 0 that the '
          'compiler cannot know (rda_optax.rda.opaque_zero of a step count).'
      )
    zero = jnp.asarray(zero, jnp.uint32)
    xs = [tuple(jnp.asarray(o) for o in ops) for ops in xs]
    bound = functools.partial(_bind, compute, args)
    dtype = (
        jax.eval_shape(bound, xs[0], jnp.uint32(0)).dtype if xs else jnp.float32
    )
    n = _check_group([ops[0] for ops in xs])
  if not 4 <= pivots <= 15:
    raise ValueError(
        f'kth_smallest needs pivots in [4, 15] (XLA:CPU counts up to 15 in '
        f'one loop), got pivots={pivots}.'
    )
  if state is None:
    state = threshold_state(1)
  state = ThresholdState(*[jnp.asarray(x) for x in state])
  if not 0 <= group < state.value.shape[0]:
    raise ValueError(
        f'kth_smallest group={group} is outside the state, which has '
        f'{state.value.shape[0]} group(s): make it with '
        'threshold_state(groups).'
    )
  k = jnp.clip(jnp.asarray(k, jnp.int32), 0, n)
  if n == 0:
    return (
        ThresholdSplit(
            jnp.asarray(-jnp.inf, dtype), jnp.int32(-1), jnp.bool_(False)
        ),
        state,
    )
  # k = 0 selects nothing; the search runs for k = 1 (no branch around it:
  # a branch would copy the arrays).
  key, pos, passes, density = _search(
      xs,
      jnp.maximum(k, 1),
      state,
      group,
      dtype=dtype,
      compute=bound,
      zero=zero,
      magnitude=magnitude,
      rows=rows,
      pivots=pivots,
      gather=gather,
      sort_below=sort_below,
  )
  umax = jnp.asarray(jnp.iinfo(key.dtype).max, key.dtype)
  value = _flush(_from_key(key, dtype))
  split = ThresholdSplit(
      jnp.where(k > 0, value, jnp.asarray(-jnp.inf, dtype)),
      jnp.where(k > 0, pos, -1),
      (k > 0) & (key == umax),
  )
  return split, _next_state(state, group, k, value, density, passes, n)


def _bind(compute, args, operands, zero):
  return compute(operands, args, zero)


def smallest_masks(
    xs: Sequence[Any], split: ThresholdSplit, *, magnitude: bool = False
) -> list[jax.Array]:
  """Boolean masks of the ``k`` smallest entries (``True``: among them).

  ``xs`` and ``magnitude`` must be those :func:`kth_smallest` returned
  ``split`` for: in a jitted function, arrays it takes as arguments, or
  values computed there by :func:`computed_once` (see
  :mod:`rda_optax.threshold`).

  Example:
    >>> import jax.numpy as jnp
    >>> from rda_optax import threshold
    >>> xs = [jnp.array([1.0, -1.0, 1.0, 0.0])]
    >>> split, _ = threshold.kth_smallest(xs, 2, magnitude=True)
    >>> threshold.smallest_masks(xs, split, magnitude=True)[0].tolist()
    [True, False, False, True]
  """
  return _smallest_masks(list(xs), split, magnitude=magnitude)


@functools.partial(jax.jit, static_argnames=('magnitude',))
def _smallest_masks(xs, split, *, magnitude):
  xs = _as_common(list(xs))
  out, offset = [], 0
  for x in xs:
    # (Flat: a position is the loop's index, not a sum over the axes.)
    shape, x = x.shape, x.reshape(-1)
    pos = offset + jax.lax.iota(jnp.int32, x.size)
    x = _flush(jnp.abs(x) if magnitude else x)
    value = split.value.astype(x.dtype)
    below = jnp.where(split.nan, ~jnp.isnan(x), x < value)
    tie = jnp.where(split.nan, jnp.isnan(x), x == value)
    out.append((below | (tie & (pos <= split.position))).reshape(shape))
    offset += x.size
  return out

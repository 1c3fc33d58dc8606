"""The exactly sparse model inside an optimizer state.

Some transforms train one point and keep a second, exactly sparse one: the
proximal point ``w̃`` of :func:`rda_optax.rmda` with momentum, the sparse copy
``V`` of :func:`rda_optax.variable_splitting`. Their states say so with a
``sparse_point(params)`` method; :func:`sparse_params` finds them anywhere in
an optimizer state (inside ``optax.chain``, ``optax.masked``,
``optax.multi_transform``, ``optax.MultiSteps``, ``optax.inject_hyperparams``,
:func:`rda_optax.asr`, ...), fills in the leaves they do not cover from the
parameters, and returns the model to evaluate, report, checkpoint as final
and export.
"""

from __future__ import annotations

from collections.abc import Mapping
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rda_optax import landing
from rda_optax import sharding


def is_masked(x: Any) -> bool:
  """Whether ``x`` is :class:`optax.MaskedNode` (a leaf ``optax.masked`` left
  out: the transform inside it never sees that leaf)."""
  return isinstance(x, optax.MaskedNode)


def _is_sparse_state(x: Any) -> bool:
  return isinstance(x, tuple) and callable(
      getattr(type(x), 'sparse_point', None)
  )


def sparse_states(state: Any) -> list[Any]:
  """The outermost states in ``state`` that may hold a sparse point."""
  return [
      s
      for s in jax.tree.leaves(state, is_leaf=_is_sparse_state)
      if _is_sparse_state(s)
  ]


def has_sparse_point(state: Any) -> bool:
  """Whether ``state`` holds a sparse point other than the parameters (known
  from the state's structure, so usable under ``jit``)."""
  return any(s.holds_sparse_point() for s in sparse_states(state))


# ------------------------------------------------------------- Flax NNX


def _variable_type() -> type | None:
  """``flax.nnx.Variable`` if NNX is in use (never imports Flax)."""
  nnx = sys.modules.get('flax.nnx')
  return getattr(nnx, 'Variable', None) if nnx is not None else None


def _has_variables(tree: Any, var: type | None) -> bool:
  if var is None:
    return False
  is_var = lambda x: isinstance(x, var)
  return any(is_var(x) for x in jax.tree.leaves(tree, is_leaf=is_var))


def _as_pure(tree: Any, var: type) -> Any:
  """``tree`` with every ``nnx.Variable`` replaced by its value (what
  ``nnx.as_pure`` does; ``nnx.Optimizer`` keeps its state in ``OptVariable``
  wrappers, ``nnx.state(model, nnx.Param)`` gives ``Param`` ones)."""
  as_pure = getattr(sys.modules['flax.nnx'], 'as_pure', None)
  if as_pure is not None:
    return as_pure(tree)
  return jax.tree.map(
      lambda x: x.value if isinstance(x, var) else x,
      tree,
      is_leaf=lambda x: isinstance(x, var),
  )


def _rewrap(like: Any, values: Any, var: type) -> Any:
  """``values`` in the containers of ``like``: each ``nnx.Variable`` of
  ``like`` copied with its new value (metadata kept)."""

  def put(v, x):
    if not isinstance(v, var):
      return x
    if hasattr(v, 'copy'):
      return v.copy(x)
    return v.replace(value=x)  # Flax < 0.11.

  return jax.tree.map(put, like, values, is_leaf=lambda x: isinstance(x, var))


# -------------------------------------------- States restored without types

# Field names that only these states have: a Mapping holding all of one set
# is such a state restored as a dict (Orbax or flax.serialization without a
# target restore NamedTuples as dicts of their fields).
_UNTYPED_FIELDS = {
    'rda_optax.rmda (RMDAState)': {'k', 'alpha', 'init_params', 'grad_sum'},
    'rda_optax.variable_splitting (SplittingState)': {
        'count',
        'aux',
        'inner_state',
    },
    'rda_optax.asr (ASRState)': {
        'count',
        'selected',
        'inner_state',
        'retraining',
    },
}


def _untyped_states(tree: Any, path: str = '') -> list[tuple[str, str]]:
  found = []
  if isinstance(tree, Mapping):
    keys = {str(k) for k in tree}
    found += [
        (path or 'the state', name)
        for name, fields in _UNTYPED_FIELDS.items()
        if fields <= keys
    ]
    for k, v in tree.items():
      found += _untyped_states(v, f'{path}[{k!r}]')
  elif isinstance(tree, (list, tuple)):
    for i, v in enumerate(tree):
      found += _untyped_states(v, f'{path}[{i}]')
  return found


def _check_typed(state: Any) -> None:
  untyped = _untyped_states(state)
  if untyped:
    where = '; '.join(f'{name} at {path}' for path, name in untyped)
    raise TypeError(
        'The optimizer state was restored without its types: it holds plain '
        f'dicts where the transforms keep typed states ({where}), so the '
        'sparse point cannot be computed (returning the parameters would be '
        'the dense model). Restore with a target, e.g. '
        '`abstract = jax.eval_shape(tx.init, params)` then '
        '`checkpointer.restore(path, abstract)` '
        '(or `args=ocp.args.StandardRestore(abstract)`), or '
        '`flax.serialization.from_bytes(tx.init(params), data)`.'
    )


# -------------------------------------------------- Chain order (landing)


class ChainOrderError(ValueError):
  """An update of a sparse transform did not reach the parameters unchanged
  on consecutive steps: something chained after it changes the updates."""


def _landing_message(bad: list[tuple[str, int]]) -> str:
  where = ', '.join(
      f'opt_state{path} (from update {step})' for path, step in bad
  )
  return (
      'The updates of an rda_optax transform did not reach the parameters '
      f'unchanged at consecutive steps: {where}. Something chained after it '
      'changes the updates (e.g. optax.chain(rda_optax.rmda(...), '
      'optax.clip(...)) or a learning-rate scale), so the weights are not '
      'its exactly sparse iterates. Put the rda_optax transform last in the '
      'chain: gradient transforms (clipping, weight decay with '
      'optax.add_decayed_weights, ...) go before it. (A single change of the '
      'parameters between two steps, such as loading or editing them, is not '
      'reported.)'
  )


def _raise_alarms(paths: list[str], *steps: Any) -> None:
  bad = [(p, int(s)) for p, s in zip(paths, steps) if int(s) >= 0]
  if bad:
    raise ChainOrderError(_landing_message(bad))


def check_landings(state: Any) -> None:
  """Raises :class:`ChainOrderError` if a transform in ``state`` saw its
  updates changed after it; under ``jit`` the check runs as a callback."""
  found = landing.alarms(state)
  if not found:
    return
  paths = [p for p, _ in found]
  steps = [s for _, s in found]
  if any(isinstance(s, jax.core.Tracer) for s in steps):
    jax.debug.callback(lambda *s: _raise_alarms(paths, *s), *steps)
  else:
    _raise_alarms(paths, *steps)


# ----------------------------------------------------- Views and merging


class _Uncovered:
  """A leaf no sparse-point state covers."""


_UNCOVERED = _Uncovered()


def restrict(tree: Any, view: Any, what: str = 'params') -> Any:
  """``tree`` with :class:`optax.MaskedNode` wherever ``view`` has one.

  ``view`` is a tree a transform inside ``optax.masked`` keeps (its
  parameters' copy, with ``MaskedNode`` where a leaf or a whole subtree was
  masked out); ``tree`` has the full structure.
  """

  def take(v, sub):
    if is_masked(v):
      return optax.MaskedNode()
    if is_masked(sub) or jax.tree.structure(sub).num_nodes != 1:
      raise ValueError(
          f'a leaf in the state, {type(sub).__name__} in the {what}'
      )
    return sub

  try:
    return jax.tree.map(take, view, tree, is_leaf=is_masked)
  except (ValueError, TypeError) as e:
    raise ValueError(
        f'The {what} do not match the parameters the optimizer state was '
        f'initialised with: pass the tree the optimizer updates (linen: '
        f'`state.params`, not the variables dict {{"params": ...}}; NNX: '
        f'`nnx.state(model, nnx.Param)`, or the `wrt` filter of the '
        f'nnx.Optimizer). State: {jax.tree.structure(view, is_leaf=is_masked)}'
        f'; {what}: {jax.tree.structure(tree, is_leaf=is_masked)}. ({e})'
    ) from e


def _covered(point: Any, params: Any) -> list[Any]:
  """``point``'s leaves aligned with ``params``' leaves (``MaskedNode``s of
  ``params`` included); :data:`_UNCOVERED` where ``point`` has a
  ``MaskedNode``."""
  expanded = jax.tree.map(
      lambda x, sub: (
          jax.tree.map(lambda _: _UNCOVERED, sub, is_leaf=is_masked)
          if is_masked(x)
          else x
      ),
      point,
      params,
      is_leaf=is_masked,
  )
  return jax.tree.leaves(expanded, is_leaf=is_masked)


def _has_masked(tree: Any) -> bool:
  return any(is_masked(x) for x in jax.tree.leaves(tree, is_leaf=is_masked))


def _describe(found: list[Any]) -> str:
  if not found:
    return (
        'no rmda, variable_splitting or asr state (the parameters are then '
        'the model)'
    )
  names = ', '.join(type(s).__name__ for s in found)
  return (
      f'{len(found)} such state(s) ({names}) whose point is the parameters '
      'themselves (rmda with momentum=0, asr over an optimizer that keeps '
      'no separate point)'
  )


# One compiled computation per state: run op by op, a projection's threshold
# search compiles each of its operations on its own at the first call (5.7 s
# against 2.1 s for the CNN of examples/linen_mnist.py on a 2-core CPU).
@jax.jit
def _state_point(state: Any, params: Any, keep: Any) -> Any:
  """``state.sparse_point(params, keep=keep)``."""
  return state.sparse_point(params, keep=keep)


def point_in(state: Any, params: Any, keep: Any = None) -> Any:
  """The sparse point in ``state`` over ``params`` (which may be a masked
  view); the parameters' own values where no state keeps one. ``keep``
  (a tree like ``params`` of booleans, or None) marks the entries that are
  not frozen by an enclosing :func:`rda_optax.asr`."""
  found = sparse_states(state)
  holders = [s for s in found if s.holds_sparse_point()]
  if not holders:
    if params is None:
      raise ValueError(
          'This optimizer state keeps no sparse point apart from the '
          f'parameters: it holds {_describe(found)}. Pass the parameters: '
          '`rda_optax.sparse_params(opt_state, params)` returns them.'
      )
    return params
  if params is None:
    views = [s.params_view() for s in holders]
    if len(holders) == 1 and not _has_masked(views[0]):
      return _state_point(holders[0], None, None)
    raise ValueError(
        f'This optimizer state holds {len(holders)} sparse-point state(s) '
        f'({", ".join(type(s).__name__ for s in holders)}) that cover only '
        'some of the parameters (optax.masked / optax.multi_transform): pass '
        'the parameters, `rda_optax.sparse_params(opt_state, params)`, to '
        'fill in the others.'
    )
  pieces = []
  for s in holders:
    view = s.params_view()
    sub_keep = None if keep is None else restrict(keep, view, 'keep mask')
    pieces.append(_state_point(s, restrict(params, view), sub_keep))
  if len(pieces) == 1 and not _has_masked(pieces[0]):
    return pieces[0]
  flat, treedef = jax.tree_util.tree_flatten_with_path(
      params, is_leaf=is_masked
  )
  out = [x for _, x in flat]
  owner = [None] * len(out)
  for i, (s, piece) in enumerate(zip(holders, pieces)):
    for j, x in enumerate(_covered(piece, params)):
      if x is _UNCOVERED:
        continue
      if owner[j] is not None:
        raise ValueError(
            f'Two sparse-point states ({type(holders[owner[j]]).__name__} '
            f'and {type(s).__name__}) both cover the parameter '
            f'{jax.tree_util.keystr(flat[j][0])}: each leaf must be trained '
            'by one of them (check the masks / labels of optax.masked or '
            'optax.multi_transform).'
        )
      owner[j] = i
      out[j] = x
  return jax.tree.unflatten(treedef, out)


def _flat_layout(state: Any, params: Any) -> Any:
  """If the sparse-point states in ``state`` were initialised on one flat
  vector (``optax.flatten``: every leaf of the parameters raveled and
  concatenated in tree order) and ``params`` is a tree of that total size:
  the function that splits such a vector back into the parameters' leaves
  (shapes and dtypes); else None."""
  if params is None or is_masked(params):
    return None
  holders = [s for s in sparse_states(state) if s.holds_sparse_point()]
  views = [jax.tree.leaves(s.params_view(), is_leaf=is_masked) for s in holders]
  if not views or any(
      len(v) != 1 or is_masked(v[0]) or jnp.ndim(v[0]) != 1 for v in views
  ):
    return None
  leaves, treedef = jax.tree.flatten(params, is_leaf=is_masked)
  if len(leaves) == 1 and jnp.shape(leaves[0]) == jnp.shape(views[0][0]):
    return None  # One vector: no flattening to undo.
  if any(is_masked(x) for x in leaves):
    return None
  sizes = [int(jnp.size(x)) for x in leaves]
  if any(jnp.shape(v[0]) != (sum(sizes),) for v in views):
    return None

  def unflatten(flat: jax.Array) -> Any:
    parts = jnp.split(flat, list(np.cumsum(sizes)[:-1]))
    return jax.tree.unflatten(
        treedef,
        [
            p.reshape(jnp.shape(x)).astype(jnp.result_type(x))
            for p, x in zip(parts, leaves)
        ],
    )

  return unflatten


def _flatten(params: Any) -> jax.Array:
  """``params`` as ``optax.flatten`` gives them to its inner transform."""
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(params)])


def _point_like(state: Any, params: Any) -> Any:
  """A tree with the structure of the sparse point: ``params``, else the
  parameters of the one state that keeps a point (else None: without
  ``params``, ``point_in`` then raises its own error)."""
  if params is not None:
    return params
  holders = [s for s in sparse_states(state) if s.holds_sparse_point()]
  return holders[0].params_view() if len(holders) == 1 else None


def sparse_params(state: Any, params: Any = None) -> Any:
  """The exactly sparse model kept in an optimizer state.

  Finds every :func:`rda_optax.rmda`, :func:`rda_optax.variable_splitting` or
  :func:`rda_optax.asr` state in ``state``, however nested (``optax.chain``,
  ``optax.masked``, ``optax.multi_transform``, ``optax.MultiSteps``,
  ``optax.inject_hyperparams``, ``optax.apply_if_finite``, ``optax.flatten``,
  ...), takes each one's sparse point over the leaves it trains, and the
  parameters' own values for every other leaf (those the parameters are the
  model for: other optimizers, ``rmda(momentum=0)``, :func:`rda_optax.rda`).
  States covering disjoint leaves (``multi_transform`` with ``rmda`` on two
  labels) are merged. Sharded parameters give a point sharded alike.

  Flax: ``params`` may be ``state.params`` of a linen ``TrainState``, or
  ``nnx.state(model, nnx.Param)`` with ``optimizer.opt_state`` of an
  ``nnx.Optimizer`` (``nnx.Variable`` wrappers are read as their values; no
  ``nnx.as_pure`` needed). The result has the container types of ``params``
  (an ``nnx.State`` of ``Param`` variables for NNX), so it goes back into a
  model with ``nnx.update(model, ...)``.

  Never silently wrong: it raises where it cannot know the sparse point: a
  state restored without its types (Orbax or ``flax.serialization`` without
  a target give dicts), two states covering one leaf, a transform whose
  updates something chained after it changed (see :mod:`rda_optax.landing`),
  or no ``params`` where they are needed.

  Args:
    state: an optimizer state (``opt_state``).
    params: the current parameters (needed under :func:`rda_optax.asr`, where
      the frozen weights are those that are zero in them, under
      ``optax.masked``/``multi_transform``, whose other leaves come from
      them, and where the parameters are the model).

  Returns:
    A tree with exactly the structure (and container types) of ``params``;
    without ``params``, of the single state's parameters.

  Raises:
    ValueError: no sparse point and no ``params``; ``params`` not the tree
      the optimizer was initialised with; overlapping states.
    TypeError: a state restored without its types.
    ChainOrderError: something chained after a transform changed its
      updates (a ``ValueError``).

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> opt = rda_optax.rmda(0.5, rda_optax.l1(0.5), momentum=0.9)
    >>> params = {'w': jnp.array([[1.0, 0.1]])}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({'w': jnp.zeros((1, 2))}, state, params)
    >>> rda_optax.sparse_params(state, params)['w']   # the prox point
    Array([[0.75, 0.  ]], dtype=float32)
  """
  var = _variable_type()
  if _has_variables(state, var):
    state = _as_pure(state, var)
  wrapped = _has_variables(params, var)
  pure = _as_pure(params, var) if wrapped else params
  _check_typed(state)
  check_landings(state)
  unflatten = _flat_layout(state, pure)
  if unflatten is not None:  # optax.flatten: one vector for every leaf.
    point = unflatten(point_in(state, _flatten(pure)))
  else:
    # Explicitly sharded: each leaf sharded as the parameter it replaces
    # (without params, as the state's own parameters).
    point = sharding.call(
        point_in, (state, pure), lambda: _point_like(state, pure)
    )
  return _rewrap(params, point, var) if wrapped else point


def with_sparse_params(state: Any, optimizer: Any = None) -> Any:
  """The trained model with the sparse point as its parameters.

  The model to evaluate, checkpoint as final and export (the iterate a
  transform trains is not exactly sparse when it keeps a separate point, and
  under :func:`rda_optax.asr` it is the point with the frozen weights at
  zero). Training goes on from the iterate: this returns a new object and
  changes nothing in its arguments.

  * Flax linen: ``with_sparse_params(train_state)`` is
    ``train_state.replace(params=sparse_params(train_state.opt_state,
    train_state.params))`` (any object with ``params``, ``opt_state`` and
    ``replace``, such as ``flax.training.train_state.TrainState``).
  * Flax NNX: ``with_sparse_params(model, optimizer)`` (an
    ``nnx.Optimizer``) returns a copy of ``model`` (``nnx.clone``) whose
    parameters (the optimizer's ``wrt``) are the sparse point.

  Batch-norm statistics are those of the iterate; refit them on a few
  training batches if the model has any and the two differ much (early in
  training).

  Example:
    >>> import jax, jax.numpy as jnp, optax, rda_optax
    >>> from flax.training import train_state
    >>> tx = rda_optax.rmda(0.5, rda_optax.l1(0.5), momentum=0.9)
    >>> state = train_state.TrainState.create(
    ...     apply_fn=None, params={'w': jnp.array([[1.0, 0.1]])}, tx=tx)
    >>> state = state.apply_gradients(grads={'w': jnp.zeros((1, 2))})
    >>> state.params['w']                       # the iterate
    Array([[0.975, 0.09 ]], dtype=float32)
    >>> rda_optax.with_sparse_params(state).params['w']   # the sparse model
    Array([[0.75, 0.  ]], dtype=float32)

  Args:
    state: a linen ``TrainState`` (or alike), or an NNX model.
    optimizer: the ``nnx.Optimizer`` training ``state`` (NNX only).

  Returns:
    The ``TrainState`` with sparse ``params``, or a new NNX model.
  """
  if optimizer is None:
    if not all(hasattr(state, a) for a in ('params', 'opt_state', 'replace')):
      raise TypeError(
          'with_sparse_params takes a train state with params, opt_state and '
          'replace (flax.training.train_state.TrainState), or an NNX model '
          'and its optimizer: with_sparse_params(model, optimizer).'
      )
    return state.replace(params=sparse_params(state.opt_state, state.params))
  nnx = sys.modules.get('flax.nnx')
  if nnx is None or not hasattr(optimizer, 'opt_state'):
    raise TypeError(
        'with_sparse_params(model, optimizer) takes an NNX model and the '
        f'nnx.Optimizer that trains it, got {type(optimizer).__name__}.'
    )
  params = nnx.state(state, getattr(optimizer, 'wrt', nnx.Param))
  model = nnx.clone(state)
  nnx.update(model, sparse_params(optimizer.opt_state, params))
  return model

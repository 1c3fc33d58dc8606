"""Adaptive sparse retraining (ASR): exact zeros stay exact zeros."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rda_optax import landing
from rda_optax import selection
from rda_optax import sharding
from rda_optax import sparse_point
from rda_optax.validation import check_update_args


class FreezeZerosState(NamedTuple):
  """State of :func:`freeze_zeros`: ``keep`` is True where a weight may move."""

  keep: Any


class ASRState(NamedTuple):
  """State of :func:`asr`.

  The keep mask is not stored: during retraining it is the selected weights'
  own nonzero pattern, ``w != 0`` (see :func:`asr`).

  Attributes:
    count: number of updates applied so far (int32).
    selected: one boolean scalar per parameter leaf, True where ASR freezes
      zeros (chosen by ``mask``).
    inner_state: the wrapped optimizer's state.
    retrain_state: the state of the ``retrain`` optimizer (``None`` without
      one).
    retraining: whether retraining has started (bool).
    landing: the check that ``asr``'s updates reached the parameters
      unchanged (:class:`rda_optax.landing.LandingCheck`), when the wrapped
      optimizers are transforms of this library that check theirs (``asr``
      changes their updates, so it checks its own instead); else ``None``.
  """

  count: jax.Array
  selected: Any
  inner_state: Any
  retrain_state: Any = None
  retraining: Any = None
  landing: Any = None

  def holds_sparse_point(self) -> bool:
    return sparse_point.has_sparse_point(
        self.inner_state
    ) or sparse_point.has_sparse_point(self.retrain_state)

  def params_view(self) -> Any:
    return self.selected

  def sparse_point(self, params: Any = None, keep: Any = None) -> Any:
    """The sparse model of the optimizer that is training now.

    During retraining, frozen entries (the selected weights that are zero in
    ``params``) are zero in it, and the inner optimizer's point is taken as
    each step sees it: with its buffers zeroed at the frozen entries.
    """
    if params is None:
      raise ValueError(
          "asr's sparse point is zero wherever a selected weight is zero in "
          'the parameters (retraining freezes them): pass the parameters, '
          '`rda_optax.sparse_params(opt_state, params)`.'
      )
    frozen = jax.tree.map(
        lambda p, sel: sel & self.retraining & (p == 0), params, self.selected
    )
    if keep is None:
      here = jax.tree.map(jnp.logical_not, frozen)
    else:
      here = jax.tree.map(lambda k, f: k & ~f, keep, frozen)
    point = sparse_point.point_in(self.inner_state, params, here)
    if self.retrain_state is not None:
      retrain = sparse_point.point_in(self.retrain_state, params, here)
      point = _tree_where(self.retraining, retrain, point)
    return jax.tree.map(
        lambda x, f: jnp.where(f, jnp.zeros_like(x), x), point, frozen
    )


def _landed(p, u):
  p = jnp.asarray(p)
  return (p + u).astype(p.dtype)  # What optax.apply_updates produces.


def freeze_zeros() -> optax.GradientTransformationExtraArgs:
  r"""Freezes, element by element, every weight that is or becomes zero.

  .. math::

    M_0 = (w_0 \neq 0), \qquad u_n \leftarrow M_{n-1} \odot u_n, \qquad
    M_n = M_{n-1} \wedge (w_{n-1} + u_n \neq 0).

  Chain it after an optimizer (or use :func:`asr`, which also silences the
  inner optimizer's moments). It applies to every leaf it sees: choose
  leaves with :func:`optax.masked`.

  Example:
    >>> import jax.numpy as jnp, optax, rda_optax
    >>> params = jnp.array([0.0, 1.0])
    >>> opt = optax.chain(optax.sgd(0.5), rda_optax.freeze_zeros())
    >>> state = opt.init(params)
    >>> updates, state = opt.update(jnp.array([1.0, 2.0]), state, params)
    >>> optax.apply_updates(params, updates)   # 1 - 0.5 * 2 = 0: frozen too.
    Array([0., 0.], dtype=float32)
  """

  def init_fn(params):
    return FreezeZerosState(keep=jax.tree.map(lambda p: p != 0, params))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    check_update_args('freeze_zeros', updates, params)
    updates = jax.tree.map(
        lambda u, k: jnp.where(k, u, jnp.zeros_like(u)), updates, state.keep
    )
    keep = jax.tree.map(
        lambda k, p, u: k & (_landed(p, u) != 0), state.keep, params, updates
    )
    return updates, FreezeZerosState(keep=keep)

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )


def _tree_where(cond, a, b):
  return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _where_kept(keep: Any, tree: Any) -> Any:
  """``tree`` zeroed where ``keep`` is False (leaves whose keep is the Python
  ``True`` of a leaf that is not selected pass as they are)."""
  return jax.tree.map(
      lambda k, x: x if k is True else jnp.where(k, x, jnp.zeros_like(x)),
      keep,
      tree,
  )


def _unzeroed_passthrough(view: Any, new: Any, raw: Any) -> Any:
  """``new``, but ``raw``'s leaf wherever ``new`` passed ``view``'s through.

  The optimizer updates from a view of its state zeroed at frozen entries.
  A buffer it returns unchanged (RDA's centre ``w0``) need not be stored
  zeroed: the next step zeroes its view again, inside the fusion that reads
  it. Storing the raw buffer saves a full read and write of it per step.
  Leaves are matched by identity of the traced values, so a buffer the
  optimizer touched in any way is stored as it returned it.
  """
  view_leaves = jax.tree.leaves(view)
  new_leaves, treedef = jax.tree.flatten(new)
  raw_leaves = jax.tree.leaves(raw)
  if len(view_leaves) != len(new_leaves) or len(raw_leaves) != len(view_leaves):
    return new
  return jax.tree.unflatten(
      treedef,
      [
          r if n is v else n
          for v, n, r in zip(view_leaves, new_leaves, raw_leaves)
      ],
  )


def _params_shaped(node: Any, params: Any) -> bool:
  """Whether ``node`` is a copy of the parameter tree: the same structure
  (with :class:`optax.MaskedNode` where ``optax.masked`` left a leaf or a
  subtree out) and, at every other leaf, an array of the parameter's shape."""

  def same(x, p):
    if sparse_point.is_masked(x):
      return True
    if sparse_point.is_masked(p) or not hasattr(x, 'shape'):
      raise ValueError
    if jax.tree.structure(p).num_nodes != 1 or jnp.shape(p) != x.shape:
      raise ValueError
    return True

  try:
    jax.tree.map(same, node, params, is_leaf=sparse_point.is_masked)
  except (ValueError, TypeError):
    return False
  return True


def _map_params_trees(fn: Any, node: Any, params: Any) -> Any:
  """``fn`` applied to every copy of the parameter tree inside ``node``
  (outermost first), whatever wraps it."""
  if _params_shaped(node, params):
    return fn(node)
  treedef = jax.tree.structure(node, is_leaf=sparse_point.is_masked)
  if treedef.num_nodes == 1:  # A leaf (or a MaskedNode): nothing inside.
    return node
  children, treedef = jax.tree.flatten(node, is_leaf=lambda x: x is not node)
  return jax.tree.unflatten(
      treedef, [_map_params_trees(fn, c, params) for c in children]
  )


def zero_frozen_moments(state: Any, keep: Any, params: Any) -> Any:
  """Zeroes frozen entries in every params-shaped tree inside ``state``.

  Momentum buffers, Adam moments, RDA's centre and gradient sum, gradients
  accumulated by ``optax.MultiSteps`` are trees with the parameters'
  structure, wherever they sit in the state (``optax.chain``,
  ``optax.masked`` and ``optax.multi_transform``, whose copies have
  :class:`optax.MaskedNode` for the leaves left out, ``inject_hyperparams``
  ...); each is multiplied by the keep mask, so a frozen weight cannot be
  revived by what its optimizer remembers, and a proximal step sees it as the
  zero it is (RDA's group norms are taken over ``w0 − G/β``: a frozen entry
  must contribute 0 to its group).

  Args:
    state: an optimizer state.
    keep: like ``params``: a boolean array per selected leaf (False where
      frozen), the Python ``True`` for the others.
    params: the parameters the state's optimizer sees (a masked view inside
      ``optax.masked``), which tell which trees are copies of them.
  """

  def zero(tree):
    return jax.tree.map(
        lambda x, k: (
            x
            if k is True or sparse_point.is_masked(x)
            else jnp.where(k, x, jnp.zeros_like(x))
        ),
        tree,
        keep,
        is_leaf=sparse_point.is_masked,
    )

  return _map_params_trees(zero, state, params)


def asr(
    inner: optax.GradientTransformation,
    *,
    mask: selection.MaskOrFn = None,
    start_step: int = 0,
    restart_inner: bool = True,
    retrain: optax.GradientTransformation | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Adaptive sparse retraining: retrain with every zero weight frozen.

  **Last in a chain.** Transforms of the gradient go before it
  (``optax.chain(optax.clip_by_global_norm(1.0), rda_optax.asr(...))``);
  nothing may change its updates after it (``optax.scale``, ``optax.clip``, a
  learning-rate scale, ``optax.add_decayed_weights`` placed after): they would
  move the weights off its exactly sparse points. When asr wraps transforms of
  this library, which check their own updates, it checks its updates instead
  (it changes theirs): such a change is detected when it recurs on consecutive
  steps (the state records where each update lands and the next step
  compares): then :func:`rda_optax.sparse_params` raises
  :class:`rda_optax.ChainOrderError`. A change on isolated steps only is not
  detected.

  From step ``start_step`` on (counting updates from 0), every weight of a
  selected leaf that is exactly zero is frozen, and so is every weight that
  becomes exactly zero later (the mask is sticky):

  .. math::

    M \leftarrow (w \neq 0) \text{ at the start}, \qquad
    g \leftarrow M \odot g, \quad u = M \odot \mathrm{inner}(g), \qquad
    M \leftarrow M \wedge (w + u \neq 0).

  Since frozen weights are exactly zero and every weight that lands on zero
  freezes, the sticky mask is always the weights' own nonzero pattern,
  :math:`M = (w \neq 0)`: it is computed from ``params`` at each step rather
  than stored (no mask in the state, no pass to update one). This assumes
  ``params`` are the weights the previous updates produced, as in every optax
  loop; a weight changed to nonzero outside the optimizer moves again.

  The inner optimizer's params-shaped buffers (momentum, moments, RDA's
  centre and gradient sum, ``MultiSteps``' accumulated gradients) are zeroed
  at frozen entries at every step, wherever they sit in its state (also
  inside ``optax.masked`` / ``optax.multi_transform``), so nothing can revive
  a frozen weight. Leaves are chosen with ``mask`` (default: kernels,
  ``ndim > 1``; biases and batch-norm parameters, which often start at
  exactly zero, are never frozen).

  **Compositions.** ``inner`` may be any optax transformation:
  ``optax.chain``, ``optax.masked`` (e.g. ``chain(masked(rmda(...),
  kernels), masked(optax.sgd(...), biases))``), ``optax.multi_transform``,
  ``optax.inject_hyperparams``, ``optax.MultiSteps`` and nestings of them;
  ``asr`` itself may sit inside ``optax.masked``, ``multi_transform`` or
  ``MultiSteps``. :func:`rda_optax.sparse_params` finds the sparse point in
  any of them (``tests/test_optax_compat.py`` trains each).

  **Counting steps under** ``optax.MultiSteps(every_k_schedule=k)``.
  ``start_step`` counts calls of ``asr``'s ``update``. Outside,
  ``asr(optax.MultiSteps(inner, k), start_step=n)``, that is every call, the
  steps of your loop: retraining starts at loop step ``n`` (the step that
  jumps to the sparse point; choose ``n`` a multiple of ``k``, or the
  restart drops the gradients accumulated so far in that window). Inside,
  ``optax.MultiSteps(asr(inner, start_step=s), k)``, ``asr`` is called once
  per applied update: retraining starts with update ``s``, applied at loop
  step ``(s + 1)·k − 1``.

  With ``start_step > 0`` one optimizer covers a whole run: the sparse phase
  (e.g. RDA) for ``start_step`` updates, then retraining. At the start of
  retraining ``restart_inner=True`` (the default) re-initialises the inner
  optimizer from the current (sparse) weights: for RDA the centre becomes the
  sparse weights and the gradient sum and step count restart; for SGD the
  momentum restarts. ``restart_inner=False`` carries the inner state on. The
  paper does not say which it used; on LeNet-300-100 / MNIST
  (``benchmarks/asr_restart.py``) restarting left 2.6 times fewer nonzero
  weights at the same accuracy, hence the default.

  ``retrain`` retrains with another optimizer (e.g. ``optax.sgd(0.01,
  momentum=0.9)`` after :func:`rda_optax.rmda`): it starts at
  ``start_step`` from the sparse weights, and ``inner`` is no longer updated.

  When the inner optimizer keeps an exactly sparse point apart from the
  parameters (:func:`rda_optax.rmda` with momentum,
  :func:`rda_optax.variable_splitting`; see :func:`rda_optax.sparse_params`),
  retraining starts from that point: the step at ``start_step`` moves the
  parameters to it, takes the mask from it, and applies the retraining step
  from there.

  Example:
    >>> import jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jnp.array([[0.0, 1.0], [2.0, 0.0]])}
    >>> opt = rda_optax.asr(optax.sgd(0.1, momentum=0.9))
    >>> state = opt.init(params)
    >>> updates, state = opt.update({'w': jnp.ones((2, 2))}, state, params)
    >>> optax.apply_updates(params, updates)['w']
    Array([[0. , 0.9],
           [1.9, 0. ]], dtype=float32)

  Args:
    inner: the optimizer to retrain with (e.g. :func:`rda_optax.rda`,
      :func:`optax.sgd`).
    mask: leaves to freeze zeros in (tree of bools or callable, as in
      :func:`optax.masked`); default :func:`rda_optax.default_mask`.
    start_step: update count at which freezing starts (the mask is taken
      from the weights at that step); under ``optax.MultiSteps`` see above.
    restart_inner: re-initialise ``inner`` from the weights at
      ``start_step`` (default True); False continues its state.
    retrain: the optimizer to retrain with from ``start_step`` on (default:
      ``inner``).

  References:
    He et al., *Make ℓ1 Regularization Effective in Training Sparse CNN*,
    2020, §4.2.
  """
  if (
      not isinstance(start_step, (int, np.integer))
      or isinstance(start_step, bool)
      or not 0 <= start_step < 2**31 - 1
  ):
    raise ValueError(
        f'asr start_step must be an int in [0, 2**31 - 1) (the update count, '
        f'an int32, at which retraining starts), got {start_step!r}.'
    )
  start_step = int(start_step)
  if not hasattr(inner, 'init') or not hasattr(inner, 'update'):
    raise TypeError(
        'asr wraps an optax GradientTransformation, e.g. '
        'rda_optax.asr(rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(1e-5))).'
    )
  inner = optax.with_extra_args_support(inner)
  if retrain is not None:
    if not hasattr(retrain, 'init') or not hasattr(retrain, 'update'):
      raise TypeError(
          'asr retrain must be an optax GradientTransformation, '
          'e.g. optax.sgd(0.01, momentum=0.9).'
      )
    retrain = optax.with_extra_args_support(retrain)

  def selected_leaves(params):
    return selection.resolve_mask(mask, params)

  def init_fn(params):
    selection.check_selects(mask, params, 'asr')
    inner_state = inner.init(params)
    retrain_state = None if retrain is None else retrain.init(params)
    checks = landing.contains_checks((inner_state, retrain_state))
    return ASRState(
        count=jnp.zeros([], jnp.int32),
        selected=jax.tree.map(jnp.asarray, selected_leaves(params)),
        inner_state=inner_state,
        retrain_state=retrain_state,
        retraining=jnp.asarray(start_step == 0),
        landing=landing.init() if checks else None,
    )

  def update_fn(updates, state, params=None, **extra_args):
    check_update_args('asr', updates, params)
    check = state.landing
    if check is not None:
      check = landing.verify(check, params, state.count)
    always = start_step == 0
    active = jnp.asarray(True) if always else state.count >= start_step
    inner_state, retrain_state = state.inner_state, state.retrain_state
    # Retraining starts from the inner optimizer's sparse point, if it keeps
    # one apart from the parameters (static: known from the state's type).
    jump = not always and sparse_point.has_sparse_point(inner_state)
    base = params
    if not always:
      # When retraining starts, the retraining optimizer is started from the
      # weights; a cond, so other steps pay nothing. (With start_step == 0,
      # init already did it from these weights.)
      starting = state.count == start_step
      if jump:
        base = jax.lax.cond(
            starting,
            lambda s: sparse_point.point_in(s, params),
            lambda s: params,
            inner_state,
        )
      if retrain is not None:
        retrain_state = jax.lax.cond(
            starting, lambda s: retrain.init(base), lambda s: s, retrain_state
        )
      elif restart_inner:
        inner_state = jax.lax.cond(
            starting, lambda s: inner.init(base), lambda s: s, state.inner_state
        )
    # The sticky keep mask is the selected weights' nonzero pattern (True: a
    # leaf that is not selected); before retraining, everything moves.
    keep = jax.tree.map(
        lambda b, sel: (b != 0) | ~active if sel else True,
        base,
        selected_leaves(base),
    )
    # Frozen entries: no gradient in, no memory kept, no update out.
    grads = _where_kept(keep, updates)
    if retrain is None:
      view = zero_frozen_moments(inner_state, keep, base)
      new_updates, new_state = inner.update(grads, view, base, **extra_args)
      inner_state = _unzeroed_passthrough(view, new_state, inner_state)
    else:

      def retrain_step(states):
        i_state, r_state = states
        view = zero_frozen_moments(r_state, keep, base)
        u, new_state = retrain.update(grads, view, base, **extra_args)
        return u, (i_state, _unzeroed_passthrough(view, new_state, r_state))

      def inner_step(states):
        i_state, r_state = states
        u, i_state = inner.update(grads, i_state, base, **extra_args)
        return u, (i_state, r_state)

      states = (inner_state, retrain_state)
      if always:
        new_updates, states = retrain_step(states)
      else:
        new_updates, states = jax.lax.cond(
            active, retrain_step, inner_step, states
        )
      inner_state, retrain_state = states
    frozen_updates = _where_kept(keep, new_updates)
    if jump:
      # From the parameters to the sparse point, then the step from there
      # (zero where the two coincide; exact zeros land on exact zeros).
      frozen_updates = jax.tree.map(
          lambda b, p, u: ((b - p) + u).astype(jnp.asarray(p).dtype),
          base,
          params,
          frozen_updates,
      )
    if check is not None:
      # The updates of the wrapped transforms are changed here (frozen
      # entries, the jump): asr checks its own instead of theirs.
      inner_state = landing.disarm(inner_state)
      retrain_state = landing.disarm(retrain_state)
      frozen_updates = landing.as_difference(
          params, optax.apply_updates(params, frozen_updates)
      )
      check = landing.record(check, params, frozen_updates)
    return frozen_updates, ASRState(
        count=optax.safe_increment(state.count),
        selected=state.selected,
        inner_state=inner_state,
        retrain_state=retrain_state,
        retraining=active,
        landing=check,
    )

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )

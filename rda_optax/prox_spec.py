"""How :func:`rda_optax.rmda` carries its regularizer in its state: the
regularizer and the leaf mask as static parts of the state's structure
(:class:`RMDAProx`, one class per equal static parts, made by
:func:`prox_spec`), its array-valued fields (a strength that
``optax.inject_hyperparams`` passes as an array) as the state's one field
``args``, so that the state alone gives the sparse point, under ``jit`` too,
and equal transforms have equal state structures."""

from __future__ import annotations

from collections.abc import Mapping
import copy
import dataclasses
import functools
import types
from typing import Any, NamedTuple

import jax
import numpy as np


class _Arg:
  """Where an array-valued field of a regularizer was (see :class:`RMDAProx`)."""

  def __repr__(self):
    return '<arg>'

  def __reduce__(self):
    return '_ARG'


_ARG = _Arg()


def _is_array(x: Any) -> bool:
  return isinstance(x, (jax.Array, np.ndarray)) or isinstance(
      x, jax.core.Tracer
  )


def _static_key(x: Any, depth: int = 0) -> Any:
  """A hashable key of a static value, equal for equal values: a function
  is keyed by its code, defaults and captured values, so that the closures a
  factory makes anew at each call (``optax.inject_hyperparams`` calls it at
  every update) give one state structure, not one per call."""
  if depth > 8:
    return ('id', id(x))
  if isinstance(x, types.FunctionType):
    cells = []
    for cell in x.__closure__ or ():
      try:
        cells.append(_static_key(cell.cell_contents, depth + 1))
      except ValueError:  # an empty cell
        cells.append(None)
    return (
        'fn',
        x.__code__,
        _static_key(x.__defaults__, depth + 1),
        _static_key(x.__kwdefaults__, depth + 1),
        tuple(cells),
    )
  if isinstance(x, functools.partial):
    return (
        functools.partial,
        _static_key(x.func, depth + 1),
        _static_key(x.args, depth + 1),
        _static_key(x.keywords, depth + 1),
    )
  if isinstance(x, Mapping):
    return (
        type(x),
        tuple((k, _static_key(v, depth + 1)) for k, v in x.items()),
    )
  if isinstance(x, (list, tuple)):
    return (type(x), tuple(_static_key(v, depth + 1) for v in x))
  try:
    hash(x)
    return x
  except TypeError:
    return ('id', id(x))


def _split(x: Any, args: list[Any]) -> tuple[Any, Any]:
  """``(template, key)`` of a regularizer (or a part of one): ``template`` is
  ``x`` with every array-valued field replaced by :data:`_ARG` (the arrays
  appended to ``args``, in order), ``key`` a hashable description of it."""
  if _is_array(x):
    args.append(x)
    return _ARG, _ARG
  if dataclasses.is_dataclass(x) and not isinstance(x, type):
    changed, keys = {}, []
    for f in dataclasses.fields(x):
      value = getattr(x, f.name)
      t, k = _split(value, args)
      keys.append((f.name, k))
      if t is not value:
        changed[f.name] = t
    if changed:
      x = copy.copy(x)
      for name, t in changed.items():
        object.__setattr__(x, name, t)  # (frozen: no validation rerun)
    return x, (type(x), tuple(keys))
  if isinstance(x, functools.partial):
    # A schedule such as partial(zhu_gupta_sparsity, final_sparsity=s): under
    # optax.inject_hyperparams its keywords may be traced arrays.
    t_args, k_args = _split(x.args, args)
    t_kw, k_kw = _split(dict(x.keywords), args)
    key = (functools.partial, x.func, k_args, k_kw)
    if t_args is x.args and all(t_kw[k] is v for k, v in x.keywords.items()):
      return x, key
    return functools.partial(x.func, *t_args, **t_kw), key
  if isinstance(x, Mapping) or isinstance(x, (list, tuple)):
    items = list(x.items()) if isinstance(x, Mapping) else list(enumerate(x))
    parts = [(k, *_split(v, args)) for k, v in items]
    key = (type(x), tuple((k, kk) for k, _, kk in parts))
    if all(t is v for (_, v), (_, t, _) in zip(items, parts)):
      return x, key
    if isinstance(x, Mapping):
      return type(x)({k: t for k, t, _ in parts}), key
    return type(x)(t for _, t, _ in parts), key
  return x, _static_key(x)


def _fill(template: Any, args: Any) -> Any:
  """The inverse of :func:`_split`: ``template`` with ``args`` in its places."""
  if template is _ARG:
    return next(args)
  if dataclasses.is_dataclass(template) and not isinstance(template, type):
    changed = {}
    for f in dataclasses.fields(template):
      value = getattr(template, f.name)
      filled = _fill(value, args)
      if filled is not value:
        changed[f.name] = filled
    if not changed:
      return template
    x = copy.copy(template)
    for name, value in changed.items():
      object.__setattr__(x, name, value)
    return x
  if isinstance(template, functools.partial):
    t_args = _fill(template.args, args)
    t_kw = _fill(dict(template.keywords), args)
    if t_args is template.args and all(
        t_kw[k] is v for k, v in template.keywords.items()
    ):
      return template
    return functools.partial(template.func, *t_args, **t_kw)
  if isinstance(template, Mapping):
    items = {k: _fill(v, args) for k, v in template.items()}
    if all(items[k] is v for k, v in template.items()):
      return template
    return type(template)(items)
  if isinstance(template, (list, tuple)):
    items = [_fill(v, args) for v in template]
    if all(a is b for a, b in zip(items, template)):
      return template
    return type(template)(items)
  return template


class RMDAProx(NamedTuple):
  """How :func:`rmda` computes its prox point, carried in its state.

  The regularizer and the leaf mask are static: they live in the state's
  pytree structure (each ``(regularizer, mask)`` gets its own subclass, made
  once by :func:`prox_spec`, holding them as class attributes), so that the
  state alone gives the sparse point, under ``jit`` too. The regularizer's
  array-valued fields (a strength that ``optax.inject_hyperparams`` passes as
  an array) are the one field, ``args``: their values at the last update.
  Checkpoints, Orbax and ``flax.serialization`` see a node holding ``args``.
  """

  args: tuple = ()

  template = None  # The regularizer, its array fields replaced by _ARG.
  mask = None

  @property
  def regularizer(self) -> Any:
    return _fill(self.template, iter(self.args))

  def __reduce__(self):
    return (_prox_from, (self.template, self.mask, tuple(self.args)))

  def __repr__(self):
    return f'RMDAProx(regularizer={self.regularizer!r})'


_PROX_SPECS: dict[Any, type] = {}


def _mask_key(mask: Any) -> Any:
  if callable(mask):
    return _static_key(mask)
  try:
    hash(mask)
    return mask
  except TypeError:
    pass
  try:
    leaves, treedef = jax.tree.flatten(mask)
    key = (treedef, tuple(leaves))
    hash(key)
    return key
  except TypeError:
    return ('id', id(mask))


def _prox_class(template: Any, key: Any, mask: Any) -> type:
  key = (key, _mask_key(mask))
  cls = _PROX_SPECS.get(key)
  if cls is None:
    cls = type(
        'RMDAProx',
        (RMDAProx,),
        {
            '__slots__': (),
            '__module__': __name__,
            # (staticmethod: a callable mask is not to become a method.)
            'template': staticmethod(template),
            'mask': staticmethod(mask),
        },
    )
    _PROX_SPECS[key] = cls
  return cls


def _prox_from(template: Any, mask: Any, args: tuple) -> RMDAProx:
  _, key = _split(_fill(template, iter(args)), [])
  return _prox_class(template, key, mask)(args=tuple(args))


def prox_spec(regularizer: Any, mask: Any) -> RMDAProx:
  """The :class:`RMDAProx` of ``(regularizer, mask)``: one class for equal
  static parts, so that the states of equal transforms have equal
  structures (also under ``optax.inject_hyperparams``, which builds the
  transform anew at every step, with traced strengths)."""
  args: list[Any] = []
  template, key = _split(regularizer, args)
  return _prox_class(template, key, mask)(args=tuple(args))

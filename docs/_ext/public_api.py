"""The API reference, generated from the packages' public names, and its check.

Two pieces, both driven by ``public_api`` in ``docs/conf.py``:

* the ``public-api`` directive writes one section of the reference: an
  autosummary table, then the autodoc entry of every public name of a
  package that is defined in the section's modules. The names come from the
  package itself (its ``__all__`` where it has one, else every public name
  it imports from its own submodules), so a name added to
  ``rda_optax/__init__.py`` appears in the reference without editing a page;
  a name whose module no section lists goes to the section marked ``*``.
* the coverage check (optax has the same, ``docs/ext/coverage_check.py``):
  when the build's documents have been read, every public name must be an
  object of Sphinx's Python domain, documented under its public name
  (``rda_optax.rmda``, not ``rda_optax.rmda.rmda``), with a docstring. A
  missing one fails the build with the list of names, whatever ``-W`` says.

``public_names`` and ``undocumented`` are plain functions (the tests call
them without Sphinx).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import sys
import types
from typing import Any, Iterable, Mapping, Sequence

# Sphinx is imported lazily in `setup` and the directive, so that the tests
# can use the plain functions of this module without the docs extra.


def _is_public(name: str) -> bool:
  return not name.startswith('_')


@functools.lru_cache(maxsize=None)
def _definitions(module_name: str) -> tuple[dict[str, int], frozenset[str]]:
  """Top-level names of a module's source with their lines, and those of them
  bound by an assignment (not ``def`` or ``class``)."""
  module = sys.modules.get(module_name) or importlib.import_module(module_name)
  try:
    source = inspect.getsource(module)
  except (OSError, TypeError):
    return {}, frozenset()
  lines, assigned = {}, set()
  for node in ast.parse(source).body:
    targets = []
    if isinstance(node, ast.Assign):
      targets = node.targets
    elif isinstance(node, ast.AnnAssign):
      targets = [node.target]
    elif isinstance(
        node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    ):
      lines.setdefault(node.name, node.lineno)
    for target in targets:
      if isinstance(target, ast.Name):
        lines.setdefault(target.id, node.lineno)
        assigned.add(target.id)
  return lines, frozenset(assigned)


def _assigned_names(module_name: str) -> frozenset[str]:
  return _definitions(module_name)[1]


def defining_module(package: str, name: str, obj: Any) -> str:
  """The submodule of ``package`` where the public ``name`` is defined.

  A function or class says so itself (``__module__``); a constant (a dict of
  models, of presets) is looked up among the package's loaded submodules:
  the one whose source assigns it.
  """
  module = getattr(obj, '__module__', None)
  if (
      isinstance(obj, (type, types.FunctionType))
      and isinstance(module, str)
      and (module == package or module.startswith(package + '.'))
  ):
    return module
  for module_name in sorted(sys.modules):
    if not module_name.startswith(package + '.'):
      continue
    sub = sys.modules[module_name]
    if getattr(sub, name, None) is obj and name in _assigned_names(module_name):
      return module_name
  return package


def public_names(spec: Mapping[str, Any]) -> list[tuple[str, str, Any, str]]:
  """``(public name, defining module, object, kind)`` of one package's API.

  ``spec['package']`` is the package; its public names are its ``__all__``
  where it has one, else every name without a leading underscore that is not
  a module and is defined inside the package (what ``import`` brings in from
  elsewhere, such as ``typing.Any``, is not its API). ``spec['names']``,
  where given, lists the public names explicitly (dotted, relative to the
  package), for a package whose entry points are a few names of a few
  submodules (``train``). ``kind`` is ``function``, ``class``, ``exception``
  or ``data``.
  """
  key = (spec['package'], tuple(spec['names']) if spec.get('names') else None)
  if key not in _PUBLIC_NAMES:
    _PUBLIC_NAMES[key] = _public_names(spec)
  return _PUBLIC_NAMES[key]  # read once per build (a process)


_PUBLIC_NAMES: dict[Any, list[tuple[str, str, Any, str]]] = {}


def _public_names(spec: Mapping[str, Any]) -> list[tuple[str, str, Any, str]]:
  """`public_names`, not cached."""
  package = spec['package']
  explicit = spec.get('names')
  found = []
  if explicit is not None:
    for dotted in explicit:
      module_name, _, name = f'{package}.{dotted}'.rpartition('.')
      try:
        obj = getattr(importlib.import_module(module_name), name)
      except (ImportError, AttributeError) as e:
        raise LookupError(
            f'public_api of docs/conf.py names {module_name}.{name}, which'
            f' cannot be imported ({type(e).__name__}: {e}); update the list'
        ) from e
      found.append((f'{module_name}.{name}', module_name, obj))
  else:
    module = importlib.import_module(package)
    has_all = hasattr(module, '__all__')
    names = (
        module.__all__
        if has_all
        else [n for n in vars(module) if _is_public(n)]
    )
    for name in names:
      obj = getattr(module, name)
      if isinstance(obj, types.ModuleType):
        continue
      where = defining_module(package, name, obj)
      obj_module = getattr(obj, '__module__', None)
      inside = where != package or (
          isinstance(obj_module, str) and obj_module == package
      )
      if not has_all and not inside:
        continue  # imported from elsewhere (typing.Any, ...): not the API
      found.append((f'{package}.{name}', where, obj))
  result = []
  for full, where, obj in found:
    obj_module = getattr(obj, '__module__', None)
    defined_here = isinstance(obj_module, str) and (
        obj_module == package or obj_module.startswith(package + '.')
    )
    if inspect.isclass(obj) and defined_here:
      kind = 'exception' if issubclass(obj, BaseException) else 'class'
    elif callable(obj) and defined_here:
      kind = 'function'
    else:
      # A constant, or an alias of an object from elsewhere (models'
      # default_kernel_init is jax's he_normal): documented by the ``#:``
      # comment at its assignment.
      kind = 'data'
    result.append((full, where, obj, kind))
  return result


def _source_line(full_name: str, where: str, obj: Any) -> int:
  """Where a public name is defined in its module (for the reading order)."""
  lines = _definitions(where)[0]
  name = getattr(obj, '__name__', None)
  if isinstance(name, str) and name in lines:
    return lines[name]
  return lines.get(full_name.rpartition('.')[2], 10**9)


def sections(
    spec: Mapping[str, Any],
) -> dict[str, list[tuple[str, str, Any, str]]]:
  """The public names of a package, by section, in reading order.

  Sections come in the order ``spec['sections']`` lists them; within a
  section, by the order of its modules, then functions, classes and
  constants, each in the order of the definitions in a module.
  A name whose module no section names goes to the section whose modules are
  ``'*'`` (or, when there is none, is left for the coverage check to
  report).
  """
  entries = public_names(spec)
  by_section: dict[str, list] = {key: [] for key, _ in spec['sections']}
  catch_all = None
  module_rank = {}
  for key, modules in spec['sections']:
    if modules == '*':
      catch_all = key
      continue
    for rank, module in enumerate(modules):
      module_rank[module] = (key, rank)
  for entry in entries:
    where = entry[1]
    key, rank = module_rank.get(where, (catch_all, 0))
    if key is None:
      continue
    # Factories before the classes they return (rda, then RDAState), then
    # constants; each in the order of the source.
    kind_rank = {'function': 0, 'class': 1, 'exception': 1, 'data': 2}
    by_section[key].append(
        (
            rank,
            kind_rank[entry[3]],
            _source_line(entry[0], where, entry[2]),
            entry,
        )
    )
  return {
      key: [e for *_, e in sorted(items, key=lambda t: t[:3])]
      for key, items in by_section.items()
  }


def _has_docstring(full_name: str, where: str, obj: Any, kind: str) -> bool:
  if kind != 'data':
    return bool(inspect.getdoc(obj))
  return bool(_data_doc(full_name, where, obj))


def _data_doc(full_name: str, where: str, obj: Any) -> list[str]:
  """A constant's documentation: its ``#:`` comment (or string) where assigned.

  Looked up in ``where``, then in every loaded module of the package that
  assigns the same object under the same name (``train.config.PRESETS`` is
  assigned in ``train.presets``).
  """
  from sphinx.pycode import ModuleAnalyzer  # pylint: disable=import-outside-toplevel

  name = full_name.rpartition('.')[2]
  package = full_name.partition('.')[0]
  candidates = [where] + [
      m
      for m in sorted(sys.modules)
      if m.startswith(package + '.')
      and getattr(sys.modules[m], name, None) is obj
      and name in _assigned_names(m)
  ]
  for module_name in candidates:
    try:
      docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    except Exception:  # pylint: disable=broad-except
      continue
    lines = [l.rstrip('\n') for l in docs.get(('', name), [])]
    if any(l.strip() for l in lines):
      return lines
  return []


def undocumented(
    api: Mapping[str, Mapping[str, Any]], documented: Iterable[str]
) -> list[str]:
  """Public names that are not documented objects, or have no docstring.

  Args:
    api: ``public_api`` of ``docs/conf.py``.
    documented: full names of the objects the build documented (the keys of
      the Python domain's objects).

  Returns:
    Sorted ``name (why)`` strings; empty when every public name is
    documented.
  """
  documented = set(documented)
  missing = []
  for spec in api.values():
    for full, where, obj, kind in public_names(spec):
      if full not in documented:
        missing.append(f'{full} (not in the API reference)')
      elif not _has_docstring(full, where, obj, kind):
        missing.append(f'{full} (no docstring)')
  return sorted(missing)


def _directive_lines(
    package_key: str, section: str, spec: Mapping[str, Any]
) -> list[str]:
  """The reStructuredText of one section: summary table, then every entry."""
  entries = sections(spec)[section]
  if not entries:
    return []
  # The table is read in the package (autosummary wants its names relative
  # to the current module), so that the references of the summaries
  # (``State of :func:`rda`.``) resolve; the entries below set their own.
  package = spec['package']
  lines = [f'.. currentmodule:: {package}', '', '.. autosummary::']
  lines += ['   :nosignatures:', '']
  lines += [f'   ~{full[len(package) + 1:]}' for full, *_ in entries]
  lines.append('')
  for full, where, obj, kind in entries:
    module, _, name = full.rpartition('.')
    lines.append(f'.. currentmodule:: {module}')
    lines.append('')
    if kind == 'data':
      # Its doc is the ``#:`` comment where a submodule assigns it, which
      # autodoc does not look for (see `_constant_docstring`).
      lines += [f'.. autodata:: {name}', '   :no-value:', '']
    elif kind in ('class', 'exception'):
      directive = 'autoexception' if kind == 'exception' else 'autoclass'
      lines.append(f'.. {directive}:: {name}')
      if not (_is_namedtuple(obj) or _is_flax_module(obj)):
        lines.append('   :members:')
      lines.append('')
    else:
      lines += [f'.. autofunction:: {name}', '']
  return lines


def _is_flax_module(obj: Any) -> bool:
  """A Flax module: its fields are in its docstring's Attributes; autodoc's
  ``:members:`` would add them again (``dtype: alias of float32``)."""
  return any(
      c.__module__.startswith('flax.') and c.__name__ == 'Module'
      for c in getattr(obj, '__mro__', ())
  )


def _is_namedtuple(obj: Any) -> bool:
  return (
      inspect.isclass(obj)
      and issubclass(obj, tuple)
      and hasattr(obj, '_fields')
  )


def setup(app: Any) -> dict[str, Any]:
  """Registers the ``public-api`` directive, its config and the check."""
  # pylint: disable=import-outside-toplevel
  from docutils import nodes
  from docutils.parsers.rst import directives
  from docutils.statemachine import StringList
  from sphinx.util import logging
  from sphinx.util.docutils import SphinxDirective
  # pylint: enable=import-outside-toplevel

  class PublicApi(SphinxDirective):
    """``.. public-api:: PACKAGE_KEY SECTION``: one section of the reference."""

    required_arguments = 2
    has_content = False
    option_spec = {
        'allow-empty': directives.flag,
        'title': directives.unchanged,
    }

    def run(self) -> list[Any]:
      key, section = self.arguments
      api = self.config.public_api
      if key not in api:
        raise self.error(f'public-api: no package {key!r} in public_api')
      spec = api[key]
      if section not in dict(spec['sections']):
        raise self.error(
            f'public-api: no section {section!r} for {key!r}; sections: '
            + ', '.join(s for s, _ in spec['sections'])
        )
      try:
        lines = _directive_lines(key, section, spec)
      except LookupError as e:
        raise self.error(str(e)) from e
      if lines and self.options.get('title'):
        # A heading for a section that may be empty (the catch-all).
        lines = ['.. rubric:: ' + self.options['title'], ''] + lines
      if not lines:
        if 'allow-empty' in self.options:
          return []
        raise self.error(f'public-api: section {section!r} of {key} is empty')
      container = nodes.container()
      self.state.nested_parse(
          StringList(lines, source=f'<public-api {key} {section}>'),
          self.content_offset,
          container,
      )
      return container.children

  logger = logging.getLogger(__name__)

  def check_coverage(app_: Any, env: Any) -> None:
    try:
      missing = undocumented(
          app_.config.public_api, env.get_domain('py').objects
      )
    except LookupError as e:
      missing = [str(e)]
    if missing:
      logger.error(
          'Every public name must be in the API reference (docs/api/) with a'
          ' docstring; missing:\n  %s\nA name defined in a module that no'
          ' section of public_api (docs/conf.py) lists goes to the section'
          ' marked "*".',
          '\n  '.join(missing),
      )
      app_.statuscode = 1  # fails the build, with or without -W

  def constant_docstring(app_, what, name, obj, options, lines):
    """autodoc-process-docstring: a public constant's ``#:`` documentation.

    autodoc (and autosummary's table) look for the documentation of
    ``models.REGISTRY`` in ``models/__init__.py``, where it is only imported,
    and fall back to the docstring of its type (``dict``); the documentation
    is the ``#:`` comment where ``models.registry`` assigns it.
    """
    del options
    if what not in ('data', 'attribute'):
      return
    for spec in app_.config.public_api.values():
      for full, where, obj_, kind in public_names(spec):
        if full == name and kind == 'data' and obj_ is obj:
          lines[:] = _data_doc(full, where, obj) + ['']
          return

  app.add_config_value('public_api', {}, 'env')
  app.connect('autodoc-process-docstring', constant_docstring)
  app.add_directive('public-api', PublicApi)
  app.connect('env-check-consistency', check_coverage)
  return {'version': '1', 'parallel_read_safe': True}

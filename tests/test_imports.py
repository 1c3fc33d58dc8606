"""No import cycles between the project's modules.

Every module of the packages ``rda_optax``, ``train`` and ``models`` is read
with ``ast`` (nothing is imported); each ``import`` / ``from ... import``
statement that names a project module, at the top of a module or inside a
function, is an edge of the graph. A cycle fails the test with its path.
"""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('rda_optax', 'train', 'models')


def project_modules() -> dict[str, str]:
  """Dotted module name -> file path, for every module of ``PACKAGES``."""
  modules = {}
  for package in PACKAGES:
    root = os.path.join(REPO, package)
    for dirpath, dirnames, files in os.walk(root):
      dirnames[:] = sorted(d for d in dirnames if not d.startswith(('.', '_')))
      for fname in sorted(files):
        if not fname.endswith('.py'):
          continue
        rel = os.path.relpath(os.path.join(dirpath, fname), REPO)
        parts = rel[: -len('.py')].split(os.sep)
        if parts[-1] == '__init__':
          parts = parts[:-1]
        modules['.'.join(parts)] = os.path.join(dirpath, fname)
  return modules


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
  """The absolute module a ``from`` import reads from (relative or not)."""
  if not node.level:
    return node.module or ''
  parts = module.split('.')
  if not is_package:
    parts = parts[:-1]
  parts = parts[: len(parts) - (node.level - 1)]
  return '.'.join(parts + ([node.module] if node.module else []))


def imports_of(module: str, path: str, modules: dict[str, str]) -> set[str]:
  """The project modules that ``module`` imports anywhere in its file."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read(), filename=path)
  is_package = os.path.basename(path) == '__init__.py'
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name in modules:
          found.add(alias.name)
    elif isinstance(node, ast.ImportFrom):
      base = _base(module, is_package, node)
      for alias in node.names:
        name = f'{base}.{alias.name}'
        if name in modules:  # from package import submodule
          found.add(name)
        elif base in modules:  # from module import name
          found.add(base)
  found.discard(module)
  return found


def import_graph() -> dict[str, set[str]]:
  modules = project_modules()
  return {m: imports_of(m, p, modules) for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """A cycle of ``graph`` as a path whose last node is its first, or None."""
  state: dict[str, int] = {}  # 1: on the current path, 2: done.
  path: list[str] = []

  def visit(node):
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt) :] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    path.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_graph_sees_the_project():
  graph = import_graph()
  assert {'rda_optax', 'train.train', 'models'} <= set(graph)
  assert 'train.config' in graph['train.cli']


def test_find_cycle_names_the_cycle():
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == [
      'a',
      'b',
      'c',
      'a',
  ]


def test_no_import_cycles():
  cycle = find_cycle(import_graph())
  assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)

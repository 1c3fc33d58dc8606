"""Every module of the library carries runnable examples in its docstrings.

``python -m pytest`` runs them (``--doctest-modules`` over ``rda_optax`` and
``models``, pyproject.toml); this test makes sure they are there, so a
module cannot lose its examples silently.
"""

import doctest
import importlib
import os
import tomllib

import pytest

MODULES = [
    'asr',
    'constraints',
    'coupled',
    'group_newton',
    'initializers',
    'landing',
    'nm',
    'partition',
    'preconditioned',
    'prox_adamw',
    'prox_sgd',
    'pruning',
    'ramda',
    'rda',
    'regularizers',
    'rmda',
    'selection',
    'sparse_io',
    'sparse_point',
    'sparsity',
    'splitting',
]


@pytest.mark.parametrize('name', MODULES)
def test_module_has_docstring_examples(name):
  module = importlib.import_module(f'rda_optax.{name}')
  tests = doctest.DocTestFinder().find(module)
  assert (
      sum(len(t.examples) for t in tests) > 0
  ), f'rda_optax.{name} has no runnable docstring example'


def test_doctests_run_with_the_test_command():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, 'pyproject.toml'), 'rb') as f:
    options = tomllib.load(f)['tool']['pytest']['ini_options']
  assert '--doctest-modules' in options['addopts']
  assert 'rda_optax' in options['testpaths']

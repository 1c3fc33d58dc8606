"""The runnable examples in the core modules' docstrings are correct."""

import doctest
import importlib

import pytest

MODULES = [
    'asr',
    'prox_sgd',
    'rda',
    'regularizers',
    'selection',
    'sparse_io',
    'splitting',
]


@pytest.mark.parametrize('name', MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(f'rda_optax.{name}')
  result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.attempted > 0
  assert result.failed == 0

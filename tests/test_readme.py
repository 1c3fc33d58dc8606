"""The README's Python blocks run as written, in order, in one namespace."""

import os
import re

import pytest

README = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.md'
)


def python_blocks():
  with open(README, encoding='utf-8') as f:
    text = f.read()
  return re.findall(r'^```python\n(.*?)^```$', text, flags=re.S | re.M)


def test_readme_has_python_blocks():
  assert len(python_blocks()) >= 6


def test_readme_python_blocks_run_in_order(capsys):
  pytest.importorskip('flax')
  namespace = {'__name__': '__readme__'}
  for i, block in enumerate(python_blocks()):
    try:
      exec(compile(block, f'README.md block {i}', 'exec'), namespace)  # pylint: disable=exec-used
    except Exception as e:  # pylint: disable=broad-except
      pytest.fail(
          f'README python block {i} failed: {type(e).__name__}: {e}\n'
          f'{block}'
      )
  assert 'sparse' in namespace and 'logits' in namespace
  capsys.readouterr()

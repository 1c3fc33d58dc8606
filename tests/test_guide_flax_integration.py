"""docs/guides/flax_integration.md: its Python blocks run as written, in
order, in one namespace (as tests/test_readme.py does for the README)."""

import os
import re

import pytest

GUIDE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    'docs',
    'guides',
    'flax_integration.md',
)


def python_blocks():
  with open(GUIDE, encoding='utf-8') as f:
    text = f.read()
  return re.findall(r'^```python\n(.*?)^```$', text, flags=re.S | re.M)


def test_flax_integration_guide_runs(capsys):
  pytest.importorskip('flax')
  pytest.importorskip('orbax.checkpoint')
  blocks = python_blocks()
  assert len(blocks) >= 7
  namespace = {'__name__': '__guide__'}
  for i, block in enumerate(blocks):
    try:
      exec(compile(block, f'flax_integration.md block {i}', 'exec'), namespace)  # pylint: disable=exec-used
    except Exception as e:  # pylint: disable=broad-except
      pytest.fail(
          f'guide python block {i} failed: {type(e).__name__}: {e}\n{block}'
      )
  out = capsys.readouterr().out
  assert 'without a target' in out and 'ChainOrderError' in out

"""The Python blocks of every guide in docs/guides/ run as written, in order,
in one namespace per guide."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDES = sorted(glob.glob(os.path.join(ROOT, 'docs', 'guides', '*.md')))


def python_blocks(path):
  with open(path, encoding='utf-8') as f:
    text = f.read()
  return re.findall(r'^```python\n(.*?)^```$', text, flags=re.S | re.M)


def test_there_are_guides():
  assert GUIDES and all(python_blocks(g) for g in GUIDES)


@pytest.mark.parametrize('path', GUIDES, ids=os.path.basename)
def test_guide_python_blocks_run_in_order(path, capsys):
  pytest.importorskip('flax')
  namespace = {'__name__': '__guide__'}
  for i, block in enumerate(python_blocks(path)):
    try:
      exec(compile(block, f'{path} block {i}', 'exec'), namespace)  # pylint: disable=exec-used
    except Exception as e:  # pylint: disable=broad-except
      pytest.fail(
          f'{os.path.basename(path)} python block {i} failed: '
          f'{type(e).__name__}: {e}\n{block}'
      )
  out = capsys.readouterr().out
  # The printed checks of the guide hold.
  assert 'False\n' not in out.replace('False False True', ''), out

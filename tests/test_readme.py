"""The README: its Python runs as written, its commands and links exist.

The README is short (what it is, install, the quick start, one example, one
table, links into the docs); the guides under ``docs/`` hold the rest and
their code runs in ``tests/test_guides.py``.
"""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, 'README.md')


def _text():
  with open(README, encoding='utf-8') as f:
    return f.read()


def python_blocks():
  return re.findall(r'^```python\n(.*?)^```$', _text(), flags=re.S | re.M)


def test_readme_is_short_and_has_code():
  assert len(_text().splitlines()) <= 200
  assert python_blocks()


def test_readme_python_blocks_run_each_on_its_own(capsys):
  """A reader copies one block: each runs in a fresh namespace (its
  imports its own)."""
  for i, block in enumerate(python_blocks()):
    namespace = {'__name__': '__readme__'}
    try:
      exec(compile(block, f'README.md block {i}', 'exec'), namespace)  # pylint: disable=exec-used
    except Exception as e:  # pylint: disable=broad-except
      pytest.fail(
          f'README python block {i} failed: {type(e).__name__}: {e}\n'
          f'{block}'
      )
  assert 'sparse' in namespace
  capsys.readouterr()


def test_links_and_paths_exist_in_the_repository():
  text = _text()
  links = re.findall(r'\]\(([^)#\s]+)', text)
  local = [l for l in links if not re.match(r'[a-z]+://', l)]
  assert local
  for link in local:
    assert os.path.exists(os.path.join(REPO, link)), link
  assert '../shared' not in text


def test_benchmark_commands_name_modules_that_exist():
  for module in re.findall(r'python -m benchmarks\.(\w+)', _text()):
    path = os.path.join(REPO, 'benchmarks', module)
    assert os.path.exists(path + '.py') or os.path.isdir(path), module

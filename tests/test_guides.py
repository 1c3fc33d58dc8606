"""Every guide's code runs as written (and the home page's).

A guide's ```` ```python ```` blocks run in order, top to bottom, in one
namespace per guide, as ``tests/test_readme.py`` runs the README's (a block
that is only to be read, not run, is written as ```` ```{code-block} python
````). Every ``python -m train ...`` command of a ``bash`` block of the guides
and of the results page must be a command line that ``python -m train``
accepts (checked with ``--print_config``, which resolves the config and
stops). Guides added to ``docs/guides/`` are picked up.
"""

import contextlib
import glob
import io
import os
import re
import shlex

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDES = sorted(glob.glob(os.path.join(REPO, 'docs', 'guides', '*.md')))
PAGES = GUIDES + [
    os.path.join(REPO, 'docs', 'index.md'),
    os.path.join(REPO, 'docs', 'results.md'),
]


def _read(path):
  with open(path, encoding='utf-8') as f:
    return f.read()


def python_blocks(text):
  return re.findall(r'^```python\n(.*?)^```$', text, flags=re.S | re.M)


def train_commands(text):
  """``python -m train`` command lines of the bash blocks (joined at ``\\``)."""
  commands = []
  for block in re.findall(
      r'^```(?:bash|sh|console)\n(.*?)^```$', text, re.S | re.M
  ):
    block = block.replace('\\\n', ' ')
    for line in block.splitlines():
      line = line.split('#', 1)[0].strip()
      if re.match(r'(\S+=\S+ )*python -m train( |$)', line):
        commands.append(line)
  return commands


def test_there_are_guides_with_code():
  assert len(GUIDES) >= 6
  assert sum(len(python_blocks(_read(g))) for g in GUIDES) >= 10


@pytest.mark.parametrize('path', PAGES, ids=os.path.basename)
def test_guide_python_blocks_run_in_order(path, tmp_path, monkeypatch):
  text = _read(path)
  blocks = python_blocks(text)
  if not blocks:
    pytest.skip('no python blocks')
  if re.search(r'^\s*(import|from) (models|flax)\b', ''.join(blocks), re.M):
    pytest.importorskip('flax', reason='the guide uses the models extra')
  monkeypatch.chdir(tmp_path)  # whatever a guide writes lands here
  namespace = {'__name__': '__guide__'}
  out = io.StringIO()
  for i, block in enumerate(blocks):
    try:
      with contextlib.redirect_stdout(out):
        exec(compile(block, f'{os.path.basename(path)} block {i}', 'exec'), namespace)  # pylint: disable=exec-used
    except Exception as e:  # pylint: disable=broad-except
      pytest.fail(
          f'{os.path.basename(path)} python block {i} failed:'
          f' {type(e).__name__}: {e}\n{block}'
      )


@pytest.mark.parametrize('path', PAGES, ids=os.path.basename)
def test_train_commands_are_accepted(path, capsys):
  commands = train_commands(_read(path))
  if not commands:
    pytest.skip('no python -m train command')
  from train import cli  # pylint: disable=import-outside-toplevel

  for command in commands:
    argv = shlex.split(command)
    argv = argv[argv.index('train') + 1 :]
    if not argv or '...' in argv or argv[0].startswith('RUN_DIR'):
      continue
    status = cli.main(argv + ['--print_config'])
    captured = capsys.readouterr()
    assert status == 0, f'{command}\n{captured.err[-2000:]}'


def test_the_train_job_guide_names_every_method_regularizer_and_schedule():
  """The guide's lists of options and --help (built from the tables) name
  the same methods, regularizers and schedules."""
  from train import config_checks  # pylint: disable=import-outside-toplevel
  from train import methods  # pylint: disable=import-outside-toplevel
  from train import regularizers  # pylint: disable=import-outside-toplevel

  text = _read(os.path.join(REPO, 'docs', 'guides', 'train_job.md'))
  names = [
      *methods.METHODS,
      *regularizers.REGULARIZERS,
      *config_checks.SCHEDULES,
  ]
  missing = [n for n in names if f'`{n}`' not in text]
  assert not missing, f'docs/guides/train_job.md does not name {missing}'

"""The documentation site builds with no warning, and documents every name.

The build (``python -m sphinx -W -b html docs docs/_build/html``, what
``docs/conf.py`` documents) needs the ``docs`` extra; without it the build
tests skip and say so. The coverage check (``docs/_ext/public_api.py``) runs
inside every build; the tests below also check that it can fail.
"""

import glob
import os
import re
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, 'docs')
sys.path.insert(0, os.path.join(DOCS, '_ext'))

import public_api  # pylint: disable=g-import-not-at-top,wrong-import-position

DOCS_EXTRA = 'the docs extra is not installed (pip install -e ".[docs]")'


def _conf_public_api():
  """``public_api`` of docs/conf.py, read without running Sphinx."""
  namespace = {'__file__': os.path.join(DOCS, 'conf.py')}
  with open(os.path.join(DOCS, 'conf.py'), encoding='utf-8') as f:
    exec(compile(f.read(), 'docs/conf.py', 'exec'), namespace)  # pylint: disable=exec-used
  return namespace['public_api']


def _require_docs_extra():
  for module in ('sphinx', 'myst_parser', 'sphinx_book_theme'):
    pytest.importorskip(module, reason=DOCS_EXTRA)


def _page_sections():
  """``(package, section)`` of every ``public-api`` directive in docs/api."""
  found = set()
  for path in glob.glob(os.path.join(DOCS, 'api', '*.rst')):
    with open(path, encoding='utf-8') as f:
      found |= set(
          re.findall(r'^\.\. public-api:: (\S+) (\S+)', f.read(), re.M)
      )
  return found


def test_every_public_name_has_a_section_that_a_page_renders():
  pytest.importorskip('flax', reason='the models extra documents models')
  api = _conf_public_api()
  rendered = _page_sections()
  for key, spec in api.items():
    placed = public_api.sections(spec)
    names = {full for full, *_ in public_api.public_names(spec)}
    in_sections = {full for entries in placed.values() for full, *_ in entries}
    assert names == in_sections, (key, names ^ in_sections)
    for section, entries in placed.items():
      if entries:
        assert (key, section) in rendered, (
            f'{key} section {section!r} ({[e[0] for e in entries]}) is on no'
            ' page of docs/api/'
        )


def test_rda_optax_public_names_are_read_from_the_package():
  import rda_optax  # pylint: disable=import-outside-toplevel

  spec = _conf_public_api()['rda_optax']
  names = {full for full, *_ in public_api.public_names(spec)}
  assert 'rda_optax.rmda' in names and 'rda_optax.RMDAState' in names
  assert 'rda_optax.__version__' not in names
  expected = {
      f'rda_optax.{n}'
      for n, v in vars(rda_optax).items()
      if not n.startswith('_') and not isinstance(v, type(rda_optax))
  }
  assert names == expected


def test_coverage_check_names_what_is_missing():
  _require_docs_extra()
  pytest.importorskip('flax', reason='the models extra documents models')
  api = _conf_public_api()
  everything = {
      full
      for spec in api.values()
      for full, *_ in public_api.public_names(spec)
  }
  assert public_api.undocumented(api, everything) == []
  missing = public_api.undocumented(api, everything - {'rda_optax.rmda'})
  assert missing == ['rda_optax.rmda (not in the API reference)']


def test_docs_build_with_no_warning_and_every_page(tmp_path):
  _require_docs_extra()
  pytest.importorskip('flax', reason='the models extra documents models')
  out = tmp_path / 'html'
  start = time.perf_counter()
  proc = subprocess.run(
      [
          sys.executable,
          '-m',
          'sphinx',
          '-W',
          '--keep-going',
          '-q',
          '-b',
          'html',
          '-d',
          str(tmp_path / 'doctrees'),
          DOCS,
          str(out),
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=300,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
  )
  seconds = time.perf_counter() - start
  assert (
      proc.returncode == 0
  ), f'docs build failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}'
  print(f'docs build: {seconds:.1f} s')
  for page in ('index', 'results', 'api/optimizers', 'api/models', 'api/train'):
    assert (out / f'{page}.html').is_file(), page
  for guide in glob.glob(os.path.join(DOCS, 'guides', '*.md')):
    name = os.path.splitext(os.path.basename(guide))[0]
    assert (out / 'guides' / f'{name}.html').is_file(), name
  optimizers = (out / 'api' / 'optimizers.html').read_text(encoding='utf-8')
  # The entries are the docstrings: math, arguments, the example.
  assert 'id="rda_optax.rmda"' in optimizers
  assert 'class="math' in optimizers and 'Example' in optimizers


DOC_PAGES = sorted(
    glob.glob(os.path.join(DOCS, '**', '*.md'), recursive=True)
    + glob.glob(os.path.join(DOCS, '**', '*.rst'), recursive=True)
    + glob.glob(os.path.join(REPO, 'benchmarks', '**', '*.md'), recursive=True)
)
DOC_PAGES = [p for p in DOC_PAGES if '_build' not in p.split(os.sep)]


@pytest.mark.parametrize(
    'path', DOC_PAGES, ids=lambda p: os.path.relpath(p, REPO)
)
def test_links_stay_inside_the_repository(path):
  with open(path, encoding='utf-8') as f:
    text = f.read()
  targets = re.findall(r'\]\(([^)\s]+)\)', text)
  for target in targets:
    if re.match(r'[a-z]+://|#|mailto:', target):
      continue
    resolved = os.path.normpath(
        os.path.join(os.path.dirname(path), target.split('#')[0])
    )
    assert resolved.startswith(REPO + os.sep), (target, path)
    assert os.path.exists(resolved), f'{target} in {path} does not exist'
  if path.startswith(DOCS + os.sep):
    # Data lives where RDA_SHARED_DATA says; the site names no folder
    # outside the repository.
    assert '../shared' not in text, path


SITE_PAGES = [
    p
    for p in DOC_PAGES
    if p.startswith(DOCS + os.sep) and '_build' not in p.split(os.sep)
]

# Words of the project's working notes that mean nothing to a reader.
SHORTHAND = [
    r'\bpaper 00\d',
    r'\bissue\b',
    r'\btarget \d\b',
    r'\bsession\b',
    r'\bthe asr target\b',
]


@pytest.mark.parametrize(
    'path', SITE_PAGES, ids=lambda p: os.path.relpath(p, REPO)
)
def test_site_pages_use_no_internal_shorthand(path):
  with open(path, encoding='utf-8') as f:
    text = f.read()
  for pattern in SHORTHAND:
    match = re.search(pattern, text, re.I)
    assert match is None, (
        f'{os.path.relpath(path, REPO)}: "{match.group(0)}" in'
        f' "...{text[max(0, match.start() - 60):match.end() + 60]}..."'
    )


def _fake_project(root, nodoc_docstring):
  """A package of three names and a site documenting it with public-api."""
  pkg = root / 'fakepkg'
  pkg.mkdir(parents=True)
  (pkg / '__init__.py').write_text(
      'from fakepkg.core import good\n'
      'from fakepkg.extra import newer, nodoc\n'
  )
  (pkg / 'core.py').write_text('def good():\n  """Good."""\n')
  (pkg / 'extra.py').write_text(
      'def newer():\n  """Added later, in a module no section lists."""\n\n'
      f'def nodoc():\n  {nodoc_docstring}\n'
  )
  docs = root / 'docs'
  docs.mkdir()
  (docs / 'conf.py').write_text(
      'import sys\n'
      f'sys.path[:0] = [{str(root)!r}, {os.path.join(DOCS, "_ext")!r}]\n'
      "extensions = ['sphinx.ext.autodoc', 'sphinx.ext.autosummary',"
      " 'public_api']\n"
      "public_api = {'fake': {'package': 'fakepkg', 'sections': [\n"
      "    ('core', ['fakepkg.core']), ('other', '*')]}}\n"
  )
  (docs / 'index.rst').write_text(
      'Fake\n====\n\n.. public-api:: fake core\n\n'
      '.. public-api:: fake other\n   :allow-empty:\n   :title: Other\n'
  )
  return docs


def _build(docs, out):
  return subprocess.run(
      [sys.executable, '-m', 'sphinx', '-W', '-q', '-b', 'html', str(docs)]
      + [str(out)],
      capture_output=True,
      text=True,
      timeout=120,
  )


def test_new_names_appear_and_an_undocumented_one_fails_the_build(tmp_path):
  _require_docs_extra()
  docs = _fake_project(tmp_path / 'a', 'pass')
  proc = _build(docs, tmp_path / 'a_html')
  assert proc.returncode != 0
  assert 'fakepkg.nodoc (no docstring)' in proc.stderr, proc.stderr[-2000:]
  docs = _fake_project(tmp_path / 'b', '"""Now documented."""')
  proc = _build(docs, tmp_path / 'b_html')
  assert proc.returncode == 0, proc.stderr[-2000:]
  page = (tmp_path / 'b_html' / 'index.html').read_text(encoding='utf-8')
  for name in ('good', 'newer', 'nodoc'):
    assert f'id="fakepkg.{name}"' in page, name
  assert 'Other' in page  # the catch-all section's heading

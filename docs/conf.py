"""Sphinx configuration of the rda-optax documentation.

Build (from the repository root, with the ``docs`` extra installed)::

  python -m sphinx -W -b html docs docs/_build/html

Modelled on optax's ``docs/conf.py``: autodoc + autosummary from the
docstrings, Napoleon for their Google style, MathJax for their ``.. math::``,
MyST for the Markdown pages, sphinx-book-theme, and a check that every public
name is documented (``_ext/public_api.py``, run by every build).

Intersphinx (links to the jax, optax, flax, numpy and Python docs) needs the
network to fetch their inventories; it is on only when
``RDA_DOCS_INTERSPHINX=1``, so that an offline build has nothing to fetch and
nothing to warn about.
"""

import os
import re
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))  # rda_optax, models, train
sys.path.insert(0, os.path.join(_HERE, '_ext'))

# pylint: disable=invalid-name,redefined-builtin

# -- Project -----------------------------------------------------------------

project = 'rda-optax'
author = 'rda-optax contributors'
copyright = 'rda-optax contributors, Apache License 2.0'
try:
  import rda_optax  # pylint: disable=g-import-not-at-top

  release = version = rda_optax.__version__
except ImportError:  # the coverage check reports it
  release = version = ''

# -- General -----------------------------------------------------------------

root_doc = 'index'
extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'myst_parser',
    'public_api',
    'repo_links',
]
if os.environ.get('RDA_DOCS_INTERSPHINX') == '1':
  extensions.append('sphinx.ext.intersphinx')
intersphinx_mapping = {
    'python': ('https://docs.python.org/3', None),
    'numpy': ('https://numpy.org/doc/stable/', None),
    'jax': ('https://docs.jax.dev/en/latest/', None),
    'optax': ('https://optax.readthedocs.io/en/latest/', None),
    'flax': ('https://flax.readthedocs.io/en/latest/', None),
}

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
templates_path = ['_templates']
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store', 'README.md']

# -- The guides' table of contents ---------------------------------------------
#
# Every Markdown file in docs/guides/ is a guide. index.md's guides toctree
# lists them (its line `GUIDES` is replaced as the page is read) in this
# reading order; a guide not named here comes after these, alphabetically,
# and a guide named here that is absent is left out. (A toctree glob cannot
# order, and a glob entry that matches nothing warns.)
GUIDE_ORDER = [
    'getting_started',
    'flax_integration',
    'choosing',
    'asr',
    'structured_export',
    'transformers_nm',
    'train_job',
    'reproducing',
    'algorithms',
]


def _guides():
  present = sorted(
      name[: -len('.md')]
      for name in os.listdir(os.path.join(_HERE, 'guides'))
      if name.endswith('.md')
  )
  known = [g for g in GUIDE_ORDER if g in present]
  return known + [g for g in present if g not in GUIDE_ORDER]


def _guides_toctree(app, docname, source):
  del app
  if docname == 'index':
    source[0] = source[0].replace(
        '\nGUIDES\n', '\n' + '\n'.join(f'guides/{g}' for g in _guides()) + '\n'
    )


def _reread_index(app, env, added, changed, removed):
  del app, env, added, changed, removed
  return ['index']  # a guide added or removed changes its toctree


_INTERNAL_PREFIX = re.compile(r'\b(regs|selection|validation|config_lib)\.')


def _short_signature(app, what, name, obj, options, signature, annotation):
  """``regs.ScalarOrSchedule`` -> ``ScalarOrSchedule``: the signatures show
  the source's annotations (the type aliases are not expanded), without the
  names under which a module imports another."""
  del app, what, name, obj, options
  if signature:
    signature = _INTERNAL_PREFIX.sub('', signature)
  if annotation:
    annotation = _INTERNAL_PREFIX.sub('', annotation)
  return signature, annotation


def setup(app):
  app.connect('autodoc-process-signature', _short_signature)
  app.connect('source-read', _guides_toctree)
  app.connect('env-get-outdated', _reread_index)


# -- The API reference (_ext/public_api.py) -------------------------------------
#
# Each package's public names are read from the package (``__all__``, or the
# public names of ``rda_optax/__init__.py``), and each goes to the section
# that lists the module defining it; a module no section lists goes to the
# section marked '*'. The coverage check fails the build for a public name
# that ends up undocumented or without a docstring.

public_api = {
    'rda_optax': {
        'package': 'rda_optax',
        'sections': [
            ('recipes', ['rda_optax.recipes']),
            (
                'optimizers',
                [
                    'rda_optax.rda',
                    'rda_optax.rmda',
                    'rda_optax.ramda',
                    'rda_optax.prox_sgd',
                    'rda_optax.prox_adamw',
                    'rda_optax.splitting',
                ],
            ),
            ('asr', ['rda_optax.asr']),
            (
                'regularizers',
                [
                    'rda_optax.regularizers',
                    'rda_optax.constraints',
                    'rda_optax.adaptive_l1',
                    'rda_optax.nm',
                    'rda_optax.nm_pruning',
                    'rda_optax.coupled',
                    'rda_optax.partition',
                ],
            ),
            ('pruning', ['rda_optax.pruning', 'rda_optax.threshold']),
            (
                'sparse_models',
                [
                    'rda_optax.sparse_point',
                    'rda_optax.sparsity',
                    'rda_optax.sparse_io',
                    'rda_optax.sparse_format',
                ],
            ),
            (
                'utilities',
                [
                    'rda_optax.initializers',
                    'rda_optax.selection',
                    'rda_optax.sharding',
                ],
            ),
            ('other', '*'),
        ],
    },
    'models': {
        'package': 'models',
        'sections': [
            ('registry', ['models.registry']),
            (
                'networks',
                [
                    'models.lenet',
                    'models.resnet',
                    'models.vgg',
                    'models.wide_resnet',
                    'models.gpt',
                    'models.vit',
                ],
            ),
            ('compaction', ['models.compaction']),
            ('flops', ['models.flops']),
            ('layers', ['models.layers']),
            ('other', '*'),
        ],
    },
    # The training job's entry points that stay where they are; its internals
    # (data layer, method table, optimizer builder) are not API.
    'train': {
        'package': 'train',
        'names': [
            'config.Config',
            'config.get_config',
            'config.PRESETS',
            'cli.main',
            'export.export_run',
            'export.load_export',
            'export.main',
            'report.write_report',
            'report.main',
            'tasks.Classification',
            'tasks.LanguageModel',
            'tasks.for_dataset',
            'data.text_source.TextCorpus',
            'data.text_source.load_text',
            'data.loader.make_text_data',
        ],
        'sections': [
            ('config', ['train.config']),
            ('cli', ['train.cli']),
            ('export', ['train.export']),
            ('report', ['train.report']),
            ('tasks', ['train.tasks']),
            (
                'text',
                ['train.data.text_source', 'train.data.loader'],
            ),
            ('other', '*'),
        ],
    },
}

# -- autodoc / autosummary / napoleon ----------------------------------------

# The type aliases of the signatures, shown by name (as optax does) rather
# than expanded into unions several lines long.
autodoc_type_aliases = {
    alias: target
    for name, target in {
        'ScalarOrSchedule': 'optax.ScalarOrSchedule',
        'MaskOrFn': 'MaskOrFn',
        'Groups': 'Groups',
        'Labels': 'Labels',
        'Scope': 'Scope',
    }.items()
    for alias in (
        name,
        f'regs.{name}',
        f'selection.{name}',
        f'optax.{name}',
    )
}
autosummary_generate = False  # tables only; the entries are on the same page
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_preserve_defaults = True
maximum_signature_line_length = 1  # one parameter a line, as optax
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True

# -- MyST (the Markdown pages) -----------------------------------------------

myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_heading_anchors = 3

# -- HTML --------------------------------------------------------------------

html_theme = 'sphinx_book_theme'
html_title = 'rda-optax'
html_theme_options = {
    'show_toc_level': 2,
    'navigation_with_keys': False,
}
html_static_path = []

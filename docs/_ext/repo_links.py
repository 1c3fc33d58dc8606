"""Links from a docs page to a file of the repository outside ``docs/``.

``docs/results.md`` links its records (``../benchmarks/results/.../NOTES.md``,
``results.json``) with relative paths, which work where the Markdown is read
in the repository. In the built site MyST would take a ``.md`` target for a
page of the site and warn that there is none; this transform makes every
link to an existing file of the repository outside ``docs/`` a download
link instead: the file is copied into the site (``_downloads/``), so the
site stays self-contained. A link to a folder, or to a file that does not
exist, is left to MyST, which warns (an error under ``-W``): link the
folder's ``README.md`` or ``NOTES.md`` instead.
"""

from __future__ import annotations

import os
from typing import Any


def setup(app: Any) -> dict[str, Any]:
  """Registers the transform."""
  # pylint: disable=import-outside-toplevel
  from sphinx import addnodes
  from sphinx.transforms import SphinxTransform
  # pylint: enable=import-outside-toplevel

  class RepositoryFileLinks(SphinxTransform):
    """Turns links to repository files outside the source folder into downloads."""

    default_priority = 500

    def apply(self, **kwargs: Any) -> None:
      srcdir = os.path.realpath(self.env.srcdir)
      root = os.path.dirname(srcdir)
      doc_dir = os.path.dirname(str(self.env.doc2path(self.env.docname)))
      suffixes = list(self.config.source_suffix)
      for node in list(self.document.findall(addnodes.pending_xref)):
        if node.get('reftype') != 'myst':
          continue
        target = node['reftarget']
        candidates = []
        if node.get('refdomain') == 'doc':
          # MyST has already turned the path into a document name (without
          # its suffix), relative to the source folder.
          base = os.path.normpath(os.path.join(srcdir, target))
          candidates = [base + suffix for suffix in suffixes]
        elif node.get('refdomain') is None and '://' not in target:
          candidates = [
              os.path.normpath(os.path.join(doc_dir, target.split('#')[0]))
          ]
        for path in candidates:
          real = os.path.realpath(path)
          if not os.path.isfile(real):
            continue
          if real.startswith(srcdir + os.sep) or not real.startswith(
              root + os.sep
          ):
            continue
          download = addnodes.download_reference(
              '',
              '',
              refdomain=None,
              reftype='myst',
              reftarget=os.path.relpath(real, doc_dir),
              refdoc=self.env.docname,
              refexplicit=True,
          )
          download.source, download.line = node.source, node.line
          download.extend(node.children)
          node.replace_self(download)
          break

  app.add_transform(RepositoryFileLinks)
  return {'version': '1', 'parallel_read_safe': True}

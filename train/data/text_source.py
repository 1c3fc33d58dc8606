"""Character-level text corpora for language modelling (``shakespeare_char``).

A corpus is one file of text, verified by its sha256, read into memory as
one token per character (an index into the corpus's vocabulary, the sorted
set of its characters) and cut into a training part and a held-out,
contiguous validation part (the last ``eval_fraction`` of the characters).

``shakespeare_char``: ``shakespeare.txt.gz`` of the shared data folder
(``$RDA_SHARED_DATA/shakespeare``, default ``../shared/data/shakespeare``
beside the checkout) or of ``--manual_dir``: the 42 Project Gutenberg texts
of Shakespeare's plays and poems, 5,057,282 characters of ASCII, 84 distinct
characters; the last 505,728 (10%) are the validation slice.

Batching (random training windows, fixed validation windows) is
:mod:`train.data.text_pipeline`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os

import numpy as np

from .datasets import MANUAL_DIR_ENV
from .datasets import SHARED_DATA_ENV
from .datasets import TEXT_DATASETS
from .datasets import DatasetNotFoundError
from .datasets import TextSpec
from .datasets import eval_size
from .datasets import is_text  # noqa: F401  (re-exported)
from .datasets import resolve_manual_dir
from .datasets import shared_data_dir


class CorpusMismatchError(ValueError):
  """A corpus file that is not the published one (its sha256 differs)."""


@dataclasses.dataclass(frozen=True)
class TextCorpus:
  """A corpus in memory, as token ids.

  Attributes:
    name: its name.
    vocabulary: token ``i`` is the character ``vocabulary[i]``.
    train: uint8 token ids of the training part (the first characters).
    eval: uint8 token ids of the validation slice (the last characters,
      contiguous).
  """

  name: str
  vocabulary: str
  train: np.ndarray
  eval: np.ndarray

  @property
  def vocab_size(self) -> int:
    return len(self.vocabulary)

  def encode(self, text: str) -> np.ndarray:
    """Token ids (uint8) of ``text``; every character must be in the
    vocabulary."""
    table = {c: i for i, c in enumerate(self.vocabulary)}
    missing = sorted(set(text) - set(table))
    if missing:
      raise ValueError(
          f'{missing[:10]} are not in the vocabulary of {self.name}.'
      )
    return np.array([table[c] for c in text], np.uint8)

  def decode(self, ids) -> str:
    """The text of token ids."""
    return ''.join(self.vocabulary[int(i)] for i in np.ravel(ids))

  @classmethod
  def from_text(
      cls,
      name: str,
      text: str,
      eval_fraction: float = 0.1,
      vocabulary: str | None = None,
  ) -> 'TextCorpus':
    """A corpus of ``text``: its sorted characters as the vocabulary (or
    ``vocabulary``), the last ``eval_fraction`` held out.

    Example:
      >>> c = TextCorpus.from_text('abc', 'abcabcabca', eval_fraction=0.2)
      >>> c.vocabulary, c.train.tolist(), c.decode(c.eval)
      ('abc', [0, 1, 2, 0, 1, 2, 0, 1], 'ca')
    """
    return _split(name, text.encode('latin-1'), eval_fraction, vocabulary)


def _split(name, raw: bytes, eval_fraction: float, vocabulary=None):
  if not 0 < eval_fraction < 1:
    raise ValueError(f'eval_fraction must be in (0, 1), got {eval_fraction}.')
  data = np.frombuffer(raw, np.uint8)
  present = np.nonzero(np.bincount(data, minlength=256))[0]
  chars = bytes(present.astype(np.uint8).tolist()).decode('latin-1')
  if vocabulary is None:
    vocabulary = chars
  elif chars != vocabulary:
    raise CorpusMismatchError(
        f'{name}: the text has the characters {chars!r}, not the expected '
        f'vocabulary {vocabulary!r}.'
    )
  if len(vocabulary) > 256:
    raise ValueError(f'{name}: more than 256 distinct characters.')
  lut = np.zeros(256, np.uint8)
  lut[present] = np.arange(len(present), dtype=np.uint8)
  tokens = lut[data]
  n_eval = eval_size(len(tokens), eval_fraction)
  if n_eval < 2 or len(tokens) - n_eval < 2:
    raise ValueError(
        f'{name}: {len(tokens)} characters are too few to hold out '
        f'{eval_fraction:.0%} for validation.'
    )
  cut = len(tokens) - n_eval
  return TextCorpus(name, vocabulary, tokens[:cut], tokens[cut:])


def _candidates(spec: TextSpec, manual_dir, data_dir) -> list[str]:
  out = []
  manual = resolve_manual_dir(manual_dir)
  for base in (manual, data_dir):
    if base:
      base = os.path.expanduser(os.fspath(base))
      out += [base, os.path.join(base, spec.folder)]
  shared = shared_data_dir()
  if shared:
    out.append(os.path.join(shared, spec.folder))
  return out


def find_corpus(spec: TextSpec, manual_dir=None, data_dir=None) -> str:
  """The corpus file: in ``manual_dir`` (the file itself, the folder
  holding it, or its ``<folder>/`` inside), ``data_dir`` likewise, or the
  shared data folder's ``<folder>/``.

  Raises:
    DatasetNotFoundError: in none of them (one line naming where to put it).
  """
  candidates = _candidates(spec, manual_dir, data_dir)
  # The folder the user named (not $RDA_MANUAL_DIR, often another dataset's).
  named = os.path.expanduser(os.fspath(manual_dir)) if manual_dir else None
  for c in candidates:
    if os.path.isfile(c) and os.path.basename(c) == spec.file:
      return c
    if os.path.isfile(os.path.join(c, spec.file)):
      return os.path.join(c, spec.file)
    if named and c == os.path.join(named, spec.folder):
      # A folder the user named holds no corpus: not another copy instead.
      raise DatasetNotFoundError(
          f'Dataset {spec.name!r}: --manual_dir {named} holds no '
          f'{spec.file}, neither in it nor in its {spec.folder}/; pass the '
          f'folder that holds it, or no --manual_dir to use '
          f'${SHARED_DATA_ENV}/{spec.folder}/.'
      )
  env = os.environ.get(SHARED_DATA_ENV)
  looked = (
      f'in {", ".join(candidates)}'
      if candidates
      else f'(no folder to look in: ${SHARED_DATA_ENV}={env} does not exist)'
      if env
      else f'(no folder to look in: ../shared/data does not exist and '
      f'${SHARED_DATA_ENV} is not set)'
  )
  raise DatasetNotFoundError(
      f'Dataset {spec.name!r} needs {spec.file} ({spec.num_bytes:,} bytes, '
      f'sha256 {spec.sha256[:12]}...), not found {looked}: put it in '
      f'${SHARED_DATA_ENV}/{spec.folder}/ (default ../shared/data/'
      f'{spec.folder}/ beside the checkout) or pass --manual_dir DIR (or '
      f'{MANUAL_DIR_ENV}=DIR), DIR the folder holding it; it is {spec.source}.'
  )


def sha256_of(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def load_text(name: str, *, manual_dir=None, data_dir=None) -> TextCorpus:
  """The corpus ``name`` (a key of :data:`TEXT_DATASETS`), verified.

  Args:
    name: e.g. ``"shakespeare_char"``.
    manual_dir: a folder holding the file (or the file); default
      ``$RDA_MANUAL_DIR``, then the shared data folder.
    data_dir: another folder to look in.

  Returns:
    The :class:`TextCorpus`: the vocabulary of the spec, the first
    ``1 − eval_fraction`` of the characters to train on, the rest held out.

  Raises:
    DatasetNotFoundError: the file is nowhere (the message says where to
      put it).
    CorpusMismatchError: its sha256, length or characters differ from the
      published file's.
  """
  if name not in TEXT_DATASETS:
    raise ValueError(
        f'Unknown text corpus {name!r}; known: {sorted(TEXT_DATASETS)}.'
    )
  spec = TEXT_DATASETS[name]
  path = find_corpus(spec, manual_dir, data_dir)
  digest = sha256_of(path)
  if digest != spec.sha256:
    raise CorpusMismatchError(
        f'{path} is not the published {spec.file}: its sha256 is '
        f'{digest[:12]}... ({os.path.getsize(path):,} bytes), expected '
        f'{spec.sha256[:12]}... ({spec.num_bytes:,} bytes); replace it with '
        f'the original ({spec.source}).'
    )
  with open(path, 'rb') as f:
    raw = f.read()
  if spec.file.endswith('.gz'):
    raw = gzip.decompress(raw)
  if len(raw) != spec.num_chars:
    raise CorpusMismatchError(
        f'{path}: {len(raw):,} characters, expected {spec.num_chars:,}.'
    )
  return _split(name, raw, spec.eval_fraction, spec.vocabulary)

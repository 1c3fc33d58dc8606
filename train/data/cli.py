"""``python -m train.data {prepare,info} NAME [--data_dir DIR]
[--manual_dir DIR] [--no_download]``: prepares a dataset once (TFDS
array_record, the image-folder cache) or prints its metadata (with, for a
TFDS dataset, where it came from: archives, date).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import text_source
from . import tfds_source
from .datasets import DATASETS
from .datasets import MANUAL_DIR_ENV
from .datasets import TFDS_SPECS
from .datasets import DatasetNotFoundError
from .sources import load_dataset
from .sources import prepare_dataset


def main(argv=None) -> int:
  """Prepares a dataset or prints its metadata; returns the exit status."""
  parser = argparse.ArgumentParser(
      prog='python -m train.data',
      description='Prepare a dataset once (TFDS array_record / image-folder '
      'cache) or show it.',
  )
  parser.add_argument('command', choices=('prepare', 'info'))
  parser.add_argument(
      'dataset',
      help=f"{', '.join(sorted(DATASETS) + sorted(text_source.TEXT_DATASETS))}"
      ' or imagefolder:<path>',
  )
  parser.add_argument('--data_dir', default=None)
  parser.add_argument(
      '--manual_dir',
      default=None,
      help=f'manual download folder (env {MANUAL_DIR_ENV})',
  )
  parser.add_argument('--no_download', action='store_true')
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO)
  try:
    if text_source.is_text(args.dataset):  # A text corpus: read at each run.
      corpus = text_source.load_text(
          args.dataset, manual_dir=args.manual_dir, data_dir=args.data_dir
      )
      spec = text_source.TEXT_DATASETS[args.dataset]
      if args.command == 'prepare':
        print(
            f'{args.dataset}: nothing to prepare ({spec.file} is read and '
            'verified at each run).'
        )
      else:
        print(
            json.dumps(
                {
                    'name': args.dataset,
                    'task': 'language_model',
                    'file': text_source.find_corpus(
                        spec, args.manual_dir, args.data_dir
                    ),
                    'vocab_size': corpus.vocab_size,
                    'vocabulary': corpus.vocabulary,
                    'num_train_chars': len(corpus.train),
                    'num_eval_chars': len(corpus.eval),
                },
                indent=1,
            )
        )
      return 0
    if args.command == 'prepare':
      path = prepare_dataset(
          args.dataset,
          data_dir=args.data_dir,
          manual_dir=args.manual_dir,
          download=not args.no_download,
      )
      print(f'{args.dataset}: prepared in {path}')
    else:
      ds = load_dataset(
          args.dataset,
          data_dir=args.data_dir,
          manual_dir=args.manual_dir,
          download=not args.no_download,
          in_memory=False,
      )
      info = {k: v for k, v in vars(ds.info).items() if k != 'class_names'}
      if args.dataset in TFDS_SPECS:  # Where it came from (archives, date).
        info['provenance'] = tfds_source.read_provenance(
            args.dataset, args.data_dir
        )
      print(json.dumps(info, indent=1))
  except (DatasetNotFoundError, ImportError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0

"""The loader of a text corpus: the :class:`~train.data.batches.Data` of a
language-model task, batched by :mod:`train.data.text_pipeline`.

:func:`make_text_data` is to a text corpus (:mod:`train.data.text_source`)
what :func:`train.data.loader.make_data` is to an image dataset;
:func:`train.data.loader.create_data` calls it for ``--dataset
shakespeare_char``.
"""

from __future__ import annotations

from .. import tasks as tasks_lib
from . import text_pipeline
from . import text_source
from .batches import Data
from .batches import placement


def make_text_data(
    corpus: text_source.TextCorpus,
    batch_size: int,
    *,
    context: int,
    eval_batch: int | None = None,
    seed: int = 0,
    prefetch_size: int = 2,
    axis_name: str = 'batch',
    process_index: int | None = None,
    process_count: int | None = None,
    local_device_count: int | None = None,
):
  """The :class:`Data` of a text corpus (a language-model task), batched by
  :mod:`train.data.text_pipeline`.

  Its ``num_classes`` is the vocabulary size, its ``image_shape`` the
  model's input ``(context,)``, its examples windows (``num_train_examples``
  per epoch: :func:`num_train_windows`; ``num_eval_examples``: the
  validation windows).

  Args:
    corpus: the corpus.
    batch_size: the global train batch, in windows.
    context: the window (characters the model sees).
    eval_batch: the global eval batch in windows (default ``batch_size``).
    seed: the seed of the train windows.
    prefetch_size: batches placed on the devices ahead; 0: numpy batches.
    axis_name: the mesh axis of the device placement.
    process_index: the topology (default JAX's).
    process_count: see ``process_index``.
    local_device_count: see ``process_index``.

  Returns:
    The data of the training loop.
  """
  text_pipeline.check_windows(
      len(corpus.train), context, f'The training part of {corpus.name}'
  )
  text_pipeline.check_windows(
      len(corpus.eval),
      context,
      f'The validation slice of {corpus.name} (--eval_split)',
      'take a longer --eval_split (e.g. test, all of it)',
  )
  eval_batch = eval_batch or batch_size
  topology, placed = placement(
      (batch_size, eval_batch),
      prefetch_size,
      axis_name,
      process_index,
      process_count,
      local_device_count,
  )

  def train_iter(start_step: int = 0):
    return placed(
        text_pipeline.train_batches(
            corpus.train,
            context,
            batch_size,
            seed=seed,
            start_step=start_step,
            **topology,
        )
    )

  def eval_iter():
    return placed(
        text_pipeline.eval_batches(corpus.eval, context, eval_batch, **topology)
    )

  def preprocess(tokens, key, train):
    del key, train
    return tokens

  return Data(
      corpus.name,
      corpus.vocab_size,
      (context,),
      text_pipeline.num_train_windows(len(corpus.train), context),
      text_pipeline.num_eval_windows(len(corpus.eval), context),
      train_iter,
      eval_iter,
      preprocess,
      task=tasks_lib.LanguageModel(context),
      vocabulary=corpus.vocabulary,
  )

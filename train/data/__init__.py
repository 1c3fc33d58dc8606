"""The data layer of the training job.

* :mod:`train.data.loader`: :class:`~train.data.loader.Data`, the seam the
  training loop consumes (:mod:`train.data.batches`), built by
  :func:`~train.data.loader.create_data` (a text corpus's:
  :mod:`train.data.text_loader`);
* :mod:`train.data.datasets`: every dataset the job knows (names, shapes,
  classes, where its files come from), light: the command line checks a
  dataset's name with it before JAX is imported (its parts:
  :mod:`~train.data.tfds_specs`, :mod:`~train.data.data_dirs`,
  :mod:`~train.data.text_datasets`);
* :mod:`train.data.sources`: loading and preparing a dataset from any source
  -- :mod:`~train.data.tfds_source` (TFDS; its parts
  :mod:`~train.data.tfds_access`, :mod:`~train.data.tfds_archives`,
  :mod:`~train.data.tfds_reader`), :mod:`~train.data.folder_source`
  (image folders), :mod:`~train.data.cifar_jpg_source` (the JPEG copy of
  CIFAR-10), :mod:`~train.data.synthetic_source` (in memory, for tests);
  text corpora (a language-model task): :mod:`~train.data.text_source`,
  batched by :mod:`~train.data.text_pipeline`;
* :mod:`train.data.input_pipeline`: batching, sharding over hosts and
  devices, the order of examples; :mod:`~train.data.decode`,
  :mod:`~train.data.augment` and :mod:`~train.data.prefetch` its parts.

``python -m train.data {prepare,info} NAME`` (:mod:`train.data.cli`)
prepares a dataset once or shows it.

Importing the package imports none of its modules (JAX comes with the
loader and the pipeline): import the module you need, e.g. ``from
train.data import loader``.
"""

"""The training job of rda-optax: ``python -m train`` (see :mod:`train.cli`).

Modules (laid out like flax/examples/imagenet, plus the pieces it lacks):

* :mod:`train.config`: :class:`~train.config.Config` (one dataclass, every
  field a CLI flag), :data:`~train.presets.PRESETS`,
  :func:`~train.config.get_config` (the transformer presets:
  :mod:`train.presets_transformers`; reading a field's value:
  :mod:`train.config_values`); :mod:`train.config_checks`: the checks
  that need no JAX (:func:`~train.config_checks.validate`,
  :func:`~train.config_checks.check`).
* The tables, one per kind of thing, each entry declared once with its
  options, builder and checks: :mod:`train.methods`
  (:data:`~train.methods.METHODS`) and :mod:`train.regularizers`
  (:data:`~train.regularizers.REGULARIZERS`). ``python -m train --help``
  lists their entries. The methods' builders and checks by family:
  :mod:`train.methods_regularized`, :mod:`train.methods_pruning`
  (:mod:`train.method_types`: what an entry is).
* :mod:`train.optimizer`: config -> Optax optimizer
  (:func:`~train.optimizer.create_optimizer`: the method's builder plus weight
  decay and ASR), epoch-valued schedules
  (:func:`~train.optimizer.make_schedule`), RDA init;
  :mod:`train.selection`: the leaves ``--select`` and ``--scale_lam`` treat.
* :mod:`train.train_step`: the model, loss and metrics, the pmapped
  :func:`~train.train_step.train_step` / :func:`~train.train_step.eval_step`
  and batch-norm recalibration of a sparse point.
* :mod:`train.train_state`: the train state, ``--init_from``, checkpoint
  trees, replication over local devices.
* :mod:`train.train`: :func:`~train.train.train_and_evaluate` (set-up, the
  loop with its logging, evaluation and checkpoints; resumes a run
  directory; its records, evaluations and checkpoints:
  :mod:`train.run_records`); :mod:`train.evaluation`: the eval loop and
  sparsity records.
* :mod:`train.data`: the data layer (:mod:`train.data.loader`'s
  :class:`~train.data.loader.Data` is the seam to the input pipeline; text
  corpora: :mod:`train.data.text_source`, :mod:`train.data.text_pipeline`).
* :mod:`train.tasks`: what a run learns, chosen by the dataset: image
  classification, or a character-level language model
  (``--dataset shakespeare_char``: validation loss, bits per character).
* :mod:`train.checkpoint`: Orbax checkpoints, verified by checksums
  (:class:`~train.checkpoint.Checkpoints`, :func:`~train.checkpoint.load_variables`;
  its parts: :mod:`train.checkpoint_manager`, :mod:`train.checkpoint_integrity`,
  :mod:`train.checkpoint_failures`);
  :mod:`train.run_model`: the model a run reports, also mid-run
  (:func:`~train.run_model.load_model`); :mod:`train.locks`: one run per run
  directory, one preparation per dataset.
* :mod:`train.metrics` / :mod:`train.report`: JSON lines, TensorBoard, tqdm;
  the final report (sparsity table, PNG plots).
* :mod:`train.cli`: the command line (:func:`~train.cli.main`), light;
  :mod:`train.launch`: what it runs once the options passed.

Importing ``train`` is cheap: JAX, Flax and TFDS load with the submodules.
"""

from .cli import main
from .config import Config
from .config import ConfigError
from .config import PRESETS
from .config import get_config
from .config_checks import validate


def train_and_evaluate(cfg, **kwargs):
  """See :func:`train.train.train_and_evaluate` (imported when called: it
  loads JAX)."""
  from . import train as _train  # pylint: disable=import-outside-toplevel

  return _train.train_and_evaluate(cfg, **kwargs)

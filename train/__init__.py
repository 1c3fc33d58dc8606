"""The training job of rda-optax: ``python -m train`` (see :mod:`train.cli`).

Modules (laid out like flax/examples/imagenet, plus the pieces it lacks):

* :mod:`train.config`: :class:`~train.config.Config` (one dataclass, every
  field a CLI flag), :data:`~train.presets.PRESETS`,
  :func:`~train.config.get_config`, :func:`~train.config_checks.validate`,
  :func:`~train.config_checks.check_workdir`.
* :mod:`train.methods`: the methods (sgd, prox_sgd, rda, rmda, han, gmp),
  each declared once (:class:`~train.methods.Method`: options it reads,
  schedules, ASR, init, builder).
* :mod:`train.optimizer`: config -> Optax optimizer
  (:func:`~train.optimizer.create_optimizer`: the method's builder plus weight
  decay and ASR), epoch-valued schedules
  (:func:`~train.optimizer.make_schedule`), leaf selection, RDA init.
* :mod:`train.train_step`: the model, loss and metrics, the pmapped
  :func:`~train.train_step.train_step` / :func:`~train.train_step.eval_step`
  and batch-norm recalibration of a sparse point.
* :mod:`train.train_state`: the train state, ``--init_from``, checkpoint
  trees, replication over local devices.
* :mod:`train.train`: :func:`~train.train.train_and_evaluate` (set-up, the
  loop with its logging, evaluation and checkpoints; resumes a run
  directory); :mod:`train.evaluation`: the eval loop and sparsity records.
* :mod:`train.data`: :class:`~train.data.Data`, the seam to the input
  pipeline (:mod:`train.data.input_pipeline`), and an in-memory synthetic dataset.
* :mod:`train.checkpoint`: Orbax checkpoints, verified by checksums
  (:class:`~train.checkpoint.Checkpoints`, :func:`~train.checkpoint.load_variables`);
  :mod:`train.run_model`: the model a run reports, also mid-run
  (:func:`~train.run_model.load_model`); :mod:`train.locks`: one run per run
  directory, one preparation per dataset.
* :mod:`train.metrics` / :mod:`train.report`: JSON lines, TensorBoard, tqdm;
  the final report (sparsity table, PNG plots).
* :mod:`train.cli`: the command line (:func:`~train.cli.main`).

Importing ``train`` is cheap: JAX, Flax and TFDS load with the submodules.
"""

from .config import Config
from .config import ConfigError
from .config import PRESETS
from .config import get_config
from .config_checks import validate


def train_and_evaluate(cfg, **kwargs):
  """See :func:`train.train.train_and_evaluate`."""
  from . import train as _train  # pylint: disable=import-outside-toplevel

  return _train.train_and_evaluate(cfg, **kwargs)


def main(argv=None):
  """See :func:`train.cli.main`."""
  from . import cli  # pylint: disable=import-outside-toplevel

  return cli.main(argv)

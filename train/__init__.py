"""The training job of rda-optax: ``python -m train`` (see :mod:`train.cli`).

Public entry points:

* :class:`train.config.Config`, :func:`train.config.get_config` (presets),
  :func:`train.config.validate`;
* :func:`train.train.train_and_evaluate` (the loop; resumes a run directory);
* :func:`train.cli.main` (the command line).

Importing ``train`` is cheap: JAX, Flax and TFDS load with the submodules.
"""

from train.config import Config
from train.config import ConfigError
from train.config import PRESETS
from train.config import get_config
from train.config import validate


def train_and_evaluate(cfg, **kwargs):
  """See :func:`train.train.train_and_evaluate`."""
  from train import train as _train  # pylint: disable=import-outside-toplevel
  return _train.train_and_evaluate(cfg, **kwargs)


def main(argv=None):
  """See :func:`train.cli.main`."""
  from train import cli  # pylint: disable=import-outside-toplevel
  return cli.main(argv)

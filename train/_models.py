"""The model zoo beside this package.

In a checkout the two packages are the folders ``models/`` and ``train/``;
an installed copy names them ``rda_optax_models`` and ``rda_optax_train``
(see ``pyproject.toml``), so that neither shadows a user's own ``models`` or
``train`` nor is shadowed by them. This module imports the sibling under the
name that matches this package's own, so one process never loads the zoo
twice under two names.
"""

import importlib

models = importlib.import_module(
    'models' if __name__.split('.')[0] == 'train' else 'rda_optax_models'
)

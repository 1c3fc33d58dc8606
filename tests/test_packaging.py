"""The installed package: its names and what a user's own files do to it.

In a checkout, ``models/`` and ``train/`` are imported by those names. An
installed copy names them ``rda_optax_models`` and ``rda_optax_train``
(``pyproject.toml``), so a user's own ``train.py`` or ``models/`` neither
shadows them nor is shadowed by them.
"""

import os
import shutil
import subprocess
import sys
import tomllib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED = {
    'rda_optax': 'rda_optax',
    'models': 'rda_optax_models',
    'train': 'rda_optax_train',
}


def _pyproject():
  with open(os.path.join(REPO, 'pyproject.toml'), 'rb') as f:
    return tomllib.load(f)


def test_every_package_folder_is_installed_under_its_name():
  setup = _pyproject()['tool']['setuptools']
  expected = set()
  for folder, name in INSTALLED.items():
    assert setup['package-dir'][name] == folder
    for root, dirs, files in os.walk(os.path.join(REPO, folder)):
      dirs[:] = [d for d in dirs if d != '__pycache__']
      if '__init__.py' in files:
        rel = os.path.relpath(root, os.path.join(REPO, folder))
        expected.add(
            name if rel == '.' else f'{name}.{rel.replace(os.sep, ".")}'
        )
  assert set(setup['packages']) == expected


@pytest.mark.skipif(
    shutil.which('git') is None, reason='git lists the files to install'
)
def test_an_installed_copy_neither_shadows_nor_is_shadowed(tmp_path):
  # What pip installs from a clean copy of the tracked files.
  src = tmp_path / 'src'
  files = subprocess.run(
      ['git', 'ls-files', 'pyproject.toml', 'README.md', 'LICENSE', *INSTALLED],
      cwd=REPO,
      capture_output=True,
      text=True,
      check=True,
  ).stdout.split()
  for f in files:
    os.makedirs(src / os.path.dirname(f), exist_ok=True)
    shutil.copy(os.path.join(REPO, f), src / f)
  site = tmp_path / 'site'
  subprocess.run(
      [
          sys.executable,
          '-m',
          'pip',
          'install',
          '-q',
          '--no-deps',
          '--no-build-isolation',
          '--target',
          str(site),
          str(src),
      ],
      check=True,
      capture_output=True,
  )
  # A user's project with its own train.py and models/.
  project = tmp_path / 'project'
  (project / 'models').mkdir(parents=True)
  (project / 'train.py').write_text("WHO = 'user'\n")
  (project / 'models' / '__init__.py').write_text("WHO = 'user'\n")
  code = (
      'import train, models, rda_optax, rda_optax_train, rda_optax_models\n'
      'from rda_optax_train import _models, cli, data\n'
      "assert train.WHO == models.WHO == 'user'\n"
      f'site = {str(site)!r}\n'
      'for m in (rda_optax, rda_optax_train, rda_optax_models, data):\n'
      '  assert m.__file__.startswith(site), m.__file__\n'
      'assert _models.models is rda_optax_models\n'
      "assert rda_optax_models.create('lenet5') is not None\n"
      "print('ok')\n"
  )
  env = dict(os.environ, PYTHONPATH=str(site))
  proc = subprocess.run(
      [sys.executable, '-c', code],
      cwd=project,
      env=env,
      capture_output=True,
      text=True,
  )
  assert proc.returncode == 0 and proc.stdout.strip() == 'ok', proc.stderr
  # The console script runs the installed job, not the user's train.py.
  proc = subprocess.run(
      [os.path.join(site, 'bin', 'rda-train'), '--list_presets'],
      cwd=project,
      env=env,
      capture_output=True,
      text=True,
  )
  assert proc.returncode == 0, proc.stderr
  assert 'mnist_lenet5_rmda' in proc.stdout

"""train/launch.py: what the command line does once its options passed:
multi-host settings, --print_config, the run."""

import json

import pytest

from train import cli
from train import config as config_lib
from train import launch


def test_print_config(capsys):
  assert cli.main(['--preset', 'cifar10_vgg16', '--print_config']) == 0
  out = json.loads(capsys.readouterr().out)
  assert out['model'] == 'vgg16' and out['init_scale'] == 20


def test_print_config_shows_the_data_folders_in_effect(
    capsys, monkeypatch, tmp_path
):
  monkeypatch.setenv('RDA_MANUAL_DIR', str(tmp_path / 'manual'))
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tfds'))
  assert cli.main(['--print_config']) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed['manual_dir'] == str(tmp_path / 'manual')
  assert printed['data_dir'] == str(tmp_path / 'tfds')
  # Given flags win over the environment.
  assert cli.main(['--print_config', '--manual_dir', '/given']) == 0
  assert json.loads(capsys.readouterr().out)['manual_dir'] == '/given'


def test_print_config_of_a_han_preset_needs_no_init_from(capsys):
  assert cli.main(['--preset', 'cifar10_resnet18_han', '--print_config']) == 0
  out, err = capsys.readouterr()
  assert json.loads(out)['method'] == 'han'
  assert 'needs --init_from RUN_DIR' in err


def test_print_config_refuses_an_unknown_model(capsys):
  assert cli.main(['--model', 'resnet99', '--print_config']) == 2
  assert "Unknown model 'resnet99'" in capsys.readouterr().err


@pytest.mark.parametrize(
    'fields, message',
    [
        (dict(num_processes=2), 'Multi-host training needs'),
        (
            dict(coordinator_address='localhost:1', num_processes=2),
            'needs --coordinator_address',
        ),
        (
            dict(
                coordinator_address='localhost:1',
                num_processes=2,
                process_id=2,
            ),
            '--process_id 2 must be < --num_processes 2',
        ),
    ],
)
def test_incomplete_multi_host_settings_are_refused(fields, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    launch.initialize_distributed(config_lib.get_config(**fields))
  launch.initialize_distributed(config_lib.get_config())  # One process.

"""train/config.py: the Config, its presets, defaults and JSON files."""

from train import cli
from train import config as config_lib

PAPER_S = {  # Paper 002, Table 3.
    'cifar10_resnet18': 10,
    'cifar10_vgg16': 20,
    'cifar10_vgg19': 10,
    'cifar100_resnet18': 2,
    'cifar100_vgg16': 60,
    'cifar100_vgg19': 40,
    'imagenet_resnet18': 2,
}


def test_paper_presets():
  for name, s in PAPER_S.items():
    cfg = config_lib.get_config(name)
    assert cfg.init_scale == s and cfg.effective_init_scale == s, name
    assert cfg.batch_size == 128 and cfg.method == 'rda', name
    assert cfg.asr_epochs > 0, name
  assert config_lib.get_config('mnist_lenet5').model == 'lenet5'
  # RDA's init applies to rda only (the paper initialises Prox-SGD like SGD).
  sgd = config_lib.get_config('cifar10_resnet18', method='sgd')
  assert sgd.effective_init_scale == 0
  assert (
      config_lib.get_config(method='rda', init_scale=0).effective_init_scale
      == 2
  )


def test_default_is_short_mnist_rmda_asr():
  cfg = config_lib.get_config()
  assert cfg.model in ('lenet5', 'lenet300_100')
  assert (cfg.dataset, cfg.method) == ('mnist', 'rmda')
  assert cfg.asr_optimizer == 'sgd'
  assert 0 < cfg.epochs <= 10 and 0 < cfg.asr_epochs <= 5
  assert cfg.lam > 0


def test_config_json_round_trip(tmp_path):
  cfg = config_lib.get_config(
      'cifar10_resnet18',
      lr_boundaries=(1.0, 2.0),
      lr_scales=(0.1, 0.1),
      lr_schedule='piecewise',
  )
  path = tmp_path / 'config.json'
  config_lib.write_config(cfg, str(path))
  assert config_lib.load_config(str(path)) == cfg
  assert config_lib.load_config(str(tmp_path)) == cfg
  cfg2, _, _ = cli.parse_config(['--config', str(path), '--epochs', '3'])
  assert cfg2 == cfg.replace(epochs=3.0)


# ---------------------------------------------------------------------------
# Bad input: clear errors, exit status 2, before any work.
# ---------------------------------------------------------------------------


def test_one_source_of_defaults():
  # The default job is the dataclass defaults; presets add their own values.
  assert config_lib.PRESETS['default'] == {}
  assert config_lib.get_config() == config_lib.Config()
  assert config_lib.Config().model == 'lenet300_100'
  assert config_lib.Config().method == 'rmda'

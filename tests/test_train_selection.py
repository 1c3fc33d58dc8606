"""train/selection.py: the leaves --select and --scale_lam treat, and the
checks that need the model's parameters."""

import numpy as np
import pytest

import rda_optax
from train import config as config_lib
from train import selection
from train.config import ConfigError


def test_leaf_selection():
  params = {
      'Conv_0': {'kernel': np.ones((3, 3, 1, 2)), 'bias': np.ones(2)},
      'Dense_0': {'kernel': np.ones((4, 2)), 'bias': np.ones(2)},
  }
  assert selection.leaf_mask('kernels') is None
  conv = selection.leaf_mask('conv')(params)
  assert conv['Conv_0']['kernel'] and not conv['Dense_0']['kernel']
  dense = selection.leaf_mask('dense')(params)
  assert dense['Dense_0']['kernel'] and not dense['Conv_0']['kernel']
  rx = selection.leaf_mask('Dense_0/kernel')(params)
  assert rx['Dense_0']['kernel'] and not rx['Conv_0']['kernel']
  with pytest.raises(ConfigError, match='regular expression'):
    selection.leaf_mask('([')


def test_check_model_needs_parameters_for_select_and_scale_lam():
  base = config_lib.get_config(None, workdir='runs/x')
  selection.check_model(base)  # LeNet-300-100, its kernels.
  selection.check_model(base.replace(select='fc[12]/kernel'))
  with pytest.raises(ConfigError, match="--select 'conv' matches no par"):
    selection.check_model(base.replace(select='conv'))  # An MLP.
  with pytest.raises(ConfigError, match="Unknown model 'resnet19'"):
    selection.check_model(base.replace(model='resnet19'))
  with pytest.raises(ConfigError, match='this model has none'):
    selection.check_model(base.replace(scale_lam=1e-3))


def test_a_selection_taking_a_transformers_tables_is_noted(capsys):
  cfg = config_lib.get_config(
      None, model='gpt_char', dataset='shakespeare_char', workdir='runs/x'
  )
  selection.check_model(cfg)  # The weight kernels: no note.
  assert capsys.readouterr().err == ''
  selection.check_model(cfg.replace(select='dense'))
  err = capsys.readouterr().err
  assert err.startswith('note: --select dense takes gpt_char')
  assert 'positions, tokens/embedding too' in err
  assert 'block0' not in err  # Only the tables are named.


def test_scale_penalty_is_built_once_beside_the_weights_penalty():
  cfg = config_lib.get_config(None, model='resnet8', scale_lam=1e-3)
  assert selection.scale_penalty(cfg.replace(scale_lam=0.0)) is None
  penalty, labels = selection.scale_penalty(cfg)
  assert isinstance(penalty, rda_optax.L1) and penalty.strength == 1e-3
  penalty, _ = selection.scale_penalty(cfg.replace(scale_penalty='channel'))
  assert isinstance(penalty, rda_optax.CoupledGroupLasso)

"""The check that a redesign of train/ changed no configuration.

Prints, as JSON, every preset's resolved config and its --list_presets
line, and the config (with the explicit fields and the RDA init scale) of a
few command lines. Run it from the root of a checkout before and after a
change and compare:

    python tests/_config_dump.py > /tmp/before.json   # on the old commit
    python tests/_config_dump.py > /tmp/after.json
    diff /tmp/before.json /tmp/after.json && echo identical
"""

import json
import os
import sys

sys.path.insert(0, os.getcwd())  # The checkout it is run from.

from train import cli  # pylint: disable=wrong-import-position
from train import config as config_lib  # pylint: disable=wrong-import-position

ARGVS = [
    [],
    ['--preset', 'cifar10_resnet18', '--workdir', 'x'],
    ['--method', 'sgd', '--lr', '0.1'],
    ['--method', 'gmp', '--gmp_sparsity', '0.8'],
    ['--method', 'han', '--init_from', '/tmp', '--prune_sparsity', '0.5'],
    ['--regularizer', 'sparsity', '--target_sparsity', '0.95'],
    ['--method', 'splitting', '--regularizer', 'tl1', '--lam2', '1e-4'],
    [
        '--lr_schedule',
        'piecewise',
        '--lr_boundaries',
        '2,4',
        '--lr_scales',
        '0.1,0.1',
    ],
    ['--preset', 'mnist_lenet300_rda', '--no-asr_restart', '--seed', '3'],
    ['--method', 'rda', '--init_scale', '0', '--eval_batch_size', '64'],
    ['--lam=0.001', '--momentum=0.5', '--dtype', 'bfloat16'],
]


def main() -> None:
  out = {}
  for p in sorted(config_lib.PRESETS):
    out[f'preset:{p}'] = json.loads(config_lib.get_config(p).to_json())
    out[f'describe:{p}'] = cli.describe_preset(p)
  for argv in ARGVS:
    cfg, explicit, args = cli.parse_config(argv)
    out['argv:' + ' '.join(argv)] = {
        'config': json.loads(cfg.to_json()),
        'explicit': sorted(explicit),
        'init_scale': cfg.effective_init_scale,
    }
  print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == '__main__':
  main()

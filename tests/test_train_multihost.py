"""Two processes (2 CPU devices each) train like one process with 4 devices.

The two processes find each other on 127.0.0.1 through
``jax.distributed.initialize`` (``--coordinator_address``, Gloo CPU
collectives); each feeds its half of every global batch to its 2 devices;
both call Orbax, which writes from process 0 into the shared run directory;
only process 0 writes metrics. The final parameters match the 4-device run
to float32 rounding (same tolerance as the 8-device test; the reduction over
processes goes through Gloo).
"""

import os
import subprocess

import numpy as np
import pytest

from _train_driver import (
    REPO,
    env_with_devices,
    final_variables,
    flat,
    free_port,
    run_train,
    train_cmd,
)
from train import metrics as metrics_lib

ARGS = [
    '--method',
    'rda',
    '--dataset',
    'synthetic',
    '--batch_size',
    '32',
    '--eval_batch_size',
    '48',
    '--steps_per_epoch',
    '2',
    '--epochs',
    '1',
    '--asr_epochs',
    '1',
    '--lam',
    '3e-3',
    '--gamma',
    '2',
    '--init_scale',
    '2',
    '--no-progress',
    '--no-report',
    '--log_every_steps',
    '1',
]
RTOL, ATOL = 1e-4, 1e-5


def test_two_processes_match_one_process_with_four_devices(tmp_path):
  single, multi = str(tmp_path / 'single'), str(tmp_path / 'multi')
  run_train(ARGS + ['--workdir', single], devices=4, tiny_bn=True)

  port = free_port()
  procs = []
  for pid in range(2):
    args = ARGS + [
        '--workdir',
        multi,
        '--coordinator_address',
        f'127.0.0.1:{port}',
        '--num_processes',
        '2',
        '--process_id',
        str(pid),
    ]
    procs.append(
        subprocess.Popen(
            train_cmd(args, tiny_bn=True),
            cwd=REPO,
            env=env_with_devices(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=300))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, (out, err) in zip(procs, outs):
    if p.returncode:
      pytest.fail(
          f'process failed ({p.returncode}):\n{out[-2000:]}\n' f'{err[-5000:]}'
      )

  a, b = final_variables(single), final_variables(multi)
  assert a['step'] == b['step'] == 4
  fa = flat({'p': a['params'], 's': a['batch_stats']})
  fb = flat({'p': b['params'], 's': b['batch_stats']})
  for k in fa:
    np.testing.assert_allclose(fb[k], fa[k], rtol=RTOL, atol=ATOL, err_msg=k)
  # Process 0 alone wrote the metrics: each step once.
  steps = [r['step'] for r in metrics_lib.read_records(multi, 'train')]
  assert steps == [1, 2, 3, 4]
  evals = metrics_lib.read_records(multi, 'eval')
  ref = metrics_lib.read_records(single, 'eval')
  assert [r['step'] for r in evals] == [2, 4]
  for ra, rb in zip(ref, evals):
    np.testing.assert_allclose(rb['test_top1'], ra['test_top1'], atol=1e-6)
  assert os.path.exists(os.path.join(multi, 'config.json'))

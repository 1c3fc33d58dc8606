"""Two processes (2 CPU devices each) train like one process with 1 device.

The two processes find each other on 127.0.0.1 through
``jax.distributed.initialize`` (``--coordinator_address``, Gloo CPU
collectives); each feeds its half of every global batch to its 2 devices;
both call Orbax, which writes from process 0 into the shared run directory;
only process 0 writes metrics. The final parameters match the one-device run
of ``tests/test_train_multidevice.py`` (shared) to float32 rounding (same
tolerance as the 8-device test; the reduction over processes goes through
Gloo).
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
    train_cmd,
    TINY_ARGS,
)
from _train_driver import MATCH_ATOL as ATOL, MATCH_RTOL as RTOL
from train import metrics as metrics_lib


def test_two_processes_match_one_device(tmp_path, tiny_one_device_run):
  single, multi = tiny_one_device_run, str(tmp_path / 'multi')

  port = free_port()
  procs = []
  for pid in range(2):
    args = [
        *TINY_ARGS,
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

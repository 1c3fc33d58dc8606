"""train/data/prefetch.py: background prefetching and device placement of
batches (one and two devices, two processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from train.data import input_pipeline as ip  # noqa: E402
from _data_helpers import REPO  # noqa: E402
from _data_helpers import index_source  # noqa: E402
from _data_helpers import run_python  # noqa: E402


def test_prefetcher_order_errors_and_close():
  assert list(ip.prefetch(iter(range(50)), 3)) == list(range(50))

  def broken():
    yield 1
    raise RuntimeError("boom")

  it = ip.prefetch(broken())
  assert next(it) == 1
  with pytest.raises(RuntimeError, match="boom"):
    next(it)

  def endless():
    i = 0
    while True:
      yield i
      i += 1

  with ip.prefetch(endless(), 2) as it:
    assert [next(it) for _ in range(5)] == list(range(5))
  assert not it._thread.is_alive()
  it = ip.prefetch(endless(), 2)  # dropping the iterator stops its thread
  next(it)
  thread = it._thread
  del it
  import gc

  gc.collect()
  thread.join(5)
  assert not thread.is_alive()


def test_prefetch_to_device():
  src = index_source(64, (4, 4, 3))
  with ip.prefetch_to_device(ip.train_batches(src, 8, seed=0), 2) as it:
    batch = next(it)
  assert isinstance(batch["image"], jax.Array)
  assert batch["image"].shape == (
      jax.local_device_count(),
      8 // jax.local_device_count(),
      4,
      4,
      3,
  )
  assert batch["image"].sharding.spec[0] == "batch"
  np.testing.assert_array_equal(
      np.asarray(batch["label"]).ravel(), ip.global_batch_indices(64, 8, 0, 0)
  )


def test_pmap_consumes_prefetched_batches_on_two_devices():
  out = run_python(
      """
        import json, jax, numpy as np
        from train.data import input_pipeline as ip
        from train.data import augment
        assert jax.local_device_count() == 2
        rng = np.random.default_rng(0)
        src = ip.ArraySource(rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), np.arange(40) % 10)
        step = jax.pmap(lambda b, k: (augment.preprocess(b['image'], augment.device_key(k, 'batch'),
                                                         'cifar10', True).mean((1, 2, 3)),
                                      jax.lax.psum(b['label'].sum(), 'batch')),
                        axis_name='batch', in_axes=(0, None))
        shapes, sums = [], []
        with ip.prefetch_to_device(ip.train_batches(src, 8, seed=0, num_steps=3)) as it:
            for b in it:
                assert len(b['image'].sharding.device_set) == 2 and b['image'].shape == (2, 4, 32, 32, 3)
                x, s = step(b, jax.random.key(0))
                shapes.append(list(x.shape)); sums.append(int(s[0]))
        ev = sum(float(np.asarray(b['mask']).sum()) for b in ip.prefetch_to_device(ip.eval_batches(src, 12)))
        print(json.dumps({'shapes': shapes, 'sums': sums, 'eval': ev}))
    """,
      {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
  )
  assert out["shapes"] == [[2, 4]] * 3 and out["eval"] == 40
  expected = [
      int((ip.global_batch_indices(40, 8, 0, s) % 10).sum()) for s in range(3)
  ]
  assert out["sums"] == expected


@pytest.mark.slow
def test_pmap_accepts_host_local_batches_from_two_processes():
  """Two real JAX processes (CPU, gloo), 2 devices each: pmap builds the global batch itself."""
  import socket

  with socket.socket() as sock:
    sock.bind(("localhost", 0))
    port = sock.getsockname()[1]
  code = textwrap.dedent(f"""
        import sys, json, numpy as np, jax
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address="localhost:{port}", num_processes=2,
                                   process_id=int(sys.argv[1]), initialization_timeout=60)
        from train.data import input_pipeline as ip
        src = ip.ArraySource(np.zeros((40, 4, 4, 3), np.uint8), np.arange(40))
        total = jax.pmap(lambda b: jax.lax.psum(b["label"].sum(), "batch"), axis_name="batch")
        masked = jax.pmap(lambda b: jax.lax.psum(jnp_sum(b), "batch"), axis_name="batch")
        def jnp_sum(b):
            return (b["mask"].sum(), (b["label"] * b["mask"]).sum())
        with ip.prefetch_to_device(ip.train_batches(src, 8, seed=0, num_steps=3)) as it:
            sums = [int(total(b)[0]) for b in it]
        ev = [[float(v[0]) for v in masked(b)] for b in ip.eval_batches(src, 12)]
        print(json.dumps({{"pc": jax.process_count(), "dc": jax.device_count(), "sums": sums, "ev": ev}}))
    """)
  env = dict(
      os.environ,
      PYTHONPATH=REPO,
      JAX_PLATFORMS="cpu",
      XLA_FLAGS="--xla_force_host_platform_device_count=2",
  )
  procs = [
      subprocess.Popen(
          [sys.executable, "-c", code, str(i)],
          cwd=REPO,
          env=env,
          text=True,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
      )
      for i in (0, 1)
  ]
  outs = []
  for proc in procs:
    try:
      stdout, stderr = proc.communicate(timeout=180)
    finally:
      if proc.poll() is None:
        proc.kill()
    assert proc.returncode == 0, stderr[-5000:]
    outs.append(json.loads(stdout.strip().splitlines()[-1]))
  expected = [int(ip.global_batch_indices(40, 8, 0, s).sum()) for s in range(3)]
  for out in outs:
    assert (out["pc"], out["dc"]) == (2, 4)
    assert (
        out["sums"] == expected
    )  # both hosts' shares make up exactly the global batch
    assert sum(e[0] for e in out["ev"]) == 40 and sum(
        e[1] for e in out["ev"]
    ) == sum(range(40))

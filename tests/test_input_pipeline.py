"""Tests of the input pipeline (train/data/input_pipeline.py, its sources and train/data/augment.py).

Fast tests use tfds.testing.mock_data or in-memory arrays. Tests on real data read
``$RDA_SHARED_DATA`` (default ``<repo>/../shared/data``) and are skipped when it is absent.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time

import numpy as np
import pytest

jax = pytest.importorskip("jax")
tfds = pytest.importorskip("tensorflow_datasets")
PIL_Image = pytest.importorskip("PIL.Image")

import jax.numpy as jnp  # noqa: E402

from train.data import augment  # noqa: E402
from train.data import loader as data_lib  # noqa: E402
from train.data import datasets  # noqa: E402
from train.data import decode
from train.data import folder_source
from train.data import tfds_source
from train.data import input_pipeline as ip  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get(
    "RDA_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")
)
MNIST_DIR = os.path.join(SHARED, "mnist")
CIFAR_JPG = os.path.join(SHARED, "cifar10-jpg.tar.gz")
HAVE_MNIST = all(
    os.path.exists(os.path.join(MNIST_DIR, f)) for f in datasets.MNIST_FILES
)
HAVE_CIFAR_JPG = os.path.exists(CIFAR_JPG)
needs_mnist = pytest.mark.skipif(
    not HAVE_MNIST,
    reason=f"real MNIST archives not found in {MNIST_DIR} "
    "(set RDA_SHARED_DATA to the shared data folder)",
)
needs_cifar_jpg = pytest.mark.skipif(
    not HAVE_CIFAR_JPG,
    reason=f"{CIFAR_JPG} not found "
    "(set RDA_SHARED_DATA to the shared data folder)",
)

# Official MNIST label counts.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def topo(pi=0, pc=1, ldc=1):
  return dict(process_index=pi, process_count=pc, local_device_count=ldc)


def index_source(n, shape=(2, 2, 1)):
  """An ArraySource whose label is the example index (and pixel 0 its low byte)."""
  images = np.zeros((n, *shape), np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  return datasets.ArraySource(images, np.arange(n, dtype=np.int32))


# ---------------------------------------------------------------------------------------------
# TFDS mock data: shapes, dtypes, per-device layout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))]
)
def test_mock_tfds_shapes_and_layout(name, shape):
  with tfds.testing.mock_data(num_examples=48):
    ds = ip.load_dataset(name, data_dir="/nonexistent/tfds")
  assert isinstance(
      ds.train, datasets.ArraySource
  )  # small: decoded once into memory
  assert ds.info.image_shape == shape and ds.info.num_classes == 10
  assert (ds.info.num_train, ds.info.num_eval) == (48, 48)
  batch = next(
      ip.train_batches(ds.train, 16, seed=0, **topo(pi=1, pc=2, ldc=2))
  )
  assert (
      batch["image"].shape == (2, 4, *shape)
      and batch["image"].dtype == np.uint8
  )
  assert batch["label"].shape == (2, 4) and batch["label"].dtype == np.int32
  assert ((batch["label"] >= 0) & (batch["label"] < 10)).all()
  ev = list(ip.eval_batches(ds.eval, 20, **topo(ldc=2)))
  assert [b["image"].shape for b in ev] == [(2, 10, *shape)] * 3
  assert sum(b["mask"].sum() for b in ev) == 48


def test_mock_imagenet_host_crops():
  with tfds.testing.mock_data(num_examples=12):
    ds = ip.load_dataset(
        "imagenet2012", data_dir="/nonexistent/tfds", image_size=40
    )
    assert ds.info.eval_split == "validation" and ds.info.num_classes == 1000
    assert (
        ds.info.image_shape == (40, 40, 3)
        and ds.info.augmentation == datasets.AUG_FLIP
    )
    assert isinstance(
        ds.train, decode.TFDSImageSource
    )  # streamed, never all in memory
    a = ds.train.get_batch(np.arange(6), seeds=np.arange(6))
    b = ds.train.get_batch(np.arange(6), seeds=np.arange(6))
    c = ds.train.get_batch(np.arange(6), seeds=np.arange(6) + 100)
    e = ds.eval.get_batch(np.arange(6))
  assert a["image"].shape == (6, 40, 40, 3) and a["image"].dtype == np.uint8
  np.testing.assert_array_equal(
      a["image"], b["image"]
  )  # seeded crops are reproducible
  assert not np.array_equal(a["image"], c["image"])
  assert e["image"].shape == (6, 40, 40, 3)


def test_check_dataset_and_static_info():
  for name in (
      "mnist",
      "fashion_mnist",
      "cifar10",
      "cifar100",
      "imagenet2012",
      "cifar10_jpg",
  ):
    ip.check_dataset(name)
    info = ip.get_info(name)
    assert len(info.mean) == len(info.std) == info.image_shape[-1]
  ip.check_dataset("imagefolder:/some/where")
  assert ip.get_info("cifar100").num_classes == 100
  assert ip.get_info("imagenet2012").split_sizes == {
      "train": 1_281_167,
      "validation": 50_000,
  }
  with pytest.raises(ValueError, match="Unknown dataset"):
    ip.check_dataset("mnistt")


# ---------------------------------------------------------------------------------------------
# Train order: deterministic, resumable, host-count independent
# ---------------------------------------------------------------------------------------------


def _labels(it, k):
  return [next(it)["label"].copy() for _ in range(k)]


def test_train_order_deterministic_and_resumable():
  src = index_source(100)
  kw = dict(seed=3, **topo(ldc=2))
  full = _labels(
      ip.train_batches(src, 16, **kw), 20
  )  # 6 steps/epoch: crosses 3 epochs
  again = _labels(ip.train_batches(src, 16, **kw), 20)
  np.testing.assert_array_equal(np.stack(full), np.stack(again))
  for start in (1, 5, 6, 13):
    resumed = _labels(
        ip.train_batches(src, 16, start_step=start, **kw), 20 - start
    )
    np.testing.assert_array_equal(np.stack(full[start:]), np.stack(resumed))
  other_seed = _labels(ip.train_batches(src, 16, seed=4, **topo(ldc=2)), 6)
  assert not np.array_equal(np.stack(full[:6]), np.stack(other_seed))
  # Each epoch: 6 * 16 distinct examples; the 4 dropped ones differ between epochs.
  epochs = [
      np.concatenate([b.ravel() for b in full[6 * e : 6 * e + 6]])
      for e in range(3)
  ]
  assert all(len(set(e.tolist())) == 96 for e in epochs)
  assert (
      len({tuple(sorted(set(range(100)) - set(e.tolist()))) for e in epochs})
      == 3
  )
  assert ip.steps_per_epoch(100, 16) == 6
  np.testing.assert_array_equal(
      full[7].ravel(), ip.global_batch_indices(100, 16, 3, 7)
  )
  it = ip.train_batches(src, 16, num_steps=4, **kw)
  assert len(list(it)) == 4


def test_train_hosts_split_the_global_batch():
  src = index_source(64)
  single = _labels(ip.train_batches(src, 16, seed=0, **topo(ldc=4)), 5)
  hosts = [
      _labels(ip.train_batches(src, 16, seed=0, **topo(pi=p, pc=2, ldc=2)), 5)
      for p in (0, 1)
  ]
  for step in range(5):
    joined = np.concatenate([hosts[0][step].ravel(), hosts[1][step].ravel()])
    np.testing.assert_array_equal(joined, single[step].ravel())


def test_batch_not_divisible_by_devices():
  src = index_source(64)
  with pytest.raises(ValueError, match="multiple of the total device count 6"):
    next(ip.train_batches(src, 16, seed=0, **topo(pc=2, ldc=3)))
  with pytest.raises(ValueError, match="device count"):
    next(ip.eval_batches(src, 10, **topo(ldc=4)))
  with pytest.raises(ValueError, match="train examples"):
    next(ip.train_batches(src, 128, seed=0, **topo()))


# ---------------------------------------------------------------------------------------------
# Eval: padding + mask, every example exactly once across hosts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,batch,pc,ldc",
    [
        (103, 20, 2, 2),
        (10, 8, 2, 2),
        (7, 16, 2, 4),
        (1, 4, 2, 2),
        (96, 32, 1, 2),
    ],
)
def test_eval_counts_every_example_once(n, batch, pc, ldc):
  src = index_source(n)
  seen, steps = [], []
  for p in range(pc):
    host = list(ip.eval_batches(src, batch, **topo(pi=p, pc=pc, ldc=ldc)))
    steps.append(len(host))
    for b in host:
      assert (
          b["image"].shape[:2]
          == b["label"].shape
          == b["mask"].shape
          == (ldc, batch // pc // ldc)
      )
      assert b["mask"].dtype == np.float32
      real = b["mask"].ravel() == 1
      seen += b["label"].ravel()[real].tolist()
      assert (b["image"].reshape(-1, *src.image_shape)[~real] == 0).all()
  assert len(set(steps)) == 1 and steps[0] == ip.num_eval_steps(n, batch, pc)
  assert sorted(seen) == list(range(n))


# ---------------------------------------------------------------------------------------------
# Device augmentation
# ---------------------------------------------------------------------------------------------


def _tiny(n):
  image = (np.arange(1, 17, dtype=np.uint8) * 10).reshape(
      1, 4, 4, 1
  )  # distinct, non-zero, asymmetric
  return np.repeat(image, n, axis=0)


def test_random_crop_is_a_padded_crop_and_covers_all_offsets():
  images = _tiny(256)
  out = np.asarray(
      jax.jit(augment.random_crop, static_argnums=2)(
          images, jax.random.key(0), 1
      )
  )
  assert out.shape == images.shape and out.dtype == np.uint8
  padded = np.pad(images[0], ((1, 1), (1, 1), (0, 0)))
  offsets = []
  for crop in out:
    match = [
        (y, x)
        for y in range(3)
        for x in range(3)
        if np.array_equal(crop, padded[y : y + 4, x : x + 4])
    ]
    assert len(match) == 1
    offsets.append(match[0])
  assert set(offsets) == {(y, x) for y in range(3) for x in range(3)}


def test_random_flip_exact():
  images = _tiny(64)
  out = np.asarray(augment.random_flip(images, jax.random.key(1)))
  flipped = np.array(
      [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
  )
  kept = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
  assert (flipped ^ kept).all() and 10 < flipped.sum() < 54


def test_augmentation_determinism_and_shapes():
  images = np.random.default_rng(0).integers(
      0, 256, (8, 32, 32, 3), dtype=np.uint8
  )
  f = jax.jit(lambda x, k: augment.preprocess(x, k, "cifar10", True))
  a, b = f(images, jax.random.key(5)), f(images, jax.random.key(5))
  c = f(images, jax.random.key(6))
  assert a.shape == (8, 32, 32, 3) and a.dtype == jnp.float32
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  # leading dims (devices, batch) are fine
  assert f(images.reshape(2, 4, 32, 32, 3), jax.random.key(5)).shape == (
      2,
      4,
      32,
      32,
      3,
  )
  # per-example keys under vmap, as the train step does
  keys = jax.random.split(jax.random.key(0), 8)
  g = jax.jit(
      jax.vmap(lambda x, k: ip.preprocess(x[None], k, "cifar10", True)[0])
  )
  assert g(images, keys).shape == (8, 32, 32, 3)
  # pmap with a per-device key
  h = jax.pmap(
      lambda x, k: augment.preprocess(
          x, augment.device_key(k, "b"), "cifar10", True
      ),
      axis_name="b",
      in_axes=(0, None),
  )
  assert h(images[None], jax.random.key(0)).shape == (1, 8, 32, 32, 3)


def test_normalisation_and_eval_is_deterministic():
  images = np.full((2, 32, 32, 3), 255, np.uint8)
  images[1] = 0
  out = np.asarray(augment.preprocess(images, None, "cifar10", False))
  mean, std = np.array(datasets.MEAN_STD["cifar10"][0]), np.array(
      datasets.MEAN_STD["cifar10"][1]
  )
  np.testing.assert_allclose(out[0, 0, 0], (1 - mean) / std, rtol=1e-5)
  np.testing.assert_allclose(out[1, 5, 7], -mean / std, rtol=1e-5)
  mnist = np.asarray(
      augment.preprocess(
          np.zeros((1, 28, 28, 1), np.uint8), jax.random.key(0), "mnist", True
      )
  )
  np.testing.assert_allclose(
      mnist, -0.1307 / 0.3081, rtol=1e-5
  )  # no augmentation for MNIST
  img = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
  out = np.asarray(
      augment.preprocess(img, jax.random.key(2), "imagenet2012", True)
  )
  ref = np.asarray(augment.preprocess(img, None, "imagenet2012", False))
  for o, r in zip(out, ref):  # ImageNet on device: flip only
    assert np.allclose(o, r) or np.allclose(o, r[:, ::-1])
  assert (
      augment.preprocess(img, None, "imagenet2012", False, jnp.bfloat16).dtype
      == jnp.bfloat16
  )
  with pytest.raises(ValueError, match="PRNG key"):
    augment.preprocess(img, None, "cifar10", True)


def test_host_crop_boxes():
  rng = np.random.default_rng(0)
  for _ in range(300):
    w, h = rng.integers(20, 500, 2)
    x, y, cw, ch = decode.random_resized_crop_box(rng, int(w), int(h))
    assert (
        0 <= x and 0 <= y and 0 < cw and 0 < ch and x + cw <= w and y + ch <= h
    )
  assert decode.center_crop_box(320, 256, 224) == (
      48,
      16,
      224,
      224,
  )  # 224/256 of the short side
  # Decoding a JPEG with a centre crop: same as the full-resolution reference (draft mode used).
  yy, xx = np.mgrid[0:300, 0:400]
  array = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
  buf = io.BytesIO()
  PIL_Image.fromarray(array).save(buf, format="JPEG", quality=95)
  out = decode.decode_crop_resize(
      buf.getvalue(), 64, lambda w, h: decode.center_crop_box(w, h, 64)
  )
  x, y, cw, ch = decode.center_crop_box(400, 300, 64)
  ref = np.asarray(
      PIL_Image.open(io.BytesIO(buf.getvalue()))
      .convert("RGB")
      .resize((64, 64), PIL_Image.BICUBIC, box=(x, y, x + cw, y + ch))
  )
  assert out.shape == (64, 64, 3) and out.dtype == np.uint8
  assert np.abs(out.astype(int) - ref.astype(int)).mean() < 6


# ---------------------------------------------------------------------------------------------
# Prefetching and device placement
# ---------------------------------------------------------------------------------------------


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


def _run_python(code, env_extra=None, timeout=240):
  env = dict(
      os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", **(env_extra or {})
  )
  proc = subprocess.run(
      [sys.executable, "-c", textwrap.dedent(code)],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=timeout,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pmap_consumes_prefetched_batches_on_two_devices():
  out = _run_python(
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


def test_create_data_for_the_training_loop():
  import types

  cfg = types.SimpleNamespace(
      dataset="cifar10",
      data_dir="/nonexistent/tfds",
      manual_dir=None,
      batch_size=8,
      eval_batch=16,
      seed=0,
      train_split="train",
      eval_split="test",
  )
  with tfds.testing.mock_data(num_examples=40):
    data = data_lib.create_data(cfg)
  assert (data.num_classes, data.image_shape, data.num_train_examples) == (
      10,
      (32, 32, 3),
      40,
  )
  batch = next(data.train_batches(3))
  assert batch["image"].shape == (1, 8, 32, 32, 3) and isinstance(
      batch["image"], jax.Array
  )
  assert (
      sum(float(np.asarray(b["mask"]).sum()) for b in data.eval_batches()) == 40
  )
  x = data.preprocess(batch["image"][0], jax.random.key(0), True)
  assert x.shape == (8, 32, 32, 3) and x.dtype == jnp.float32


# ---------------------------------------------------------------------------------------------
# A missing dataset offline fails at once, with a message saying how to supply it
# ---------------------------------------------------------------------------------------------


def _assert_helpful(message):
  for needle in (
      "--manual_dir",
      datasets.MANUAL_DIR_ENV,
      "--data_dir",
      "array_record",
  ):
    assert needle in message, message


@pytest.fixture
def no_manual_env(monkeypatch, tmp_path_factory):
  """No manual folder anywhere: neither the env variable nor an offline copy."""
  monkeypatch.delenv(datasets.MANUAL_DIR_ENV, raising=False)
  monkeypatch.setenv(
      datasets.SHARED_DATA_ENV,
      str(tmp_path_factory.mktemp("no_shared_data")),
  )


def test_missing_dataset_without_download_fails_fast(
    tmp_path, no_manual_env, monkeypatch
):
  calls = []
  monkeypatch.setattr(
      tfds_source, "probe_url", lambda url, timeout=4.0: calls.append(url)
  )
  with pytest.raises(ip.DatasetNotFoundError) as e:
    ip.load_dataset("cifar100", data_dir=tmp_path, download=False)
  assert not calls  # No network at all: nothing to wait for.
  _assert_helpful(str(e.value))
  assert "cifar-100-binary.tar.gz" in str(e.value)


def test_missing_dataset_offline_fails_fast(
    tmp_path, no_manual_env, monkeypatch
):
  calls = []
  monkeypatch.setattr(
      tfds_source,
      "probe_url",
      lambda url, timeout=4.0: calls.append(url) or "simulated",
  )
  with pytest.raises(ip.DatasetNotFoundError, match="offline") as e:
    ip.load_dataset("fashion_mnist", data_dir=tmp_path)
  assert calls  # One probe (with its timeout) decides, before any download.
  _assert_helpful(str(e.value))


def test_missing_dataset_really_offline(tmp_path, no_manual_env):
  """The real network probe: here (no internet) it must fail within seconds, not minutes."""
  if (
      tfds_source.probe_url(datasets.TFDS_SPECS["fashion_mnist"].probe_url)
      is None
  ):
    pytest.skip("this machine is online: TFDS would download fashion_mnist")
  start = time.perf_counter()
  with pytest.raises(ip.DatasetNotFoundError, match="offline"):
    ip.load_dataset("fashion_mnist", data_dir=tmp_path)
  assert time.perf_counter() - start < 20


def test_probe_of_unreachable_host_is_fast():
  start = time.perf_counter()
  reason = tfds_source.probe_url("http://host.invalid/file.gz", timeout=2.0)
  assert reason is not None and time.perf_counter() - start < 5


def test_imagenet_needs_manual_dir(tmp_path, no_manual_env):
  with pytest.raises(
      ip.DatasetNotFoundError, match="ILSVRC2012_img_train.tar"
  ) as e:
    ip.load_dataset("imagenet2012", data_dir=tmp_path)
  _assert_helpful(str(e.value))


def test_manual_dir_missing_files(tmp_path, monkeypatch):
  monkeypatch.setenv(datasets.MANUAL_DIR_ENV, str(tmp_path / "manual"))
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "train-images-idx3-ubyte.gz").write_bytes(b"")
  with pytest.raises(
      ip.DatasetNotFoundError, match="lacks train-labels-idx1-ubyte.gz"
  ) as e:
    ip.load_dataset("mnist", data_dir=tmp_path / "data")
  assert "t10k-images-idx3-ubyte.gz" in str(e.value)


# ---------------------------------------------------------------------------------------------
# Image folders (generic) and the real CIFAR-10 JPEG copy
# ---------------------------------------------------------------------------------------------


def _make_folder(root, sizes=(6, 4)):
  rng = np.random.default_rng(0)
  for split, per_class in zip(("train", "test"), sizes):
    for cls in ("zebra", "ant", "moth"):  # sorted: ant=0, moth=1, zebra=2
      os.makedirs(os.path.join(root, split, cls))
      for i in range(per_class):
        array = np.full(
            (5, 6, 3), ("ant", "moth", "zebra").index(cls) * 50 + i, np.uint8
        )
        array[0, 0] = rng.integers(0, 256, 3)
        PIL_Image.fromarray(array).save(
            os.path.join(root, split, cls, f"{i:03d}.png")
        )
  (root / "train" / "ant" / ".hidden.png").write_bytes(b"not an image")


def test_image_folder_dir_and_tar(tmp_path):
  root = tmp_path / "shapes"
  _make_folder(root)
  ds = ip.load_dataset(f"imagefolder:{root}", data_dir=tmp_path / "data")
  assert (
      ds.info.class_names == ("ant", "moth", "zebra")
      and ds.info.num_classes == 3
  )
  assert (ds.info.num_train, ds.info.num_eval, ds.info.image_shape) == (
      18,
      12,
      (5, 6, 3),
  )
  assert (
      ds.info.augmentation == datasets.AUG_CROP_FLIP and len(ds.info.mean) == 3
  )
  batch = ds.train.get_batch(np.arange(18))
  np.testing.assert_array_equal(batch["label"], np.repeat([0, 1, 2], 6))
  np.testing.assert_array_equal(
      batch["image"][:, 2, 2, 0],
      np.concatenate([np.arange(6) + 50 * c for c in range(3)]),
  )  # lossless PNG, sorted file order
  cache = folder_source.image_folder_cache_dir(root, tmp_path / "data")
  assert os.path.exists(os.path.join(cache, "train_images.npy"))
  mtime = os.path.getmtime(os.path.join(cache, "meta.json"))
  ip.load_dataset(
      f"imagefolder:{root}", data_dir=tmp_path / "data"
  )  # reuses the cache
  assert os.path.getmtime(os.path.join(cache, "meta.json")) == mtime
  # Images added to a class: a new cache, and the stale one is removed (not
  # left to fill the disk), while a cache with other options is kept.
  ip.load_dataset(
      f"imagefolder:{root}", data_dir=tmp_path / "data", max_per_class=1
  )
  subset = folder_source.image_folder_cache_dir(
      root, tmp_path / "data", max_per_class=1
  )
  PIL_Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(
      root / "train" / "ant" / "zzz.png"
  )
  os.utime(root / "train" / "ant", (1, 1))  # A new mtime, however coarse.
  grown = ip.load_dataset(f"imagefolder:{root}", data_dir=tmp_path / "data")
  assert grown.info.num_train == 19
  new_cache = folder_source.image_folder_cache_dir(root, tmp_path / "data")
  assert new_cache != cache and not os.path.exists(cache)
  assert sorted(os.listdir(tmp_path / "data" / "rda_imagefolder")) == sorted(
      os.path.basename(c) for c in (new_cache, subset)
  )
  os.remove(root / "train" / "ant" / "zzz.png")
  # The same folder inside a tar.gz (with a top-level folder), subset per class.
  archive = tmp_path / "shapes.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(root, arcname="shapes")
  sub = ip.load_dataset(
      f"imagefolder:{archive}", data_dir=tmp_path / "data", max_per_class=2
  )
  assert (sub.info.num_train, sub.info.num_eval) == (6, 6)
  np.testing.assert_array_equal(
      sub.train.get_batch(np.arange(6))["image"],
      batch["image"][[0, 1, 6, 7, 12, 13]],
  )
  b = next(ip.train_batches(sub.train, 4, seed=0, **topo(ldc=2)))
  assert b["image"].shape == (2, 2, 5, 6, 3)


def test_cifar10_jpg_missing_is_clear(tmp_path, no_manual_env):
  with pytest.raises(ip.DatasetNotFoundError, match="--manual_dir"):
    ip.load_dataset("cifar10_jpg", data_dir=tmp_path)


@needs_cifar_jpg
def test_cifar10_jpg_real_subset(tmp_path):
  ds = ip.load_dataset(
      "cifar10_jpg",
      manual_dir=SHARED,
      cache_dir=tmp_path / "cache",
      max_per_class=20,
  )
  names = (
      "airplane",
      "automobile",
      "bird",
      "cat",
      "deer",
      "dog",
      "frog",
      "horse",
      "ship",
      "truck",
  )
  assert ds.info.class_names == names and ds.info.num_classes == 10
  assert (ds.info.num_train, ds.info.num_eval, ds.info.image_shape) == (
      200,
      200,
      (32, 32, 3),
  )
  assert ds.info.mean == datasets.MEAN_STD["cifar10"][0]
  batch = ds.eval.get_batch(np.arange(200))
  assert batch["image"].dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(batch["label"]), [20] * 10)
  # Image 20 of the test split = first (sorted) test file of class 1, decoded with Pillow.
  with tarfile.open(CIFAR_JPG) as tar:
    members = sorted(
        m.name
        for m in tar.getmembers()
        if "/automobile/" in m.name
        and m.name.split("/")[-3] == "test"
        and m.name.endswith(".jpg")
    )
    data = tar.extractfile(members[0]).read()
  np.testing.assert_array_equal(
      batch["image"][20],
      np.asarray(PIL_Image.open(io.BytesIO(data)).convert("RGB")),
  )
  ev = list(ip.eval_batches(ds.eval, 64, **topo(ldc=2)))
  assert sum(b["mask"].sum() for b in ev) == 200


# ---------------------------------------------------------------------------------------------
# Real MNIST: prepare once from the manual folder, read it, read it WITHOUT TensorFlow
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_dir(prepared_mnist):
  # Prepared once per session (tests/conftest.py); preparing again finds it.
  path = ip.prepare_dataset(
      "mnist", data_dir=prepared_mnist, manual_dir=MNIST_DIR
  )
  assert os.path.exists(os.path.join(path, "dataset_info.json"))
  return prepared_mnist


@needs_mnist
def test_real_mnist_prepared_and_read(mnist_dir):
  ds = ip.load_dataset("mnist", data_dir=mnist_dir, in_memory=False)
  assert (ds.info.num_train, ds.info.num_eval) == (60_000, 10_000)
  labels = np.concatenate(
      [
          b["label"][b["mask"] == 1]
          for b in ip.eval_batches(ds.eval, 1024, **topo(ldc=2))
      ]
  )
  np.testing.assert_array_equal(np.bincount(labels), MNIST_TEST_COUNTS)
  it = ip.train_batches(ds.train, 256, seed=0, **topo(ldc=2))
  batch = next(it)
  assert (
      batch["image"].shape == (2, 128, 28, 28, 1)
      and batch["image"].dtype == np.uint8
  )
  assert 20 < batch["image"].mean() < 50  # real digits (MNIST mean pixel ~33)
  # prepare is a no-op the second time
  start = time.perf_counter()
  ip.prepare_dataset("mnist", data_dir=mnist_dir)
  assert time.perf_counter() - start < 5


# Hides TensorFlow as if it were not installed. (`sys.modules['tensorflow'] = None` is not usable:
# TFDS/etils decide "TF is loaded" from `'tensorflow' in sys.modules` and then crash importing it.)
NO_TF = """
    import sys
    class _HideTF:
        def __init__(self, finder):
            self.finder = finder
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                return None
            find = getattr(self.finder, "find_spec", None)
            return find(name, path, target) if find else None
        def __getattr__(self, attr):
            return getattr(self.finder, attr)
    sys.meta_path[:] = [_HideTF(f) for f in sys.meta_path]
    try:
        import tensorflow
        raise SystemExit("tensorflow is still importable")
    except ImportError:
        pass
"""


@needs_mnist
def test_reading_needs_no_tensorflow(mnist_dir):
  out = _run_python(NO_TF + f"""
    import json, numpy as np
    from train.data import input_pipeline as ip
    ds = ip.load_dataset("mnist", data_dir={mnist_dir!r}, in_memory=False)
    batches = list(ip.train_batches(ds.train, 64, seed=1, num_steps=3, process_index=0,
                                    process_count=1, local_device_count=1))
    ev = next(ip.eval_batches(ds.eval, 500, process_index=0, process_count=1, local_device_count=1))
    try:
        ip.prepare_dataset("fashion_mnist", data_dir={mnist_dir!r}, manual_dir={MNIST_DIR!r})
        prepare_error = None
    except ImportError as e:
        prepare_error = str(e)
    print(json.dumps({{
        "shape": list(batches[0]["image"].shape), "dtype": str(batches[0]["image"].dtype),
        "mean": float(np.mean([b["image"].mean() for b in batches])),
        "eval_labels": np.bincount(ev["label"].ravel(), minlength=10).tolist(),
        "tf_modules": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
        "prepare_error": prepare_error}}))
    """)
  assert out["tf_modules"] == []
  assert out["shape"] == [1, 64, 28, 28, 1] and out["dtype"] == "uint8"
  assert 20 < out["mean"] < 50 and sum(out["eval_labels"]) == 500
  assert "pip install 'rda-optax[prepare]'" in out["prepare_error"]


def test_offline_copy_is_the_default_manual_dir(tmp_path, monkeypatch):
  """Without --manual_dir, a complete copy in $RDA_SHARED_DATA/<name> is used."""
  from train.data import datasets

  monkeypatch.delenv(datasets.MANUAL_DIR_ENV, raising=False)
  monkeypatch.setenv(datasets.SHARED_DATA_ENV, str(tmp_path))
  folder = tmp_path / "mnist"
  folder.mkdir()
  files = datasets.TFDS_SPECS["mnist"].manual_files
  for f in files[:-1]:
    (folder / f).write_bytes(b"")
  assert (
      datasets.resolve_manual_dir(None, "mnist") is None
  )  # incomplete copy: not used
  (folder / files[-1]).write_bytes(b"")
  assert datasets.resolve_manual_dir(None, "mnist") == str(folder)
  assert (
      datasets.resolve_manual_dir("/explicit", "mnist") == "/explicit"
  )  # the flag wins
  monkeypatch.setenv(datasets.MANUAL_DIR_ENV, "/from_env")
  assert datasets.resolve_manual_dir(None, "mnist") == "/from_env"

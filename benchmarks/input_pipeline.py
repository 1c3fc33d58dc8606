"""Input pipeline throughput: host batches (images/s) and on-device augmentation (images/s).

Shows whether the input pipeline can keep an accelerator busy:

* MNIST (real, prepared from the shared manual folder as TFDS array_record, read without TF):
  streaming decode (Pillow per batch) and the default in-memory path (decoded once at load);
* CIFAR-10 JPEG copy: the one-time .npy cache build, then batches from the memory-mapped cache;
* the same batches through ``prefetch_to_device`` (background thread + device_put);
* ImageNet-style host decode (random-resized / centre crop to 224 at decode time) on synthetic
  500x375 JPEGs (no ImageNet here), per decoding thread and with the thread pool;
* device augmentation + normalisation (``train.data.augment.preprocess``) under jit, batch-wise and
  per example under vmap (as ``train.train_step.train_step`` calls it).

    python -m benchmarks.input_pipeline                 # data from $RDA_SHARED_DATA or ../shared/data
    python -m benchmarks.input_pipeline --data_dir /tmp/tfds --batch 256 --seconds 3

Prints a markdown table naming the machine.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import jax

from train.data import augment
from train.data import decode
from train.data import input_pipeline as ip

ROWS: list[tuple[str, str, str, str]] = []


def machine() -> str:
  cpus = (
      len(os.sched_getaffinity(0))
      if hasattr(os, "sched_getaffinity")
      else os.cpu_count()
  )
  device = jax.devices()[0]
  return (
      f"{platform.platform()} | {platform.processor() or platform.machine()} | "
      f"{cpus} CPU(s) usable | jax {jax.__version__} on {device.platform}:{device.device_kind} "
      f"x{jax.device_count()} | python {platform.python_version()}"
  )


def record(stage: str, data: str, rate: float | str, note: str = "") -> None:
  value = f"{rate:,.0f}" if isinstance(rate, (int, float)) else rate
  ROWS.append((stage, data, value, note))
  print(f"  {stage} [{data}]: {value} {note}", flush=True)


def rate_of(iterator, batch: int, seconds: float, warmup: int = 2) -> float:
  """Images/s of consuming ``iterator`` for about ``seconds`` (after ``warmup`` batches)."""
  for _ in range(warmup):
    x = next(iterator)
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    x = next(iterator)
    n += 1
  jax.block_until_ready(x) if isinstance(x.get("image"), jax.Array) else None
  return n * batch / (time.perf_counter() - start)


def bench_source(name: str, source, batch: int, seconds: float) -> None:
  topo = dict(
      process_index=0,
      process_count=1,
      local_device_count=jax.local_device_count(),
  )
  record(
      "host batches (train_batches, 1 thread consumer)",
      name,
      rate_of(ip.train_batches(source, batch, seed=0, **topo), batch, seconds),
  )
  with ip.prefetch_to_device(ip.train_batches(source, batch, seed=0), 4) as it:
    record(
        "prefetch_to_device (thread + device_put)",
        name,
        rate_of(it, batch, seconds),
    )


def bench_mnist(args) -> None:
  mnist_dir = os.path.join(args.shared, "mnist")
  if not os.path.isdir(mnist_dir):
    print(f"skip MNIST: {mnist_dir} not found")
    return
  start = time.perf_counter()
  ip.prepare_dataset("mnist", data_dir=args.data_dir, manual_dir=mnist_dir)
  record(
      "prepare once (TFDS array_record, needs TF)",
      "MNIST real",
      f"{time.perf_counter() - start:.1f} s",
      "no-op when already prepared",
  )
  streaming = ip.load_dataset("mnist", data_dir=args.data_dir, in_memory=False)
  topo = dict(
      process_index=0,
      process_count=1,
      local_device_count=jax.local_device_count(),
  )
  record(
      "streaming decode (data_source + Pillow, pool)",
      "MNIST real",
      rate_of(
          ip.train_batches(streaming.train, args.batch, seed=0, **topo),
          args.batch,
          args.seconds,
      ),
      f"{streaming.train.num_workers} threads",
  )
  start = time.perf_counter()
  ds = ip.load_dataset(
      "mnist", data_dir=args.data_dir
  )  # in memory (default for MNIST)
  seconds = time.perf_counter() - start
  record(
      "load + decode all once into RAM",
      "MNIST real",
      f"{(ds.info.num_train + ds.info.num_eval) / seconds:,.0f}",
      f"{seconds:.1f} s for 70k images",
  )
  bench_source("MNIST real (in RAM)", ds.train, args.batch, args.seconds)


def bench_cifar_jpg(args) -> None:
  archive = os.path.join(args.shared, "cifar10-jpg.tar.gz")
  if not os.path.exists(archive):
    print(f"skip CIFAR-10 JPEG: {archive} not found")
    return
  cache = os.path.join(args.data_dir, "cifar10_jpg_cache")
  start = time.perf_counter()
  fresh = not os.path.exists(os.path.join(cache, "meta.json"))
  ds = ip.load_dataset("cifar10_jpg", manual_dir=args.shared, cache_dir=cache)
  seconds = time.perf_counter() - start
  if fresh:
    record(
        "build .npy cache once (tar.gz -> Pillow)",
        "CIFAR-10 JPEG",
        60_000 / seconds,
        f"{seconds:.1f} s for 60k images",
    )
  bench_source("CIFAR-10 JPEG (.npy mmap)", ds.train, args.batch, args.seconds)


def bench_imagenet_decode(args) -> None:
  from PIL import Image

  rng = np.random.default_rng(0)
  blobs = []
  for _ in range(32):
    smooth = rng.integers(0, 256, (47, 63, 3), dtype=np.uint8)
    image = Image.fromarray(smooth).resize((500, 375), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    blobs.append(buffer.getvalue())
  for mode, box in (("random-resized crop", None), ("centre crop", "center")):
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
      data = blobs[n % len(blobs)]
      if box is None:
        r = np.random.default_rng(n)
        decode.decode_crop_resize(
            data, 224, lambda w, h: decode.random_resized_crop_box(r, w, h)
        )
      else:
        decode.decode_crop_resize(
            data, 224, lambda w, h: decode.center_crop_box(w, h, 224)
        )
      n += 1
    record(
        f"ImageNet host decode, {mode} -> 224",
        "synthetic 500x375 JPEG",
        n / (time.perf_counter() - start),
        "per decoding thread",
    )

  class Fake:  # a TFDS-like source of encoded images, to time the thread pool

    def __len__(self):
      return 10_000

    def __getitems__(self, keys):
      return [{"image": blobs[k % len(blobs)], "label": k % 1000} for k in keys]

  source = decode.TFDSImageSource(Fake(), (224, 224, 3), crop="random_resized")
  topo = dict(
      process_index=0,
      process_count=1,
      local_device_count=jax.local_device_count(),
  )
  record(
      "ImageNet host decode, random-resized crop, pool",
      "synthetic 500x375 JPEG",
      rate_of(
          ip.train_batches(source, 128, seed=0, **topo),
          128,
          args.seconds,
          warmup=1,
      ),
      f"{source.num_workers} threads",
  )


def bench_augment(args) -> None:
  devices = jax.local_device_count()
  cases = [
      ("mnist", (28, 28, 1), 1024),
      ("cifar10", (32, 32, 3), 1024),
      ("imagenet2012", (224, 224, 3), 128),
  ]
  for name, shape, batch in cases:
    images = jax.device_put(
        np.random.default_rng(0).integers(
            0, 256, (batch, *shape), dtype=np.uint8
        )
    )
    batchwise = jax.jit(lambda x, k, n=name: augment.preprocess(x, k, n, True))
    per_example = jax.jit(
        lambda x, k, n=name: jax.vmap(
            lambda xi, ki: augment.preprocess(xi[None], ki, n, True)[0]
        )(x, jax.random.split(k, x.shape[0]))
    )
    for label, fn in (
        ("batch-wise", batchwise),
        ("per-example keys (vmap)", per_example),
    ):
      key = jax.random.key(0)
      jax.block_until_ready(fn(images, key))
      n, start = 0, time.perf_counter()
      while time.perf_counter() - start < args.seconds:
        out = fn(images, jax.random.fold_in(key, n))
        n += 1
      jax.block_until_ready(out)
      rate = n * batch / (time.perf_counter() - start)
      record(
          f"device augment+normalise, {label}",
          f"{name} {shape[0]}x{shape[1]}",
          rate,
          f"jit on {jax.devices()[0].platform}, batch {batch}, 1 of {devices} device(s)",
      )


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      "--shared",
      default=os.environ.get(
          "RDA_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")
      ),
  )
  parser.add_argument(
      "--data_dir",
      default=None,
      help="TFDS data dir / cache (default: a temp dir)",
  )
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument(
      "--seconds", type=float, default=2.0, help="time per measurement"
  )
  parser.add_argument("--only", default="mnist,cifar,imagenet,augment")
  args = parser.parse_args(argv)
  tmp = None
  if args.data_dir is None:
    tmp = tempfile.TemporaryDirectory(prefix="rda_bench_")
    args.data_dir = tmp.name
  print(f"Machine: {machine()}\n")
  only = set(args.only.split(","))
  if "mnist" in only:
    bench_mnist(args)
  if "cifar" in only:
    bench_cifar_jpg(args)
  if "imagenet" in only:
    bench_imagenet_decode(args)
  if "augment" in only:
    bench_augment(args)
  print(f"\nMachine: {machine()}\n")
  print(
      f"Global batch {args.batch} for host batches; about {args.seconds:g} s per measurement.\n"
  )
  print("| stage | data | images/s | note |")
  print("|---|---|---:|---|")
  for stage, data, value, note in ROWS:
    print(f"| {stage} | {data} | {value} | {note} |")
  if tmp is not None:
    tmp.cleanup()


if __name__ == "__main__":
  main()

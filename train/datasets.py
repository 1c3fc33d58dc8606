"""Datasets for the training job: metadata, TFDS preparation and TF-free reading, image folders.

Two kinds of dataset are supported, both exposed as random-access *sources*
(``len(source)`` and ``source.get_batch(indices, seeds) -> {"image": uint8 NHWC, "label": int32}``):

* **TFDS datasets** (``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, ``imagenet2012``).
  They are prepared ONCE with ``file_format="array_record"`` (this needs TensorFlow, CPU build:
  ``pip install 'rda-optax[prepare]'``) and then read with ``tfds.data_source`` (random access,
  images decoded on the host with Pillow). Reading never imports TensorFlow, so a prepared
  ``data_dir`` can be copied to a GPU machine that has JAX but no TensorFlow.
  Preparation downloads with TFDS when the machine has internet, or reads the original archives
  from a *manual folder* (``manual_dir=`` / ``--manual_dir`` / env ``RDA_MANUAL_DIR``). Offline
  without a manual folder, loading fails at once (network probe of a few seconds at most, not
  TFDS's minutes of download retries) with a message that says how to supply the data.

* **Image folders** (``cifar10_jpg`` or ``imagefolder:<path>``): ``root/<split>/<class>/<file>``
  (``.jpg``/``.png``/...), as a directory or inside a ``.tar``/``.tar.gz``. Decoded once with
  Pillow into a uint8 ``.npy`` cache (memory-mapped when read); class index = position in the
  sorted list of class folder names.

Small datasets (MNIST, CIFAR) are decoded once into memory when loaded (a few seconds), so that
batches are plain numpy indexing. ImageNet is decoded per batch in a thread pool, with the
train-time random-resized crop / eval-time centre crop done on the host at decode time (images
vary in size); the flip and the normalisation run on the device (see ``train.augment``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import tarfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, Sequence

import numpy as np

from train import console

log = logging.getLogger(__name__)

MANUAL_DIR_ENV = "RDA_MANUAL_DIR"
# A folder of offline copies (``<dir>/mnist/`` = the four MNIST archives, ``<dir>/cifar10-jpg.tar.gz``),
# used when no manual folder is given; default: ``../shared/data`` beside the repository.
SHARED_DATA_ENV = "RDA_SHARED_DATA"
PREPARE_HINT = "pip install 'rda-optax[prepare]'"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
_CACHE_FORMAT_VERSION = 1

# Augmentation kinds (applied on the device by train.augment.preprocess).
AUG_NONE = "none"            # normalisation only (MNIST-like)
AUG_CROP_FLIP = "crop_flip"  # 4-pixel-padded random crop + horizontal flip (CIFAR)
AUG_FLIP = "flip"            # horizontal flip only (ImageNet: the resized crop is done on the host)

# Per-channel statistics of [0, 1]-scaled pixels.
MEAN_STD = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is neither prepared nor obtainable (offline / missing manual files)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset, as delivered by this pipeline.

    ``image_shape`` is the (H, W, C) of the uint8 images in the batches (for ImageNet the host-side
    crop size, 224 by default). ``mean``/``std`` are per-channel statistics of [0, 1] pixels.
    """

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    train_split: str
    eval_split: str
    num_train: int
    num_eval: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: str  # AUG_NONE | AUG_CROP_FLIP | AUG_FLIP
    class_names: tuple[str, ...] | None = None

    @property
    def split_sizes(self) -> dict[str, int]:
        return {self.train_split: self.num_train, self.eval_split: self.num_eval}


@dataclasses.dataclass(frozen=True)
class _TfdsSpec:
    tfds_name: str
    manual_files: tuple[str, ...]  # file names TFDS looks for in a manual folder
    probe_url: str | None  # a URL TFDS downloads from, probed to detect offline-ness
    host_crop: bool = False  # variable-size images: crop/resize on the host (ImageNet)


_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

_TFDS_SPECS = {
    "mnist": _TfdsSpec("mnist", _MNIST_FILES,
                       "https://storage.googleapis.com/cvdf-datasets/mnist/train-labels-idx1-ubyte.gz"),
    "fashion_mnist": _TfdsSpec(
        "fashion_mnist", _MNIST_FILES,
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz"),
    "cifar10": _TfdsSpec("cifar10", ("cifar-10-binary.tar.gz",),
                         "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"),
    "cifar100": _TfdsSpec("cifar100", ("cifar-100-binary.tar.gz",),
                          "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"),
    # ImageNet is never downloaded by TFDS: the archives must be in the manual folder.
    "imagenet2012": _TfdsSpec("imagenet2012", ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
                              None, host_crop=True),
}

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", 10, (28, 28, 1), "train", "test", 60_000, 10_000,
                         *MEAN_STD["mnist"], AUG_NONE),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, (28, 28, 1), "train", "test", 60_000, 10_000,
                                 *MEAN_STD["fashion_mnist"], AUG_NONE),
    "cifar10": DatasetInfo("cifar10", 10, (32, 32, 3), "train", "test", 50_000, 10_000,
                           *MEAN_STD["cifar10"], AUG_CROP_FLIP),
    "cifar100": DatasetInfo("cifar100", 100, (32, 32, 3), "train", "test", 50_000, 10_000,
                            *MEAN_STD["cifar100"], AUG_CROP_FLIP),
    "imagenet2012": DatasetInfo("imagenet2012", 1000, (224, 224, 3), "train", "validation",
                                1_281_167, 50_000, *MEAN_STD["imagenet"], AUG_FLIP),
    # Lossy JPEG copy of CIFAR-10 (image folder); CIFAR-10 statistics, see load_dataset.
    "cifar10_jpg": DatasetInfo("cifar10_jpg", 10, (32, 32, 3), "train", "test", 50_000, 10_000,
                               *MEAN_STD["cifar10"], AUG_CROP_FLIP),
}
TFDS_DATASETS = tuple(_TFDS_SPECS)
IMAGEFOLDER_PREFIX = "imagefolder:"


def get_info(name: str) -> DatasetInfo:
    """Static metadata of a named dataset (no I/O). ``imagefolder:`` datasets need ``load_dataset``."""
    if name in DATASETS:
        return DATASETS[name]
    if name.startswith(IMAGEFOLDER_PREFIX):
        raise ValueError(f"{name!r}: metadata of an image folder is known only after loading it "
                         "(use load_dataset(name).info)")
    raise ValueError(f"Unknown dataset {name!r}; known: {sorted(DATASETS)} or 'imagefolder:<path>'")


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


class Source(Protocol):
    """Random-access split: ``get_batch`` returns uint8 images (n, H, W, C) and int32 labels (n,)."""

    image_shape: tuple[int, int, int]

    def __len__(self) -> int: ...

    def get_batch(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> dict[str, np.ndarray]: ...


class ArraySource:
    """A split held in (possibly memory-mapped) numpy arrays."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 NHWC, got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, np.int32)
        self.image_shape = tuple(int(d) for d in images.shape[1:])

    def __len__(self) -> int:
        return len(self.labels)

    def get_batch(self, indices, seeds=None):
        del seeds  # deterministic decoding; augmentation happens on the device
        indices = np.asarray(indices, np.int64)
        return {"image": np.asarray(self.images[indices]), "label": self.labels[indices]}


def _default_workers() -> int:
    """Decoding threads: the usable CPUs, at most 32 (Pillow releases the GIL while decoding)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(32, cpus))


def _to_hwc(array: np.ndarray) -> np.ndarray:
    return array[:, :, None] if array.ndim == 2 else array


def _open_image(data: bytes):
    from PIL import Image  # Pillow is the only decoder needed (no TensorFlow)

    return Image.open(io.BytesIO(data))


def decode_fixed(data: bytes, channels: int) -> np.ndarray:
    """Decodes an encoded image to uint8 HWC with the given channel count."""
    image = _open_image(data)
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    return _to_hwc(np.asarray(image))


def random_resized_crop_box(rng: np.random.Generator, width: int, height: int,
                            scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), attempts: int = 10):
    """Inception-style crop box (x, y, w, h): area fraction in ``scale``, aspect in ``ratio``.

    After ``attempts`` failures falls back to the central crop with the aspect clipped to
    ``ratio`` (as torchvision's RandomResizedCrop).
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            x = int(rng.integers(0, width - w + 1))
            y = int(rng.integers(0, height - h + 1))
            return x, y, w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def center_crop_box(width: int, height: int, image_size: int, crop_padding: int = 32):
    """Central square of side ``image_size / (image_size + crop_padding) * min(H, W)``.

    Same as the Flax ImageNet example (224 out of a 256 short side).
    """
    side = int(round(image_size / (image_size + crop_padding) * min(width, height)))
    side = max(1, side)
    return (width - side) // 2, (height - side) // 2, side, side


def decode_crop_resize(data: bytes, image_size: int, box_fn) -> np.ndarray:
    """Decodes a JPEG/PNG, crops ``box_fn(width, height)`` and resizes it to image_size² RGB.

    Uses Pillow's JPEG draft mode (DCT-domain downscaling) when the crop is much larger than
    the output, which makes ImageNet decoding several times cheaper.
    """
    from PIL import Image

    image = _open_image(data)
    width, height = image.size
    x, y, w, h = box_fn(width, height)
    # Largest power-of-two reduction that keeps the crop at least image_size pixels wide/high.
    scale = min(w, h) / image_size
    if image.format == "JPEG" and scale >= 2:
        image.draft("RGB", (max(1, math.ceil(width / scale)), max(1, math.ceil(height / scale))))
    sx, sy = image.size[0] / width, image.size[1] / height
    if image.mode != "RGB":
        image = image.convert("RGB")
    box = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
    image = image.resize((image_size, image_size), Image.BICUBIC, box=box)
    return np.asarray(image)


class TFDSImageSource:
    """A prepared TFDS split read with ``tfds.data_source`` (array_record); no TensorFlow.

    Images are fetched undecoded and decoded with Pillow in a thread pool (``num_workers``).
    ``crop``: ``None`` = keep the stored (fixed) image size; ``"random_resized"`` = train-time
    Inception crop resized to ``image_size`` (per-example seeds make it deterministic);
    ``"center"`` = eval-time centre crop resized to ``image_size``.
    """

    def __init__(self, data_source: Sequence[Any], image_shape: tuple[int, int, int], *,
                 crop: str | None = None, num_workers: int | None = None):
        if crop not in (None, "random_resized", "center"):
            raise ValueError(f"crop={crop!r}")
        self.data_source = data_source
        self.image_shape = tuple(image_shape)
        self.crop = crop
        self.num_workers = num_workers or _default_workers()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.data_source)

    def _decode(self, data, seed) -> np.ndarray:
        if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim >= 2:
            image = _to_hwc(data)  # already decoded (e.g. tfds.testing.mock_data without TF)
            if self.crop is None:
                return image
            from PIL import Image

            data = _png_bytes(Image.fromarray(image if image.shape[-1] == 3 else image[..., 0]))
        elif isinstance(data, np.ndarray):  # scalar bytes object array
            data = data.item()
        size = self.image_shape[0]
        if self.crop is None:
            return decode_fixed(data, self.image_shape[-1])
        if self.crop == "center":
            return decode_crop_resize(data, size, lambda w, h: center_crop_box(w, h, size))
        rng = np.random.default_rng(int(seed))
        return decode_crop_resize(data, size, lambda w, h: random_resized_crop_box(rng, w, h))

    def _read(self, indices: np.ndarray, seeds: np.ndarray):
        keys = [int(i) for i in indices]
        try:
            items = self.data_source.__getitems__(keys)
        except TypeError:  # tfds.testing.mock_data's __getitems__ is unbound; same result
            items = [self.data_source[k] for k in keys]
        images = np.empty((len(indices), *self.image_shape), np.uint8)
        labels = np.empty((len(indices),), np.int32)
        for k, (item, seed) in enumerate(zip(items, seeds)):
            image = self._decode(item["image"], seed)
            if image.shape != self.image_shape:
                raise ValueError(f"decoded image of shape {image.shape}, expected {self.image_shape}"
                                 " (variable-size images need a crop mode)")
            images[k] = image
            labels[k] = item["label"]
        return images, labels

    def get_batch(self, indices, seeds=None):
        indices = np.asarray(indices, np.int64)
        seeds = indices if seeds is None else np.asarray(seeds)
        n = len(indices)
        chunks = max(1, min(self.num_workers, n // 8))
        if chunks == 1:
            images, labels = self._read(indices, seeds)
        else:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="rda-decode")
            bounds = np.linspace(0, n, chunks + 1).astype(int)
            parts = list(self._pool.map(lambda ab: self._read(indices[ab[0]:ab[1]], seeds[ab[0]:ab[1]]),
                                        zip(bounds[:-1], bounds[1:])))
            images = np.concatenate([p[0] for p in parts])
            labels = np.concatenate([p[1] for p in parts])
        return {"image": images, "label": labels}

    def to_memory(self, chunk: int = 2048) -> ArraySource:
        """Decodes the whole split once into an in-memory ArraySource."""
        n = len(self)
        images = np.empty((n, *self.image_shape), np.uint8)
        labels = np.empty((n,), np.int32)
        for start in range(0, n, chunk):
            batch = self.get_batch(np.arange(start, min(n, start + chunk)))
            images[start:start + chunk] = batch["image"]
            labels[start:start + chunk] = batch["label"]
        return ArraySource(images, labels)


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclasses.dataclass
class Dataset:
    """A loaded dataset: metadata plus the train and eval sources."""

    info: DatasetInfo
    train: Source
    eval: Source


# --------------------------------------------------------------------------------------------
# TFDS: prepare (needs TensorFlow) and open (does not)
# --------------------------------------------------------------------------------------------


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - train extra missing
        raise ImportError("TFDS datasets need tensorflow-datasets: pip install 'rda-optax[train]'") from e
    console.drop_absl_warnings("has no dataset_info.json")
    return tfds


def shared_data_dir() -> str | None:
    """The folder of offline dataset copies: ``$RDA_SHARED_DATA`` or ``../shared/data`` beside the repo."""
    path = os.environ.get(SHARED_DATA_ENV) or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared", "data")
    path = os.path.normpath(os.path.expanduser(path))
    return path if os.path.isdir(path) else None


def resolve_manual_dir(manual_dir, name: str | None = None) -> str | None:
    """``manual_dir``, else ``$RDA_MANUAL_DIR``, else a complete offline copy in ``shared_data_dir()``."""
    manual_dir = manual_dir or os.environ.get(MANUAL_DIR_ENV) or None
    if manual_dir is None and name in _TFDS_SPECS and shared_data_dir():
        candidate = os.path.join(shared_data_dir(), name)
        files = _TFDS_SPECS[name].manual_files
        if files and all(os.path.exists(os.path.join(candidate, f)) for f in files):
            log.info("Using the offline copy of %s in %s", name, candidate)
            manual_dir = candidate
    return os.path.expanduser(os.fspath(manual_dir)) if manual_dir else None


def _require_tensorflow(name: str) -> None:
    """Preparing imports TensorFlow; fail with an actionable message when it is missing."""
    missing = []
    for module in ("tensorflow", "importlib_resources"):
        try:
            with console.filtered_stderr_fd():
                __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(
            f"Preparing the TFDS dataset {name!r} needs {' and '.join(missing)} "
            f"(TensorFlow's CPU build is enough): {PREPARE_HINT}. Reading a prepared dataset does "
            f"not need TensorFlow: you can also prepare it on another machine "
            f"(python -m train.input_pipeline prepare {name} --data_dir DIR) and copy DIR here "
            "(then pass --data_dir DIR).")


def probe_url(url: str, timeout: float = 4.0) -> str | None:
    """Returns None if ``url`` answers within ``timeout`` seconds, else the reason it does not.

    Runs in a daemon thread so that a hanging DNS lookup cannot block longer than ``timeout``.
    Honours HTTP(S)_PROXY like TFDS's own downloads (it uses ``requests`` as well).
    """
    result: list[str | None] = []

    def probe():
        try:
            import requests

            response = requests.head(url, timeout=timeout, allow_redirects=True)
            ok = response.status_code < 400 or response.status_code == 405
            result.append(None if ok else f"HTTP {response.status_code} from {url}")
        except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
            result.append(f"{type(e).__name__}: {e}")

    thread = threading.Thread(target=probe, daemon=True, name="rda-probe")
    thread.start()
    thread.join(timeout + 1.0)
    if not result:
        return f"no answer from {url} within {timeout:.0f} s"
    return result[0]


def _missing_files_text(name: str) -> str:
    spec = _TFDS_SPECS.get(name)
    if spec is None or not spec.manual_files:
        return "the dataset's original archive files"
    return ", ".join(spec.manual_files)


def _missing_message(name: str, data_dir: str | None, reason: str) -> str:
    where = data_dir or "the default TFDS data_dir (TFDS_DATA_DIR or ~/tensorflow_datasets)"
    return (
        f"Dataset {name!r} is not prepared in {where}, and {reason}.\n"
        "Supply it in one of two ways:\n"
        f"  1. a manual download folder: --manual_dir DIR (or manual_dir=DIR, or the environment "
        f"variable {MANUAL_DIR_ENV}=DIR), where DIR holds {_missing_files_text(name)}; it is "
        f"prepared once into the data_dir (this needs TensorFlow, CPU build: {PREPARE_HINT});\n"
        f"  2. --data_dir DIR pointing at a folder where {name!r} is already prepared with "
        f"file_format='array_record' (e.g. made on a machine with internet with "
        f"`python -m train.input_pipeline prepare {name} --data_dir DIR`, then copied).")


def _tfds_builder(name: str, data_dir):
    tfds = _tfds()
    return tfds.builder(_TFDS_SPECS[name].tfds_name, data_dir=data_dir, file_format="array_record")


def prepare_tfds(name: str, *, data_dir=None, manual_dir=None, download: bool = True,
                 probe_timeout: float = 4.0) -> str:
    """Prepares a TFDS dataset as array_record in ``data_dir`` (no-op if already prepared).

    Returns the prepared dataset's folder. Raises ``DatasetNotFoundError`` at once when the data
    cannot be obtained (offline without manual folder, manual folder lacking files, ImageNet
    without manual folder, ``download=False``), and ``ImportError`` when TensorFlow is missing.
    """
    if name not in _TFDS_SPECS:
        raise ValueError(f"{name!r} is not a TFDS dataset known here: {sorted(_TFDS_SPECS)}")
    spec = _TFDS_SPECS[name]
    data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir else None
    builder = _tfds_builder(name, data_dir)
    if builder.is_prepared():
        return os.fspath(builder.data_dir)
    manual_dir = resolve_manual_dir(manual_dir, name)
    if manual_dir is not None:
        missing = [f for f in spec.manual_files if not os.path.exists(os.path.join(manual_dir, f))]
        if missing:
            raise DatasetNotFoundError(_missing_message(
                name, data_dir, f"the manual folder {manual_dir} lacks {', '.join(missing)}"))
    elif spec.probe_url is None:
        instructions = " ".join((builder.MANUAL_DOWNLOAD_INSTRUCTIONS or "").split())
        raise DatasetNotFoundError(_missing_message(
            name, data_dir, "it cannot be downloaded automatically (TFDS: " + instructions + ")"))
    elif not download:
        raise DatasetNotFoundError(_missing_message(name, data_dir, "download=False"))
    else:
        reason = probe_url(spec.probe_url, probe_timeout)
        if reason is not None:
            raise DatasetNotFoundError(_missing_message(
                name, data_dir, f"it cannot be downloaded: this machine seems offline ({reason})"))
    _require_tensorflow(name)
    tfds = _tfds()
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    source = f"the manual folder {manual_dir}" if manual_dir else "the internet"
    print(f"Preparing {name} once, from {source}, into {builder.data_dir} ...",
          file=sys.stderr, flush=True)
    if manual_dir or not console.is_terminal():
        # Local files take seconds; in a log file the bars are only noise.
        tfds.disable_progress_bar()
    start = time.perf_counter()
    try:
        # TFDS prints "Downloading and preparing dataset Unknown size ..." and
        # a closing line to stdout: the lines above and below say it plainly.
        with contextlib.redirect_stdout(io.StringIO()):
            builder.download_and_prepare(download_config=config, file_format="array_record")
    except OSError as e:  # requests.ConnectionError is an OSError
        raise DatasetNotFoundError(_missing_message(name, data_dir, f"downloading failed ({e})")) from e
    print(f"Prepared {name} in {time.perf_counter() - start:.0f} s.", file=sys.stderr, flush=True)
    return os.fspath(builder.data_dir)


def open_tfds_split(name: str, split: str, *, data_dir=None, image_size: int | None = None,
                    train: bool = False, num_workers: int | None = None) -> TFDSImageSource:
    """Opens a prepared TFDS split for random access, without TensorFlow.

    ``image_size`` (default 224) and ``train`` matter only for ImageNet (host-side crops).
    """
    tfds = _tfds()
    spec = _TFDS_SPECS[name]
    info = DATASETS[name]
    kwargs = {}
    crop = None
    shape = info.image_shape
    if spec.host_crop:
        size = image_size or info.image_shape[0]
        shape = (size, size, info.image_shape[-1])
        crop = "random_resized" if train else "center"
    kwargs["decoders"] = {"image": tfds.decode.SkipDecoding()}
    try:
        data_source = tfds.data_source(spec.tfds_name, split=split, data_dir=data_dir,
                                       download=False, **kwargs)
    except (NotImplementedError, AssertionError, FileNotFoundError, ValueError) as e:
        builder = _tfds_builder(name, data_dir)
        if builder.is_prepared():
            raise DatasetNotFoundError(
                f"{name!r} is prepared in {builder.data_dir} but cannot be read with "
                f"tfds.data_source ({e}). It must be prepared with file_format='array_record': "
                "use another --data_dir (or delete that folder) and prepare again.") from e
        raise DatasetNotFoundError(_missing_message(name, data_dir, "it was not prepared")) from e
    return TFDSImageSource(data_source, shape, crop=crop, num_workers=num_workers)


def _is_small(info: DatasetInfo, limit_bytes: float = 4 * 2**30) -> bool:
    return (info.num_train + info.num_eval) * math.prod(info.image_shape) <= limit_bytes


def load_tfds(name: str, *, data_dir=None, manual_dir=None, download: bool = True,
              image_size: int | None = None, in_memory: bool | None = None,
              num_workers: int | None = None, train_split: str | None = None,
              eval_split: str | None = None) -> Dataset:
    """Prepares (if needed) and opens a TFDS dataset; see ``load_dataset``."""
    info = DATASETS[name]
    train_split = train_split or info.train_split
    eval_split = eval_split or info.eval_split
    try:  # Fast path: already prepared (also what tfds.testing.mock_data provides).
        train = open_tfds_split(name, train_split, data_dir=data_dir, image_size=image_size,
                                train=True, num_workers=num_workers)
    except (DatasetNotFoundError, KeyError):  # TFDS 4.9.10: KeyError "splits is empty"
        if _tfds_builder(name, data_dir).is_prepared():
            raise  # prepared in the wrong format: the message says what to do
        prepare_tfds(name, data_dir=data_dir, manual_dir=manual_dir, download=download)
        train = open_tfds_split(name, train_split, data_dir=data_dir, image_size=image_size,
                                train=True, num_workers=num_workers)
    evaluation = open_tfds_split(name, eval_split, data_dir=data_dir, image_size=image_size,
                                 train=False, num_workers=num_workers)
    info = dataclasses.replace(info, image_shape=train.image_shape, num_train=len(train),
                               num_eval=len(evaluation), train_split=train_split,
                               eval_split=eval_split)
    if in_memory is None:
        in_memory = not _TFDS_SPECS[name].host_crop and _is_small(info)
    if in_memory:
        if _TFDS_SPECS[name].host_crop:
            raise ValueError("in_memory=True is not supported for datasets with host-side crops")
        train, evaluation = train.to_memory(), evaluation.to_memory()
    return Dataset(info, train, evaluation)


# --------------------------------------------------------------------------------------------
# Image folders (root/<split>/<class>/<image>), as a directory or a tar archive
# --------------------------------------------------------------------------------------------

_EVAL_SPLIT_NAMES = ("test", "val", "validation")


def default_data_dir(data_dir) -> str:
    if data_dir:
        return os.path.expanduser(os.fspath(data_dir))
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def _is_archive(path: str) -> bool:
    return bool(re.search(r"\.(tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$", path))


def _folder_key(path: str, image_size, max_per_class) -> str:
    stat = os.stat(path)
    parts = [os.path.abspath(path), str(stat.st_size), str(int(stat.st_mtime)), str(image_size),
             str(max_per_class), str(_CACHE_FORMAT_VERSION)]
    if os.path.isdir(path):  # a copied/edited folder changes these
        for split in sorted(os.listdir(path)):
            split_path = os.path.join(path, split)
            if os.path.isdir(split_path):
                parts += [split, str(int(os.stat(split_path).st_mtime)), str(len(os.listdir(split_path)))]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def image_folder_cache_dir(path, data_dir=None, image_size=None, max_per_class=None) -> str:
    """Default cache folder of an image folder: ``<data_dir>/rda_imagefolder/<stem>-<hash>``."""
    path = os.path.expanduser(os.fspath(path))
    stem = re.sub(r"\.(tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$", "", os.path.basename(path.rstrip("/")))
    key = _folder_key(path, image_size, max_per_class)
    return os.path.join(default_data_dir(data_dir), "rda_imagefolder", f"{stem}-{key}")


def _split_class_file(relpath: str):
    parts = [p for p in relpath.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 3:
        return None
    split, cls, fname = parts[-3:]
    if fname.startswith(".") or not fname.lower().endswith(IMAGE_EXTENSIONS):
        return None
    return split, cls, fname


def _iter_image_files(path: str):
    """Yields (split, class, file_name, bytes) for every image under path (dir or archive)."""
    if os.path.isdir(path):
        for dirpath, _, files in os.walk(path):
            for fname in files:
                full = os.path.join(dirpath, fname)
                key = _split_class_file(os.path.relpath(full, path))
                if key is not None:
                    with open(full, "rb") as f:
                        yield (*key, f.read())
    elif _is_archive(path):
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                if member.isfile():
                    key = _split_class_file(member.name)
                    if key is not None:
                        yield (*key, archive.extractfile(member).read())
    else:
        raise ValueError(f"{path} is neither a folder nor a .tar/.tar.gz archive")


def _channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of [0, 1] pixels of a uint8 NHWC array (chunked, low memory)."""
    total = np.zeros(images.shape[-1])
    squares = np.zeros(images.shape[-1])
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].astype(np.float32) / 255.0
        total += part.sum(axis=(0, 1, 2), dtype=np.float64)
        squares += np.square(part).sum(axis=(0, 1, 2), dtype=np.float64)
    count = max(1, images.size // images.shape[-1])
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean.tolist(), std.tolist()


def build_image_folder_cache(path, cache_dir, *, image_size: int | None = None,
                             max_per_class: int | None = None, num_workers: int | None = None) -> str:
    """Decodes an image folder once into ``cache_dir`` (uint8 .npy per split + meta.json).

    The cache is written to a temporary folder and renamed, so concurrent processes never see a
    partial cache. ``max_per_class`` keeps the first files (sorted by name) of each class and split.
    ``image_size`` resizes every image to a square (needed when sizes differ).
    """
    from PIL import Image

    path = os.fspath(path)
    cache_dir = os.fspath(cache_dir)
    files: dict[str, dict[str, dict[str, bytes]]] = {}
    for split, cls, fname, data in _iter_image_files(path):
        files.setdefault(split, {}).setdefault(cls, {})[fname] = data
    if not files:
        raise DatasetNotFoundError(f"no images found as <split>/<class>/<image> under {path}")
    classes = sorted({c for split in files.values() for c in split})
    class_index = {c: i for i, c in enumerate(classes)}

    first = _open_image(next(iter(next(iter(next(iter(files.values())).values())).values())))
    mode = "L" if first.mode in ("1", "L", "I", "I;16", "F") else "RGB"

    def decode(data: bytes) -> np.ndarray:
        image = _open_image(data)
        if image.mode != mode:
            image = image.convert(mode)
        if image_size is not None and image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), Image.BILINEAR)
        return _to_hwc(np.asarray(image))

    tmp_dir = f"{cache_dir}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp_dir)
    meta: dict[str, Any] = {"source": os.path.abspath(path), "classes": classes, "splits": {},
                            "image_size": image_size, "max_per_class": max_per_class,
                            "version": _CACHE_FORMAT_VERSION}
    try:
        with ThreadPoolExecutor(num_workers or _default_workers()) as pool:
            for split in sorted(files):
                blobs, labels = [], []
                for cls in sorted(files[split]):
                    names = sorted(files[split][cls])[:max_per_class]
                    blobs += [files[split][cls][n] for n in names]
                    labels += [class_index[cls]] * len(names)
                chunks = [blobs[i:i + 1024] for i in range(0, len(blobs), 1024)]
                images = [im for part in pool.map(lambda c: [decode(b) for b in c], chunks)
                          for im in part]
                shapes = {im.shape for im in images}
                if len(shapes) != 1:
                    raise ValueError(f"{path}/{split}: images of different sizes {sorted(shapes)[:4]}...;"
                                     " pass image_size=N to resize them to N×N")
                array = np.stack(images)
                np.save(os.path.join(tmp_dir, f"{split}_images.npy"), array)
                np.save(os.path.join(tmp_dir, f"{split}_labels.npy"), np.asarray(labels, np.int32))
                mean, std = _channel_stats(array)
                meta["splits"][split] = {"num_examples": len(labels), "image_shape": list(array.shape[1:]),
                                         "mean": mean, "std": std}
                del images, array
        with open(os.path.join(tmp_dir, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        os.makedirs(os.path.dirname(os.path.abspath(cache_dir)), exist_ok=True)
        try:
            os.rename(tmp_dir, cache_dir)
        except OSError:  # another process finished first
            if not os.path.exists(os.path.join(cache_dir, "meta.json")):
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return cache_dir


def load_image_folder(path, *, name: str | None = None, cache_dir=None, data_dir=None,
                      image_size: int | None = None, max_per_class: int | None = None,
                      num_workers: int | None = None, mean_std=None,
                      augmentation: str | None = None) -> Dataset:
    """Loads ``root/<split>/<class>/<image>`` (folder or tar archive) via a uint8 .npy cache.

    Cache: ``cache_dir`` or ``<data_dir>/rda_imagefolder/<name>-<hash>`` (``data_dir`` defaults to
    TFDS's). Train split ``train``; eval split the first of ``test``, ``val``, ``validation``.
    ``mean_std`` defaults to the train split's statistics; ``augmentation`` to crop+flip for images
    up to 64 px and flip only above.
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise DatasetNotFoundError(f"image folder {path} does not exist")
    name = name or IMAGEFOLDER_PREFIX + path
    if cache_dir is None:
        cache_dir = image_folder_cache_dir(path, data_dir, image_size, max_per_class)
    cache_dir = os.fspath(cache_dir)
    if not os.path.exists(os.path.join(cache_dir, "meta.json")):
        log.info("Decoding image folder %s into %s (once)", path, cache_dir)
        build_image_folder_cache(path, cache_dir, image_size=image_size, max_per_class=max_per_class,
                                 num_workers=num_workers)
    with open(os.path.join(cache_dir, "meta.json")) as f:
        meta = json.load(f)
    splits = meta["splits"]
    if "train" not in splits:
        raise DatasetNotFoundError(f"{path}: no 'train' split (found {sorted(splits)})")
    eval_split = next((s for s in _EVAL_SPLIT_NAMES if s in splits), None)
    if eval_split is None:
        raise DatasetNotFoundError(f"{path}: no eval split {_EVAL_SPLIT_NAMES} (found {sorted(splits)})")

    def source(split):
        images = np.load(os.path.join(cache_dir, f"{split}_images.npy"), mmap_mode="r")
        labels = np.load(os.path.join(cache_dir, f"{split}_labels.npy"))
        return ArraySource(images, labels)

    train, evaluation = source("train"), source(eval_split)
    shape = tuple(splits["train"]["image_shape"])
    if mean_std is None:
        mean_std = (tuple(splits["train"]["mean"]), tuple(splits["train"]["std"]))
    if augmentation is None:
        augmentation = AUG_CROP_FLIP if max(shape[:2]) <= 64 else AUG_FLIP
    info = DatasetInfo(name=name, num_classes=len(meta["classes"]), image_shape=shape,
                       train_split="train", eval_split=eval_split, num_train=len(train),
                       num_eval=len(evaluation), mean=tuple(mean_std[0]), std=tuple(mean_std[1]),
                       augmentation=augmentation, class_names=tuple(meta["classes"]))
    return Dataset(info, train, evaluation)


_CIFAR10_JPG_NAMES = ("cifar10-jpg.tar.gz", "cifar10-jpg.tgz", "cifar10-jpg.tar", "cifar10-jpg",
                      "cifar10_jpg")


def find_cifar10_jpg(manual_dir=None, data_dir=None) -> str:
    """Locates the CIFAR-10 JPEG copy: a path itself, or one of its usual names inside a folder."""
    candidates = [c for c in (resolve_manual_dir(manual_dir), data_dir, shared_data_dir()) if c]
    for base in candidates:
        base = os.path.expanduser(os.fspath(base))
        if (_is_archive(base) and os.path.isfile(base)) or os.path.isdir(os.path.join(base, "train")):
            return base
        for fname in _CIFAR10_JPG_NAMES:
            if os.path.exists(os.path.join(base, fname)):
                return os.path.join(base, fname)
    raise DatasetNotFoundError(
        "Dataset 'cifar10_jpg' (CIFAR-10 as JPEG files, train/<class>/*.jpg and test/<class>/*.jpg) "
        f"was not found in {candidates or 'any folder'}: pass --manual_dir DIR (or manual_dir=DIR, "
        f"or {MANUAL_DIR_ENV}=DIR) where DIR is the folder or .tar.gz or contains one of "
        f"{', '.join(_CIFAR10_JPG_NAMES)}; or use 'imagefolder:<path>'.")


def load_dataset(name: str, *, data_dir=None, manual_dir=None, download: bool = True,
                 image_size: int | None = None, in_memory: bool | None = None,
                 num_workers: int | None = None, max_per_class: int | None = None,
                 cache_dir=None, train_split: str | None = None,
                 eval_split: str | None = None) -> Dataset:
    """Loads a dataset by name, preparing it first if needed. Returns ``Dataset(info, train, eval)``.

    Names: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, ``imagenet2012`` (TFDS,
    array_record, read without TensorFlow), ``cifar10_jpg`` (the JPEG copy of CIFAR-10, found in
    ``manual_dir``/``RDA_MANUAL_DIR``/``data_dir``; normalised with the CIFAR-10 statistics),
    ``imagefolder:<path>`` (any ``<split>/<class>/<image>`` folder or tar archive).

    ``manual_dir`` (or env ``RDA_MANUAL_DIR``): folder with the original archives, used to prepare
    offline. ``download``: allow TFDS downloads. ``image_size``: ImageNet crop size (default 224)
    or image-folder resize. ``in_memory``: decode TFDS splits into RAM once (default: True when
    both splits fit in 4 GiB, i.e. MNIST/CIFAR; never for ImageNet). ``num_workers``: decoding
    threads. ``max_per_class``/``cache_dir``: image folders only (subset; cache location).
    ``train_split``/``eval_split``: TFDS split names or slices (default: ``info``'s, i.e.
    ``train`` and ``test``, ``validation`` for ImageNet).
    """
    if name in _TFDS_SPECS:
        return load_tfds(name, data_dir=data_dir, manual_dir=manual_dir, download=download,
                         image_size=image_size, in_memory=in_memory, num_workers=num_workers,
                         train_split=train_split, eval_split=eval_split)
    if name == "cifar10_jpg":
        path = find_cifar10_jpg(manual_dir, data_dir)
        info = DATASETS["cifar10_jpg"]
        dataset = load_image_folder(path, name=name, cache_dir=cache_dir, data_dir=data_dir,
                                    image_size=image_size, max_per_class=max_per_class,
                                    num_workers=num_workers, mean_std=(info.mean, info.std),
                                    augmentation=info.augmentation)
        return dataset
    if name.startswith(IMAGEFOLDER_PREFIX):
        return load_image_folder(name[len(IMAGEFOLDER_PREFIX):], name=name, cache_dir=cache_dir,
                                 data_dir=data_dir, image_size=image_size,
                                 max_per_class=max_per_class, num_workers=num_workers)
    raise ValueError(f"Unknown dataset {name!r}; known: {sorted(DATASETS)} or 'imagefolder:<path>'")


def prepare_dataset(name: str, *, data_dir=None, manual_dir=None, download: bool = True,
                    image_size: int | None = None, max_per_class: int | None = None) -> str:
    """Prepares a dataset once (TFDS array_record, or the image-folder .npy cache); returns its folder."""
    if name in _TFDS_SPECS:
        return prepare_tfds(name, data_dir=data_dir, manual_dir=manual_dir, download=download)
    if name == "cifar10_jpg" or name.startswith(IMAGEFOLDER_PREFIX):
        path = (find_cifar10_jpg(manual_dir, data_dir) if name == "cifar10_jpg"
                else name[len(IMAGEFOLDER_PREFIX):])
        path = os.path.expanduser(path)
        cache_dir = image_folder_cache_dir(path, data_dir, image_size, max_per_class)
        if not os.path.exists(os.path.join(cache_dir, "meta.json")):
            build_image_folder_cache(path, cache_dir, image_size=image_size, max_per_class=max_per_class)
        return cache_dir
    raise ValueError(f"Unknown dataset {name!r}; known: {sorted(DATASETS)} or 'imagefolder:<path>'")

"""train/data/decode.py: host-side image decoding and crops (ImageNet)."""

from __future__ import annotations

import io

import numpy as np
import pytest

PIL_Image = pytest.importorskip("PIL.Image")

from train.data import decode  # noqa: E402


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

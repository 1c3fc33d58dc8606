"""train/data/data_dirs.py: where the datasets' files are looked for (the
manual folder in effect, the folder of offline copies)."""

from __future__ import annotations

import os

from train.data import datasets


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


def test_the_shared_data_folder_defaults_to_beside_the_checkout(monkeypatch):
  """Without $RDA_SHARED_DATA the offline copies are looked for in
  ../shared/data beside the checkout (the folder holding train/), not
  beside train/ (which train/data/ once was)."""
  monkeypatch.delenv(datasets.SHARED_DATA_ENV, raising=False)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  want = os.path.normpath(os.path.join(repo, os.pardir, "shared", "data"))
  assert datasets.shared_data_dir() == (want if os.path.isdir(want) else None)

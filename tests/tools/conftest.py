"""Fixtures of the tensorize tests: an allowed folder, a config reading from it, a photo-like JPEG and PNG."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from tensorize_support import _smooth_rgb

from tools.config import LabConfig


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    return d


@pytest.fixture
def cfg(tmp_path: Path, folder: Path) -> LabConfig:
    return LabConfig.create(tmp_path / "out", [folder])


@pytest.fixture
def jpeg(folder: Path) -> Path:
    path = folder / "photo.jpg"
    Image.fromarray(_smooth_rgb(64, 48)).save(path, quality=90)
    return path


@pytest.fixture
def png(folder: Path) -> Path:
    path = folder / "pixels.png"
    Image.fromarray(_smooth_rgb(40, 30, seed=1)).save(path)
    return path

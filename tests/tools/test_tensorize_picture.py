"""The tensorize picture (Pillow): the heatmaps show the tensor values through viridis, the axes carry round
ticks, and the whole picture fits the inline limits."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from tools.config import LabConfig
from tools.tensorize import TensorizeInput, run
from tools.tensorize.picture import nice_ticks, tick_label


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


def viridis(fraction: float) -> tuple[int, int, int]:
    from matplotlib import colormaps

    r, g, b, _ = colormaps["viridis"](fraction, bytes=True)
    return int(r), int(g), int(b)


def picture(cfg, tmp_path, a: np.ndarray, **kw) -> Image.Image:
    path = tmp_path / "in.png"
    Image.fromarray(a).save(path)
    out = run(TensorizeInput(image=str(path), **kw), cfg)
    im = Image.open(io.BytesIO(out.images[0].png))
    assert im.format == "PNG" and max(im.size) <= 1024 and len(out.images[0].png) < 600_000
    saved = Image.open(out.result.picture_path)
    assert saved.size == im.size  # the saved picture is the inline one, encoded once
    return im.convert("RGB")


def test_each_heatmap_shows_its_channel_through_viridis_from_its_min_to_its_max(cfg, tmp_path):
    a = np.zeros((40, 60, 3), np.uint8)
    a[:, 30:, 0] = 255  # R: left 0, right 255
    a[:, :, 1] = 100  # G: constant
    a[20:, :, 2] = 200  # B: top 0, bottom 200
    px = np.asarray(picture(cfg, tmp_path, a, normalize="imagenet")).reshape(-1, 3)
    colours = {tuple(int(v) for v in p) for p in px[::1]}
    assert viridis(0.0) in colours and viridis(1.0) in colours  # both ends of each two-level heatmap
    counts = {c: int((px == c).all(axis=1).sum()) for c in (viridis(0.0), viridis(1.0))}
    assert counts[viridis(0.0)] > 1000 and counts[viridis(1.0)] > 1000


def test_a_grayscale_and_an_rgba_image_get_one_heatmap_per_channel(cfg, tmp_path):
    g = picture(cfg, tmp_path, np.full((10, 12), 7, np.uint8), mode="L")
    rgba = picture(cfg, tmp_path, np.full((10, 12, 4), 9, np.uint8), mode="RGBA")
    assert rgba.width > g.width  # 4 channels + the image: more columns than 1 + 1


@pytest.mark.parametrize(
    ("lo", "hi"), [(-2.1, 2.64), (0, 1), (0, 255), (0, 153_000), (-1, 1), (0.001, 0.0013)]
)
def test_ticks_are_round_evenly_spaced_and_inside_the_range(lo, hi):
    ticks = nice_ticks(lo, hi, 6)
    assert 2 <= len(ticks) <= 6 and lo - 1e-12 <= ticks[0] and ticks[-1] <= hi + 1e-12
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5)) < 1e-6
    labels = [tick_label(t, ticks) for t in ticks]
    assert len(set(labels)) == len(labels)  # enough decimals to tell them apart


def test_tick_labels_are_short():
    assert [tick_label(t, [0, 50_000, 100_000]) for t in (0, 50_000, 100_000)] == ["0", "50k", "100k"]
    assert [tick_label(t, [-0.5, 0.0, 0.5]) for t in (-0.5, 0.0, 0.5)] == ["-0.5", "0", "0.5"]
    assert tick_label(2_500_000, [0, 2_500_000]) == "2.5M"

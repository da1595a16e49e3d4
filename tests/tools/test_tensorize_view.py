"""tensorize_image's view data: every sampled pixel's looked-up value is the saved tensor's value, exactly."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch
from PIL import Image

from tools.config import LabConfig
from tools.tensorize import TensorizeInput, run


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)).save(path)
    return path


def decode(view, channels: int) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.frombuffer(base64.b64decode(view.pixels_b64), np.uint8).reshape(
        view.height, view.width, channels
    )
    lut = np.frombuffer(base64.b64decode(view.lut_b64), "<f4").reshape(channels, 256)
    return pixels, lut


@pytest.mark.parametrize(
    ("kwargs", "channels"),
    [
        ({"normalize": "imagenet", "layout": "CHW"}, 3),
        ({"normalize": "minus_one_one", "layout": "HWC", "resize": 120, "center_crop": [64, 50]}, 3),
        ({"normalize": "none", "mode": "L", "dtype": "float16"}, 1),
    ],
)
def test_sampled_pixels_looked_up_equal_the_saved_tensor(photo, cfg, kwargs, channels):
    res = run(TensorizeInput(image=str(photo), save="pt", **kwargs), cfg).result
    x = torch.load(res.saved.path)
    x = x if res.layout == "CHW" else x.permute(2, 0, 1)  # (C, H, W)
    v = res.view
    pixels, lut = decode(v, channels)
    looked_up = np.stack([lut[c][pixels[..., c]] for c in range(channels)])  # (C, h', w')
    expected = x[:, :: v.stride, :: v.stride].float().numpy()
    assert looked_up.shape == expected.shape and np.array_equal(looked_up, expected)
    assert max(v.width, v.height) <= 48 and v.stride == -(-max(x.shape[1:]) // 48)

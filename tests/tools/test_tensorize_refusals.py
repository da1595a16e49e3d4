"""tensorize_image refuses what it cannot do, naming the argument: bad options, crops, caps, bombs, files outside
the allowed folders, files that are not images."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from tensorize_support import _smooth_rgb, core

from tools.common import InvalidArgument
from tools.config import LabConfig, Limits
from tools.tensorize import TensorizeInput, run

# -- refusals name the argument ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"dtype": "uint8"}, "dtype"),
        ({"save": "npy", "dtype": "bfloat16"}, "save"),
        ({"normalize": "custom", "std": [1, 1, 1]}, "mean"),
        ({"normalize": "custom", "mean": [0, 0, 0], "std": [1, 0, 1]}, "std"),
        ({"normalize": "custom", "mean": [0, 0], "std": [1, 1]}, "mean"),
        ({"normalize": "custom", "mean": [float("nan")] * 3, "std": [1, 1, 1]}, "mean"),
        ({"mean": [0, 0, 0]}, "mean"),
        ({"preview_size": 17}, "preview_size"),
        ({"resize": 0}, "resize"),
        ({"resize": [10, 10, 10]}, "resize"),
        ({"mode": "CMYK"}, "mode"),
    ],
)
def test_invalid_options_are_refused_naming_the_argument(png, kwargs, argument):
    with pytest.raises(ValidationError) as err:
        TensorizeInput(image=str(png), **kwargs)
    assert argument in str(err.value)


def test_crop_larger_than_the_image_is_refused(png, cfg):
    with pytest.raises(InvalidArgument, match="center_crop") as err:
        core(png, cfg, center_crop=64)
    assert "40x30" in str(err.value)


def test_resize_over_the_pixel_cap_is_refused(png, tmp_path, folder):
    small = LabConfig.create(tmp_path / "o2", [folder], limits=Limits(max_pixels=5000))
    with pytest.raises(InvalidArgument, match="resize"):
        core(png, small, resize=1000)


def test_tensorize_rejects_decompression_bomb_before_decoding(folder, tmp_path):
    # A PNG header that claims 9000 x 9000 with no pixel data: the cap must fire before any decode.
    path = folder / "bomb.png"
    big = Image.new("L", (9000, 9000))
    buf = io.BytesIO()
    big.save(buf, format="PNG", compress_level=1)
    path.write_bytes(buf.getvalue()[:200])
    small = LabConfig.create(tmp_path / "o3", [folder], limits=Limits(max_pixels=1_000_000))
    with pytest.raises(InvalidArgument, match="refused before decoding") as err:
        run(TensorizeInput(image=str(path)), small)
    assert err.value.argument == "image"


def test_base64_over_the_limit_is_refused(png, tmp_path, folder):
    small = LabConfig.create(tmp_path / "o4", [folder], limits=Limits(max_base64_bytes=300))
    b64 = base64.b64encode(png.read_bytes()).decode()
    with pytest.raises(InvalidArgument, match="limit is 300") as err:
        run(TensorizeInput(image=b64), small)
    assert err.value.argument == "image"


def test_tensorize_rejects_files_outside_allowed_folders_even_through_symlinks(cfg, folder, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    target = outside / "x.png"
    Image.new("RGB", (4, 4)).save(target)
    link = folder / "link.png"
    os.symlink(target, link)
    for value in (str(target), str(link), str(folder / ".." / "secret" / "x.png")):
        with pytest.raises(InvalidArgument, match="outside the allowed folders") as err:
            run(TensorizeInput(image=value), cfg)
        assert err.value.argument == "image"


def test_a_file_that_is_not_an_image_is_refused(folder, cfg):
    path = folder / "notes.png"
    path.write_text("hello, I am text")
    with pytest.raises(InvalidArgument, match="not an image"):
        run(TensorizeInput(image=str(path)), cfg)


def test_a_truncated_image_is_refused_clearly(folder, cfg):
    path = folder / "cut.jpg"
    buf = io.BytesIO()
    Image.fromarray(_smooth_rgb(200, 150)).save(buf, format="JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InvalidArgument, match="truncated") as err:
        run(TensorizeInput(image=str(path)), cfg)
    assert err.value.argument == "image"


def test_float_images_are_refused_not_guessed(folder, cfg):
    path = folder / "float.tif"
    Image.fromarray(np.ones((4, 4), np.float32)).save(path)
    with pytest.raises(InvalidArgument, match="float"):
        core(path, cfg)

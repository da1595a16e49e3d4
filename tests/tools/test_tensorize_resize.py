"""tensorize_image resizes like torchvision: shorter_side = Resize(int), and a note when a resize distorts.

torchvision is not a dependency: its Resize(int) rule is computed by hand here from its source
(`torchvision.transforms.functional._compute_resized_output_size`: the shorter side becomes `size`, the longer
int(size * long / short), truncated), then the pixels are checked against PIL's bilinear resize, which is what
torchvision's Resize does on a PIL image (antialiased).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tensorize_support import _smooth_rgb, by_hand, core

from tools.common import InvalidArgument
from tools.tensorize import TensorizeInput, run


def torchvision_resize_int(size: int, w: int, h: int) -> tuple[int, int]:
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


@pytest.fixture
def portrait(folder):
    path = folder / "portrait.png"
    Image.fromarray(_smooth_rgb(512, 600, seed=2)).save(path)  # 512 wide, 600 tall
    return path


def test_shorter_side_on_a_portrait_is_torchvision_resize_256(portrait, cfg):
    x, p = core(portrait, cfg, shorter_side=256)
    assert torchvision_resize_int(256, 512, 600) == (256, 300)
    assert x.shape == (3, 300, 256)
    assert torch.equal(x, by_hand(Image.open(portrait).resize((256, 300), Image.Resampling.BILINEAR)))
    assert p.aspect_change is None and p.notes == []


@pytest.mark.parametrize(("w", "h", "size"), [(640, 480, 256), (64, 48, 32), (48, 64, 32), (50, 50, 7)])
def test_shorter_side_truncates_the_longer_side_as_torchvision_does(folder, cfg, w, h, size):
    path = folder / f"{w}x{h}.png"
    Image.fromarray(_smooth_rgb(w, h)).save(path)
    x, _ = core(path, cfg, shorter_side=size)
    tw, th = torchvision_resize_int(size, w, h)
    assert x.shape == (3, th, tw)  # 64x48 -> 42x32 (int(42.67)), not 43x32


def test_pair_resize_that_distorts_a_portrait_says_so_structured_and_in_the_text(portrait, cfg):
    out = run(TensorizeInput(image=str(portrait), resize=[341, 256]), cfg)
    r = out.result
    assert r.aspect_change == pytest.approx((341 / 256) / (512 / 600), abs=1e-4)  # 1.5611
    (note,) = r.notes
    assert "stretched 1.56x horizontally" in note and "shorter_side=256 gives 256x300" in note
    assert out.summary.startswith("Note: The resize to 341x256 changes the aspect ratio")


def test_a_resize_within_one_percent_of_the_aspect_gets_no_note(folder, cfg):
    path = folder / "land.png"
    Image.fromarray(_smooth_rgb(640, 480)).save(path)
    r = run(TensorizeInput(image=str(path), resize=[341, 256]), cfg).result  # 0.1% off 4:3
    assert r.aspect_change is None and r.notes == []
    squeezed = run(TensorizeInput(image=str(path), resize=[256, 256]), cfg).result
    assert squeezed.aspect_change == pytest.approx(0.75) and "squeezed" in squeezed.notes[0]


def test_resize_and_shorter_side_together_are_refused(portrait, cfg):
    with pytest.raises(InvalidArgument, match="either resize or shorter_side"):
        core(portrait, cfg, resize=256, shorter_side=256)


def test_crop_error_after_a_longest_side_resize_points_to_shorter_side(folder, cfg):
    path = folder / "wide.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(path)
    with pytest.raises(InvalidArgument, match=r"giving 42x32\) pass shorter_side=32"):
        core(path, cfg, resize=32, center_crop=28)
    x, _ = core(path, cfg, shorter_side=32, center_crop=28)
    assert x.shape == (3, 28, 28)

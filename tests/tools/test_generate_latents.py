"""generate_image's show_latents and hires fix on a tiny random Stable Diffusion folder, checked against diffusers
called directly (same seed, same components) and by-hand torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import ValidationError
from test_generate import build_tiny_sd

from tools import generate
from tools.common import InvalidArgument
from tools.config import LabConfig, Limits
from tools.generate import latent_lessons, picture

STEPS, GUIDANCE, PROMPT = 4, 3.0, "a red circle"


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture
def cfg(tmp_path, tiny_sd):
    return LabConfig.create(tmp_path / "out", [tmp_path], [tiny_sd], Limits(max_steps=50, max_images=3))


def gen(cfg, **kw):
    args = dict(prompt=PROMPT, model="tiny-sd", steps=STEPS, guidance_scale=GUIDANCE, **kw)
    return generate.run(generate.GenerateInput(**args), cfg)


@pytest.fixture(scope="module")
def reference(tiny_sd):
    """diffusers itself: the pipeline loaded fresh, the first pass's latent (1, C, h, w) for our seed."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        tiny_sd, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    latent = pipe(
        PROMPT,
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).images
    return pipe, latent


def test_without_the_new_arguments_nothing_extra_is_returned(cfg):
    out = gen(cfg)
    assert out.result.latent is None and out.result.hires is None and len(out.images) == 1


def test_show_latents_gives_the_latent_shape_stats_and_one_heatmap_panel_per_channel(cfg, reference):
    pipe, ref = reference
    out = gen(cfg, show_latents=True)
    view = out.result.latent
    f = pipe.vae_scale_factor  # diffusers' own: 2 ** (VAE levels - 1)
    channels = pipe.unet.config.in_channels
    assert view.shape == [channels, 32 // f, 32 // f] == list(ref.shape[1:]) and view.downscale == f
    assert [c.mean for c in view.channels] == pytest.approx(ref[0].mean(dim=(1, 2)).tolist(), abs=1e-3)
    assert [c.max for c in view.channels] == pytest.approx(ref[0].amax(dim=(1, 2)).tolist(), abs=1e-3)
    assert view.colour_limit == pytest.approx(float(ref.abs().max()), abs=1e-3)
    # the picture: the image, then C panels; panel k's blocks are matplotlib's colour map of channel k
    im = np.asarray(Image.open(view.picture.path).convert("RGB"))
    side = picture.FRAME_MIN_SIDE  # 32 px frames enlarged x4 to 128
    assert im.shape[1] == (channels + 1) * side + channels * 2
    import matplotlib

    cmap = matplotlib.colormaps[picture.HEATMAP_COLOURS]
    cell = side // ref.shape[-1]
    for k in range(channels):
        x0 = (k + 1) * (side + 2)
        centres = im[cell // 2 : side : cell, x0 + cell // 2 : x0 + side : cell].astype(float)  # (h, w, 3)
        expected = cmap((ref[0, k].numpy() / view.colour_limit + 1) / 2)[..., :3] * 255
        assert np.abs(centres - expected).max() <= 2, k
    assert "4x8x8" in out.summary and len(out.images) == 2


def test_hires_scale_gives_an_image_of_the_scaled_size_and_a_side_by_side_strip(cfg):
    out = gen(cfg, hires_scale=2, hires_strength=0.5)
    r = out.result
    assert (r.width, r.height) == (64, 64) and Image.open(r.images[0].path).size == (64, 64)
    assert r.shapes.latent == [1, 4, 16, 16] and r.shapes.image == [1, 3, 64, 64]
    h = r.hires
    assert h.first_pass_latent == [1, 4, 8, 8] and h.upscaled_latent == [1, 4, 16, 16]
    assert h.steps_run == int(STEPS * 0.5) and (h.first_pass.width, h.plain_upscale.width) == (32, 64)
    assert h.strip.width == 3 * 128 + 2 * 2 and len(out.images) == 2
    assert np.abs(_pixels(r.images[0]) - _pixels(h.plain_upscale)).mean() > 1  # re-sampling changed it
    # 1.5 also fits the tiny model's 8 px grid: 48x48
    assert gen(cfg, hires_scale=1.5).result.images[0].width == 48


def test_hires_strength_0_is_the_plain_latent_upscale_decoded(cfg, reference):
    pipe, ref = reference
    r = gen(cfg, hires_scale=2, hires_strength=0).result
    up = F.interpolate(ref, scale_factor=2, mode="bilinear", align_corners=False)  # (1, 4, 16, 16)
    with torch.no_grad():
        decoded = pipe.vae.decode(up / pipe.vae.config.scaling_factor).sample  # (1, 3, 64, 64) in [-1, 1]
    expected = ((decoded[0].clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()  # (64, 64, 3)
    assert r.hires.steps_run == 0
    assert np.abs(_pixels(r.images[0]) - expected).max() <= 1.0
    assert np.array_equal(_pixels(r.images[0]), _pixels(r.hires.plain_upscale))


def test_laplacian_variance_matches_a_torch_convolution():
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    grey = torch.tensor(np.asarray(im.convert("L")), dtype=torch.float64)[None, None]
    kernel = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64)[None, None]
    ref = F.conv2d(grey, kernel).flatten().var(unbiased=False)
    assert latent_lessons.laplacian_variance(im) == pytest.approx(float(ref))
    assert latent_lessons.laplacian_variance(Image.new("RGB", (9, 9), (40, 90, 10))) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "argument", "says"),
    [
        # 35 px is off the 8 px grid
        ({"hires_scale": 1.1}, "hires_scale", "scales that fit: 1.25, 1.5, 1.75, 2"),
        ({"hires_scale": 2.5}, "hires_scale", "up to 64"),  # 80 px > max_side
        ({"hires_scale": 2, "width": 64, "height": 64}, "hires_scale", "no scale fits"),
        ({"hires_strength": 0.5}, "hires_strength", "only used with hires_scale"),
        ({"hires_scale": 2, "hires_strength": 0.1}, "hires_strength", "at least 0.25"),
    ],
)
def test_bad_hires_arguments_are_refused_naming_the_argument(cfg, kwargs, argument, says):
    # checks that need the model run in the tool (InvalidArgument), the others in the schema (ValidationError)
    with pytest.raises((InvalidArgument, ValidationError)) as err:
        gen(cfg, **kwargs)
    assert getattr(err.value, "argument", argument) == argument
    assert f"`{argument}`" in str(err.value) and says in str(err.value)


def test_hires_pixel_cap_and_schema_bounds_name_the_argument(tmp_path, tiny_sd):
    small = LabConfig.create(tmp_path / "out", [tmp_path], [tiny_sd], Limits(max_generate_pixels=48 * 48))
    with pytest.raises(InvalidArgument) as err:
        gen(small, hires_scale=2)
    assert err.value.argument == "hires_scale" and "scales that fit: 1.25, 1.5" in str(err.value)
    for bad in (1.0, float("nan"), 5):
        with pytest.raises(ValidationError, match="hires_scale"):
            generate.GenerateInput(prompt="a", hires_scale=bad)
    with pytest.raises(ValidationError, match="strengths"):
        generate.GenerateInput(prompt="a", init_image="x.png", strengths=[0.3, 0.6], hires_scale=2)


def _pixels(saved) -> np.ndarray:
    return np.asarray(Image.open(saved.path).convert("RGB"), dtype=np.float32)

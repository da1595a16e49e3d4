"""tensorize_image against independent references: by-hand PIL -> NumPy -> torch, torch's own statistics."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from tensorize_support import _smooth_rgb, by_hand, core, run_code

from tools.common import InvalidArgument
from tools.paths import output_uri
from tools.tensorize import TensorizeInput, run
from tools.tensorize.core import torch_code
from tools.tensorize.schema import IMAGENET_MEAN, IMAGENET_STD

# -- values against the by-hand pipeline --------------------------------------------------------------


def test_unit_tensor_is_bit_identical_to_by_hand_to_tensor(jpeg, cfg):
    x, _ = core(jpeg, cfg)
    ref = by_hand(Image.open(jpeg))
    assert x.shape == (3, 48, 64) and x.dtype == torch.float32
    assert torch.equal(x, ref)


def test_imagenet_normalization_is_bit_identical_to_by_hand(jpeg, cfg):
    x, _ = core(jpeg, cfg, normalize="imagenet")
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    ref = (by_hand(Image.open(jpeg)) - mean) / std
    assert torch.equal(x, ref)
    assert torch.allclose(x, ref, atol=1e-6)


def test_minus_one_one_maps_0_and_255_to_minus_one_and_one(png, cfg):
    x, _ = core(png, cfg, normalize="minus_one_one")
    ref = by_hand(Image.open(png)) * 2 - 1
    assert torch.allclose(x, ref, atol=1e-6)
    lut_x, _ = core(
        _write(png.parent / "bw.png", np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)),
        cfg,
        normalize="minus_one_one",
    )
    assert lut_x[:, 0, 0].tolist() == [-1.0] * 3 and lut_x[:, 0, 1].tolist() == [1.0] * 3


def test_custom_mean_and_std_apply_per_channel(png, cfg):
    mean, std = [0.5, 0.25, 0.0], [0.5, 2.0, 0.1]
    x, _ = core(png, cfg, normalize="custom", mean=mean, std=std)
    ref = (by_hand(Image.open(png)) - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(x, ref, atol=1e-6)


def test_normalize_none_gives_the_raw_uint8_values(png, cfg):
    x, _ = core(png, cfg, normalize="none")
    assert x.dtype == torch.uint8
    assert torch.equal(x, torch.from_numpy(np.array(Image.open(png))).permute(2, 0, 1))
    xf, _ = core(png, cfg, normalize="none", dtype="float32")
    assert torch.equal(xf, x.float())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_dtypes_equal_the_float32_result_cast(png, cfg, dtype):
    x, _ = core(png, cfg, normalize="imagenet", dtype=dtype)
    ref, _ = core(png, cfg, normalize="imagenet")
    assert x.dtype == getattr(torch, dtype)
    assert torch.equal(x, ref.to(x.dtype))


def test_hwc_layout_and_batch_reorder_the_same_values(png, cfg):
    chw, _ = core(png, cfg)
    hwc, _ = core(png, cfg, layout="HWC")
    nchw, _ = core(png, cfg, batch=True)
    nhwc, _ = core(png, cfg, layout="HWC", batch=True)
    assert hwc.shape == (30, 40, 3) and torch.equal(hwc, chw.permute(1, 2, 0))
    assert nchw.shape == (1, 3, 30, 40) and torch.equal(nchw[0], chw)
    assert nhwc.shape == (1, 30, 40, 3) and torch.equal(nhwc[0], hwc)


def test_grayscale_mode_has_one_channel_equal_to_pil_convert_l(png, cfg):
    x, _ = core(png, cfg, mode="L")
    assert x.shape == (1, 30, 40)
    assert torch.equal(x, by_hand(Image.open(png), "L"))


def test_rgba_keeps_alpha_as_fourth_channel(folder, cfg):
    a = np.dstack([_smooth_rgb(20, 10), np.linspace(0, 255, 200).reshape(10, 20).astype(np.uint8)])
    path = _write(folder / "alpha.png", a)
    x, _ = core(path, cfg, mode="RGBA", normalize="none")
    assert torch.equal(x, torch.from_numpy(a).permute(2, 0, 1))
    rgb, p = core(path, cfg)
    assert rgb.shape[0] == 3 and any("alpha" in n for n in p.notes)


# -- resize and crop -----------------------------------------------------------------------------------


def test_resize_int_sets_the_longest_side_keeping_aspect(png, cfg):
    x, _ = core(png, cfg, resize=20)
    assert x.shape == (3, 15, 20)
    ref = by_hand(Image.open(png).resize((20, 15), Image.Resampling.BILINEAR))
    assert torch.equal(x, ref)


def test_resize_pair_is_width_then_height(png, cfg):
    x, _ = core(png, cfg, resize=[17, 9])
    assert x.shape == (3, 9, 17)


def test_jpeg_without_draft_equals_decode_then_resize(folder, cfg):
    path = folder / "big.jpg"
    Image.fromarray(_smooth_rgb(400, 300)).save(path, quality=90)
    x, p = core(path, cfg, resize=96, jpeg_draft=False)
    assert "draft" not in [s.op for s in p.steps]
    assert torch.equal(x, by_hand(Image.open(path).resize((96, 72), Image.Resampling.BILINEAR)))


def test_jpeg_draft_decodes_at_reduced_size_and_stays_close(folder, cfg):
    path = folder / "big.jpg"
    Image.fromarray(_smooth_rgb(400, 300)).save(path, quality=90)
    x, p = core(path, cfg, resize=96)
    assert [s.op for s in p.steps][:2] == ["draft", "decode"]
    assert x.shape == (3, 72, 96)
    full = by_hand(Image.open(path).resize((96, 72), Image.Resampling.BILINEAR))
    assert (x - full).abs().mean() < 0.02  # DCT scaling differs a little from a full decode
    assert torch.equal(run_code(torch_code(p, str(path))), x)


def test_center_crop_follows_torchvision_offsets(png, cfg):
    # 40x30 -> crop 25x15: left = round(7.5) = 8, top = round(7.5) = 8 (Python rounds half to even)
    x, p = core(png, cfg, center_crop=[25, 15], normalize="none")
    a = np.array(Image.open(png))
    left, top = int(round((40 - 25) / 2.0)), int(round((30 - 15) / 2.0))
    assert torch.equal(x, torch.from_numpy(a[top : top + 15, left : left + 25]).permute(2, 0, 1))
    assert p.crop_box == (left, top, left + 25, top + 15)


def test_resize_then_square_center_crop_like_imagenet_eval(jpeg, cfg):
    x, _ = core(jpeg, cfg, resize=32, center_crop=16, normalize="imagenet", batch=True)
    assert x.shape == (1, 3, 16, 16)


# -- awkward images --------------------------------------------------------------------------------------


def test_exif_rotated_image_is_turned_upright_first(folder, cfg):
    path = folder / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(_smooth_rgb(64, 32)).save(path, exif=exif, quality=95)
    x, p = core(path, cfg)
    assert x.shape == (3, 64, 32)
    assert torch.equal(x, by_hand(ImageOps.exif_transpose(Image.open(path))))
    assert "exif_transpose" in [s.op for s in p.steps]


def test_exif_rotated_jpeg_with_resize_and_draft_matches_its_code(folder, cfg):
    path = folder / "rotated_big.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(_smooth_rgb(320, 160)).save(path, exif=exif, quality=90)
    x, p = core(path, cfg, resize=40, center_crop=[16, 30])
    assert x.shape == (3, 30, 16)
    assert torch.equal(run_code(torch_code(p, str(path))), x)


def test_palette_image_with_transparency_goes_through_rgba(folder, cfg):
    path = folder / "palette.png"
    im = Image.fromarray(_smooth_rgb(16, 8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.info["transparency"] = 0
    im.save(path, transparency=0)
    x, p = core(path, cfg, mode="RGBA", normalize="none")
    ref = np.array(Image.open(path).convert("RGBA"))
    assert torch.equal(x, torch.from_numpy(ref).permute(2, 0, 1))
    assert torch.equal(run_code(torch_code(p, str(path))), x)


def test_cmyk_jpeg_converts_like_pil(folder, cfg):
    path = folder / "cmyk.jpg"
    Image.fromarray(_smooth_rgb(24, 16)).convert("CMYK").save(path, quality=95)
    x, _ = core(path, cfg, normalize="none")
    ref = np.array(Image.open(path).convert("RGB"))
    assert torch.equal(x, torch.from_numpy(ref).permute(2, 0, 1))


def test_sixteen_bit_png_is_scaled_to_8_bits_by_rounding_v_over_257(folder, cfg):
    path = folder / "deep.png"
    v = np.array([[0, 128, 129, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(v).save(path)
    assert Image.open(path).mode.startswith("I")
    x, p = core(path, cfg, mode="L", normalize="none")
    assert x.flatten().tolist() == [0, 0, 1, 1, 128, 255]
    assert any("16-bit" in n for n in p.notes)
    assert torch.equal(run_code(torch_code(p, str(path))), x)


def test_large_rgb_image_takes_the_zero_copy_path_with_identical_values(folder, cfg):
    # 1400 x 1100 RGB: > 16 MB of float output (background allocation) and one Pillow block (Arrow view)
    path = folder / "large.png"
    a = _smooth_rgb(1400, 1100)
    Image.fromarray(a).save(path, compress_level=1)
    x, _ = core(path, cfg, normalize="imagenet")
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.equal(x, (torch.from_numpy(a).permute(2, 0, 1).float() / 255 - mean) / std)


# -- the whole result --------------------------------------------------------------------------------------


def test_result_stats_preview_and_size_match_torch_on_the_saved_tensor(jpeg, cfg):
    out = run(TensorizeInput(image=str(jpeg), normalize="imagenet", save="pt", preview_size=5), cfg)
    r = out.result
    x = torch.load(r.saved.path)
    assert r.shape == list(x.shape) == [3, 48, 64] and r.dtype == "torch.float32" and r.layout == "CHW"
    assert r.size_bytes == x.numel() * x.element_size() == 3 * 48 * 64 * 4
    for i, s in enumerate(r.stats):
        c = x[i].double()
        assert s.min == pytest.approx(c.min().item(), abs=1e-6)
        assert s.max == pytest.approx(c.max().item(), abs=1e-6)
        assert s.mean == pytest.approx(c.mean().item(), abs=1e-6)
        assert s.std == pytest.approx(c.std().item(), abs=1e-5)
        assert r.preview[i].values == [[round(v, 4) for v in row] for row in x[i, :5, :5].tolist()]
    assert r.saved.uri == output_uri(cfg, Path(r.saved.path)) and r.saved.uri.startswith(
        "mllab://outputs/tensors/"
    )


def test_torch_code_in_the_result_rebuilds_the_tensor(jpeg, cfg):
    out = run(
        TensorizeInput(
            image=str(jpeg),
            resize=[32, 20],
            center_crop=16,
            normalize="imagenet",
            dtype="float16",
            layout="HWC",
            batch=True,
            save="pt",
        ),
        cfg,
    )
    x = run_code(out.result.torch_code)
    assert torch.equal(x, torch.load(out.result.saved.path))
    assert x.shape == (1, 16, 16, 3)


@pytest.mark.parametrize("fmt", ["pt", "npy", "safetensors"])
def test_saved_tensor_loads_back_with_the_given_code(png, cfg, fmt):
    out = run(TensorizeInput(image=str(png), save=fmt, layout="HWC", normalize="minus_one_one"), cfg)
    saved = out.result.saved
    assert saved.format == fmt and Path(saved.path).is_file() and Path(saved.path).suffix == "." + fmt
    assert Path(saved.path).is_relative_to(cfg.output_dir)
    scope: dict = {"np": np, "torch": torch}
    exec(saved.load_code, scope)
    ref, _ = core(png, cfg, layout="HWC", normalize="minus_one_one")
    assert torch.equal(scope["x"], ref) and scope["x"].is_contiguous()


def test_result_has_a_compact_picture_and_its_full_size_file(jpeg, cfg):
    out = run(TensorizeInput(image=str(jpeg)), cfg)
    assert len(out.images) == 1
    png = out.images[0].png
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 600_000
    assert max(Image.open(io.BytesIO(png)).size) <= 1024
    assert Path(out.result.picture_path).is_file() and out.result.picture_uri.startswith(
        "mllab://outputs/plots/"
    )
    json.dumps(out.result.model_dump(mode="json"))  # structured content is plain JSON
    assert out.summary and "(3, 48, 64)" in out.summary


def test_data_uri_and_bare_base64_give_the_same_tensor_as_the_path(png, cfg):
    b64 = base64.b64encode(png.read_bytes()).decode()
    ref, _ = core(png, cfg)
    for value in (f"data:image/png;base64,{b64}", b64):
        x, _ = core(value, cfg)
        assert torch.equal(x, ref)


def test_an_output_uri_from_an_earlier_call_is_accepted(png, cfg):
    first = run(TensorizeInput(image=str(png)), cfg)
    again = run(TensorizeInput(image=first.result.picture_uri, normalize="none"), cfg)
    assert again.result.source.kind == "resource" and again.result.shape[0] == 3


def _write(path: Path, a: np.ndarray) -> Path:
    Image.fromarray(a).save(path)
    return path


def test_pixel_view_is_the_same_through_the_zero_copy_and_the_copying_path():
    from tools.tensorize.buffers import uint8_view as _uint8_view

    a = _smooth_rgb(2100, 2100)  # 17.6 MB in Pillow's 4-byte pixels: more than one 16 MB block
    multi_block = Image.fromarray(a)
    view, keep = _uint8_view(multi_block)
    assert isinstance(keep, np.ndarray)  # the copying path
    assert torch.equal(view, torch.from_numpy(a))
    small = Image.fromarray(a[:300, :200])
    view, keep = _uint8_view(small)
    assert isinstance(keep, tuple)  # Arrow view into Pillow's own memory
    assert torch.equal(view, torch.from_numpy(a[:300, :200]))


@pytest.mark.parametrize("kind", ["L", "CMYK", "progressive"])
def test_other_jpeg_kinds_with_draft_resize_match_their_code(folder, cfg, kind):
    path = folder / f"{kind}.jpg"
    im = Image.fromarray(_smooth_rgb(300, 200))
    if kind == "progressive":
        im.save(path, quality=90, progressive=True)
    else:
        im.convert(kind).save(path, quality=90)
    x, p = core(path, cfg, resize=64, normalize="imagenet")
    assert x.shape == (3, 43, 64)
    assert torch.equal(run_code(torch_code(p, str(path))), x)


def test_crop_after_longest_side_resize_explains_torchvision_shorter_side(jpeg, cfg):
    # 64x48: resize=32 -> 32x24, so a 28 crop cannot fit; torchvision's Resize(32) would give 42x32
    with pytest.raises(InvalidArgument, match=r"shorter_side=32"):
        core(jpeg, cfg, resize=32, center_crop=28)
    x, _ = core(jpeg, cfg, shorter_side=32, center_crop=28)
    assert x.shape == (3, 28, 28)


def test_tiny_image_previews_what_there_is_and_has_zero_std(folder, cfg):
    path = _write(folder / "tiny.png", np.full((2, 3, 3), 7, np.uint8))
    r = run(TensorizeInput(image=str(path), normalize="none", preview_size=8), cfg).result
    assert r.preview_size == 8 and r.preview[0].values == [[7, 7, 7], [7, 7, 7]]
    assert r.stats[0].std == 0 and r.stats[0].min == r.stats[0].max == 7

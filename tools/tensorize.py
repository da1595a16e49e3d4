"""tensorize_image: show what an image becomes as a PyTorch tensor.

The pipeline reads as numbered steps (see `run`): open the input (header only), plan every size from the
header and refuse what cannot work, decode, convert to a tensor and normalize (the timed core), then
statistics, preview, saved file and picture.

Why the core is fast (bench/bench_tensorize.py): JPEGs that will be resized are decoded at a reduced size
(`draft`); Pillow decodes into one memory block that we read in place (Arrow C data interface, no
`tobytes()` copy); the float output buffer is faulted in by a helper thread while the JPEG decodes; and
normalization runs in place with exactly the operations of the by-hand pipeline, so values are bit-identical
to `torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255` followed by `(x - mean) / std`.
Statistics come from a 256-bin histogram per channel (Pillow's, in C) mapped through the 256 values each
uint8 level becomes: exact, and independent of the image size.
"""

from __future__ import annotations

import ctypes
import io
import json
import math
import struct
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from tools.common import InlineImage, InvalidArgument, NullReporter, Reporter, ToolInput, ToolOutput
from tools.config import LabConfig
from tools.images import (
    INLINE_MAX_BYTES,
    INLINE_MAX_SIDE,
    decode,
    new_figure,
    open_image_input,
    to_inline_png,
)
from tools.paths import new_output_path, output_uri

MAX_SIDE = 16384
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PICTURE_SIDE = 256  # the picture is drawn from a copy reduced to at most this many pixels a side
PREFAULT_MIN_BYTES = 16 << 20  # float outputs at least this big get their pages faulted in during the decode
CHANNELS = {"L": ("L",), "RGB": ("R", "G", "B"), "RGBA": ("R", "G", "B", "A")}
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
DIRECT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")  # PIL converts these to L / RGB / RGBA directly

Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
Pair = Annotated[list[Side], Field(min_length=2, max_length=2)]
Stat = Annotated[float, Field(allow_inf_nan=False)]


class TensorizeInput(ToolInput):
    """Arguments of tensorize_image."""

    image: str = Field(
        description="The image: a file path under an allowed folder, a data:image/...;base64 URI, bare base64, "
        "or an mllab://outputs/... URI from an earlier call.",
        min_length=1,
    )
    mode: Literal["RGB", "L", "RGBA"] = Field(
        "RGB",
        description="Channels: RGB (3), L (1, grayscale) or RGBA (4, with alpha). Alpha is dropped for RGB.",
    )
    resize: Side | Pair | None = Field(
        None,
        description="Resize before tensorizing: an int sets the LONGEST side (aspect kept; torchvision's "
        "Resize(int) sets the shorter side instead); [width, height] sets both. Bilinear, antialiased (PIL).",
    )
    center_crop: Side | Pair | None = Field(
        None, description="Crop the center after resizing: an int for a square, or [width, height]."
    )
    normalize: Literal["none", "unit", "imagenet", "minus_one_one", "custom"] = Field(
        "unit",
        description="none: raw 0..255; unit: x/255 in [0, 1] (torchvision ToTensor); imagenet: unit then "
        "(x - mean) / std with ImageNet statistics; minus_one_one: 2 * unit - 1 in [-1, 1] (diffusion VAE input); "
        "custom: unit then (x - mean) / std with your `mean` and `std`.",
    )
    mean: list[Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]] | None = Field(
        None,
        description="normalize=custom only: one mean per channel (3 for RGB, 1 for L, 4 for RGBA).",
        min_length=1,
        max_length=4,
    )
    std: list[Annotated[float, Field(allow_inf_nan=False, gt=0, le=1e6)]] | None = Field(
        None, description="normalize=custom only: one std per channel, each > 0.", min_length=1, max_length=4
    )
    layout: Literal["CHW", "HWC"] = Field(
        "CHW", description="CHW (PyTorch's convention: channels first) or HWC (NumPy/PIL's: channels last)."
    )
    batch: bool = Field(
        False, description="Add a leading batch dimension N=1 (NCHW / NHWC), as a model expects."
    )
    dtype: Literal["float32", "float16", "bfloat16", "uint8"] | None = Field(
        None,
        description="Element type. Default: uint8 when normalize=none, else float32. uint8 needs normalize=none.",
    )
    save: Literal["none", "pt", "npy", "safetensors"] = Field(
        "none",
        description="Also save the tensor under the output folder: .pt (torch.save), .npy or .safetensors.",
    )
    preview_size: int = Field(
        8, ge=1, le=16, description="k: show the top-left k x k values of each channel."
    )
    jpeg_draft: bool = Field(
        True,
        description="With resize on a JPEG: decode directly at a reduced size (1/2, 1/4, 1/8 DCT scaling, never "
        "below the target) before resizing. Much faster; values differ slightly from decode-then-resize.",
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> TensorizeInput:
        channels = len(CHANNELS[self.mode])
        if self.normalize == "custom":
            for name, values in (("mean", self.mean), ("std", self.std)):
                if values is None or len(values) != channels:
                    raise InvalidArgument(
                        name,
                        values,
                        f"normalize='custom' with mode={self.mode} needs {channels} value(s), one per channel",
                    )
        elif self.normalize == "imagenet" and channels != len(IMAGENET_MEAN):
            raise InvalidArgument(
                "normalize",
                self.normalize,
                f"ImageNet mean/std are for the 3 RGB channels; mode={self.mode} has {channels}: "
                "use mode='RGB', or normalize='custom' with your own mean and std",
            )
        elif self.mean is not None or self.std is not None:
            arg = "mean" if self.mean is not None else "std"
            raise InvalidArgument(
                arg, getattr(self, arg), "only used with normalize='custom'; leave it out otherwise"
            )
        if self.dtype == "uint8" and self.normalize != "none":
            raise InvalidArgument(
                "dtype",
                self.dtype,
                f"uint8 holds only the raw 0..255 values: use normalize='none' "
                f"(got normalize={self.normalize!r}), or a float dtype",
            )
        if self.save == "npy" and self.out_dtype == "bfloat16":
            raise InvalidArgument(
                "save",
                self.save,
                "NumPy (.npy) has no bfloat16; use save='pt' or 'safetensors', or dtype float32/float16",
            )
        return self

    @property
    def out_dtype(self) -> str:
        return self.dtype or ("uint8" if self.normalize == "none" else "float32")


class Step(BaseModel):
    op: str = Field(
        description="Step name: decode, draft, exif_transpose, convert, resize, to_tensor, crop, ..."
    )
    detail: str = Field(description="What the step did, with sizes and values.")


class ChannelStats(BaseModel):
    channel: str = Field(description="Channel name: R, G, B, A or L.")
    min: Stat = Field(description="Smallest value in this channel of the tensor.")
    max: Stat = Field(description="Largest value.")
    mean: Stat = Field(description="Mean value.")
    std: Stat = Field(description="Standard deviation (unbiased, as torch.std).")


class ChannelPreview(BaseModel):
    channel: str = Field(description="Channel name.")
    values: list[list[float]] = Field(
        description="Top-left k x k values, rows top to bottom (rounded to 4 decimals)."
    )


class SourceInfo(BaseModel):
    kind: str = Field(description="How the image came: path, data_uri, base64 or resource.")
    description: str = Field(description="The resolved path, or the kind of inline data.")
    format: str | None = Field(description="File format PIL detected (JPEG, PNG, ...).")
    size: list[int] = Field(description="Stored [width, height] before any step.")
    mode: str = Field(description="PIL mode of the file (RGB, L, P, CMYK, I;16, ...).")
    exif_orientation: int = Field(
        description="EXIF orientation tag (1 = upright); applied before anything else."
    )


class SavedTensor(BaseModel):
    format: Literal["pt", "npy", "safetensors"] = Field(description="File format.")
    path: str = Field(description="Absolute path of the saved tensor (contiguous, same shape and dtype).")
    uri: str = Field(description="mllab://outputs/... URI of the same file.")
    bytes: int = Field(description="File size in bytes.")
    load_code: str = Field(description="Python that loads it back as a torch tensor `x`.")


class TensorizeResult(BaseModel):
    shape: list[int] = Field(description="Tensor shape, e.g. [3, 224, 224] or [1, 3, 224, 224].")
    dtype: str = Field(description="Element type, e.g. torch.float32.")
    layout: str = Field(description="Meaning of the dimensions: CHW, HWC, NCHW or NHWC.")
    channels: list[str] = Field(description="Channel names in order.")
    normalize: str = Field(description="Normalization applied.")
    numel: int = Field(description="Number of elements.")
    element_size: int = Field(description="Bytes per element.")
    size_bytes: int = Field(description="numel x element_size: memory the tensor occupies.")
    source: SourceInfo = Field(description="Where the image came from and what it was before any step.")
    steps: list[Step] = Field(description="Every transform applied, in order.")
    torch_code: str = Field(
        description="Python (PIL + NumPy + torch) that rebuilds exactly this tensor as `x`."
    )
    stats: list[ChannelStats] = Field(description="Per-channel min, max, mean, std of the tensor.")
    preview: list[ChannelPreview] = Field(description="Top-left k x k values of each channel.")
    preview_size: int = Field(
        description="k of the preview (fewer rows or columns when the image is smaller than k)."
    )
    saved: SavedTensor | None = Field(description="The saved tensor file, when save was not 'none'.")
    picture_path: str = Field(
        description="Full-size PNG of the picture (image, channel heatmaps, histograms)."
    )
    picture_uri: str = Field(description="mllab://outputs/... URI of that picture.")
    notes: list[str] = Field(
        description="Things worth knowing about this conversion (dropped alpha, 16-bit, ...)."
    )


# --------------------------------------------------------------------------------------------------
# 1. Plan from the header: every size is known before a pixel is decoded.


@dataclass
class Plan:
    channels: tuple[str, ...]
    orientation: int
    upright: tuple[int, int]  # (w, h) after EXIF rotation
    resize_to: tuple[int, int] | None
    crop_box: tuple[int, int, int, int] | None  # left, top, right, bottom in the resized image
    out_hw: tuple[int, int]
    draft_to: tuple[int, int] | None  # requested draft size in stored orientation
    steps: list[Step] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _pair(value: int | list[int], w: int, h: int) -> tuple[int, int]:
    """An int means the longest side (aspect kept); a pair is (width, height)."""
    if isinstance(value, int):
        scale = value / max(w, h)
        return max(1, round(w * scale)), max(1, round(h * scale))
    return value[0], value[1]


def plan(im: Any, args: TensorizeInput, cfg: LabConfig) -> Plan:
    orientation = _exif_orientation(im)
    w, h = im.size
    upright = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    resize_to = _pair(args.resize, *upright) if args.resize is not None else None
    if resize_to is not None and resize_to[0] * resize_to[1] > cfg.limits.max_pixels:
        raise InvalidArgument(
            "resize",
            args.resize,
            f"gives {resize_to[0]}x{resize_to[1]} pixels; the limit is {cfg.limits.max_pixels}",
        )
    rw, rh = resize_to or upright
    crop_box = None
    if args.center_crop is not None:
        cw, ch = (
            (args.center_crop, args.center_crop) if isinstance(args.center_crop, int) else args.center_crop
        )
        if cw > rw or ch > rh:
            hint = ""
            # torchvision's Resize(256) + CenterCrop(224) sets the SHORTER side: say how to get that here
            if isinstance(args.resize, int):
                k = args.resize / min(upright)
                hint = (
                    f"; resize={args.resize} sets the longest side. For torchvision's Resize({args.resize}) "
                    f"(shorter side {args.resize}) pass resize=[{round(upright[0] * k)}, {round(upright[1] * k)}]"
                )
            raise InvalidArgument(
                "center_crop",
                args.center_crop,
                f"must fit inside the {'resized ' if resize_to else ''}image, "
                f"which is {rw}x{rh} (width x height); crop smaller or resize larger first{hint}",
            )
        left, top = int(round((rw - cw) / 2.0)), int(round((rh - ch) / 2.0))  # as torchvision CenterCrop
        crop_box = (left, top, left + cw, top + ch)
    out_w, out_h = (crop_box[2] - crop_box[0], crop_box[3] - crop_box[1]) if crop_box else (rw, rh)
    draft_to = None
    if resize_to is not None and args.jpeg_draft and im.format == "JPEG":
        draft_to = (resize_to[1], resize_to[0]) if orientation in (5, 6, 7, 8) else resize_to
    return Plan(CHANNELS[args.mode], orientation, upright, resize_to, crop_box, (out_h, out_w), draft_to)


def _exif_orientation(im: Any) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except (OSError, ValueError, SyntaxError, TypeError, KeyError, struct.error):  # broken EXIF: upright
        return 1
    return value if 1 <= value <= 8 else 1


# --------------------------------------------------------------------------------------------------
# 2. The core: decode, convert, to tensor, normalize. Timed by bench/bench_tensorize.py.


@dataclass
class Core:
    tensor: Any  # torch.Tensor, (C, H, W) or its HWC / batched view
    pixels: Any  # the PIL image the uint8 values came from (converted and resized, not cropped)
    plan: Plan
    lut: Any  # (C, 256) float64: the value each uint8 level became, in the output dtype


def tensorize_core(im: Any, args: TensorizeInput, p: Plan, shown: str = "image") -> Core:
    """Decode `im` (opened, not loaded) and build the tensor the arguments describe. No stats, no picture."""
    import numpy as np
    import torch
    from PIL import Image

    c = len(p.channels)
    steps, code = p.steps, p.code
    code += [
        "import numpy as np",
        "import torch",
        "from PIL import Image, ImageOps",
        "",
        'im = Image.open("IMAGE")',
    ]
    # Fault in the float output while the decoder runs (a fresh 100+ MB tensor costs ~50 ms of page faults).
    prefault = None
    if args.out_dtype != "uint8" and c * p.out_hw[0] * p.out_hw[1] * 4 >= PREFAULT_MIN_BYTES:
        prefault = _pool().submit(_faulted_buffer, c * p.out_hw[0] * p.out_hw[1])
    if p.draft_to is not None:
        before = im.size
        im.draft(im.mode, p.draft_to)
        if im.size != before:
            steps.append(
                Step(op="draft", detail=f"JPEG decoded at reduced size {before} -> {im.size} (DCT scaling)")
            )
            code.append(f'im.draft("{im.mode}", {p.draft_to})  # JPEG: decode at reduced size (DCT scaling)')
    _single_block(im)
    decode(im, "image", shown)
    steps.append(Step(op="decode", detail=f"{im.format or 'image'} {im.size[0]}x{im.size[1]} mode {im.mode}"))
    if p.orientation != 1:
        from PIL import ImageOps

        im = ImageOps.exif_transpose(im)
        steps.append(
            Step(op="exif_transpose", detail=f"EXIF orientation {p.orientation} applied: now {im.size}")
        )
        code.append("im = ImageOps.exif_transpose(im)  # the camera's rotation")
    im = _convert(im, args.mode, p)
    if p.resize_to is not None and im.size != p.resize_to:
        steps.append(
            Step(
                op="resize", detail=f"{im.size[0]}x{im.size[1]} -> {p.resize_to[0]}x{p.resize_to[1]} bilinear"
            )
        )
        im = im.resize(p.resize_to, Image.Resampling.BILINEAR)
        code.append(f"im = im.resize({p.resize_to}, Image.Resampling.BILINEAR)")
    u8, keep = _uint8_view(im)  # (H, W, C) uint8
    steps.append(Step(op="to_tensor", detail=f"uint8 (H, W, C) = {tuple(u8.shape)}, values 0..255"))
    code.append(
        "x = torch.from_numpy(np.array(im))" + ("" if c > 1 else ".unsqueeze(-1)") + "  # (H, W, C) uint8"
    )
    if p.crop_box is not None:
        left, top, right, bottom = p.crop_box
        u8 = u8[top:bottom, left:right]
        steps.append(
            Step(
                op="center_crop",
                detail=f"rows {top}:{bottom}, columns {left}:{right} -> {right - left}x{bottom - top}",
            )
        )
        code.append(f"x = x[{top}:{bottom}, {left}:{right}]  # center crop")
    src = u8.permute(2, 0, 1)  # (C, H, W) view
    if args.layout == "CHW":
        code.append("x = x.permute(2, 0, 1)  # (C, H, W)")
    shape_hint = "(C, 1, 1)" if args.layout == "CHW" else "(C,)"
    view = "view(-1, 1, 1)" if args.layout == "CHW" else "view(-1)"

    if args.out_dtype == "uint8":
        x = torch.empty((c, *p.out_hw), dtype=torch.uint8).copy_(src)  # own memory, never Pillow's
        lut = np.arange(256, dtype=np.float32)[None].repeat(c, 0)
    else:
        ops: list[tuple[Any, list]] = []  # (ufunc, one float32 constant per channel), in order
        if args.normalize != "none":
            ops.append((np.divide, [np.float32(255)] * c))
            code.append("x = x.float() / 255  # [0, 1], like torchvision ToTensor")
            steps.append(Step(op="scale", detail="x / 255 -> [0, 1]"))
        else:
            code.append("x = x.float()  # values stay 0..255")
        if args.normalize in ("imagenet", "custom"):
            mean = IMAGENET_MEAN if args.normalize == "imagenet" else tuple(args.mean or ())
            std = IMAGENET_STD if args.normalize == "imagenet" else tuple(args.std or ())
            ops += [(np.subtract, [np.float32(v) for v in mean]), (np.divide, [np.float32(v) for v in std])]
            code += [
                f"mean = torch.tensor({list(mean)}).{view}  # {shape_hint}",
                f"std = torch.tensor({list(std)}).{view}",
                "x = (x - mean) / std",
            ]
            steps.append(Step(op="normalize", detail=f"(x - mean) / std, mean={list(mean)}, std={list(std)}"))
        elif args.normalize == "minus_one_one":
            ops += [(np.multiply, [np.float32(2)] * c), (np.subtract, [np.float32(1)] * c)]
            code.append("x = x * 2 - 1  # [-1, 1], what a diffusion VAE expects")
            steps.append(Step(op="normalize", detail="2 * x - 1 -> [-1, 1]"))
        out = prefault.result() if prefault else np.empty(c * p.out_hw[0] * p.out_hw[1], np.float32)
        out = out.reshape(c, *p.out_hw)
        _apply_in_bands(out, src.numpy(), ops)
        lut = np.empty((c, 1, 256), np.float32)
        _apply(lut, np.broadcast_to(np.arange(256, dtype=np.uint8), (c, 1, 256)), ops)
        lut = lut.reshape(c, 256)
        x = torch.from_numpy(out)
        if args.out_dtype != "float32":
            dt = getattr(torch, args.out_dtype)
            x = x.to(dt)
            lut = torch.from_numpy(lut).to(dt).double().numpy()
            code.append(f"x = x.to(torch.{args.out_dtype})")
            steps.append(Step(op="dtype", detail=f"float32 -> {args.out_dtype}"))
    del keep, u8, src  # x owns its memory; nothing reads Pillow's block any more
    if args.layout == "HWC":
        x = x.permute(1, 2, 0)  # a view; saved files are made contiguous
        steps.append(Step(op="layout", detail="HWC: channels last"))
    else:
        steps.append(Step(op="layout", detail="CHW: channels first"))
    if args.batch:
        x = x.unsqueeze(0)
        code.append(
            "x = x.unsqueeze(0)  # batch of 1: "
            + ("(N, C, H, W)" if args.layout == "CHW" else "(N, H, W, C)")
        )
        steps.append(Step(op="batch", detail="unsqueeze(0): batch dimension N=1"))
    return Core(tensor=x, pixels=im, plan=p, lut=torch.from_numpy(np.asarray(lut, dtype=np.float64)))


def torch_code(p: Plan, image_path: str) -> str:
    """The plan's steps as standalone Python that rebuilds the tensor as `x` from the image file."""
    code = "\n".join(p.code).replace('"IMAGE"', json.dumps(image_path)) + "\n"
    if "ImageOps." not in code:
        code = code.replace("from PIL import Image, ImageOps\n", "from PIL import Image\n")
    return code


def _convert(im: Any, mode: str, p: Plan) -> Any:
    """Bring any PIL mode to L, RGB or RGBA, recording each step."""
    from PIL import Image

    if im.mode == "F":
        raise InvalidArgument(
            "image", "mode F", "32-bit float images are not supported; save it as 8- or 16-bit"
        )
    if im.mode in SIXTEEN_BIT:
        import numpy as np

        a = np.clip(np.asarray(im), 0, 65535).astype(np.uint32)
        im = Image.fromarray(((a + 128) // 257).astype(np.uint8))  # round(v / 257): 65535 -> 255
        p.steps.append(Step(op="to_8bit", detail="16-bit values scaled to 0..255 as round(v / 257)"))
        p.notes.append(
            "16-bit image: values reduced to 8 bits (round(v / 257)); the finer levels are not kept."
        )
        p.code += [
            "a = np.clip(np.asarray(im), 0, 65535).astype(np.uint32)  # 16-bit values",
            "im = Image.fromarray(((a + 128) // 257).astype(np.uint8))  # round(v / 257) -> 0..255",
        ]
    if im.mode == "P" and "transparency" in im.info:
        im = _step_convert(im, "RGBA", p, "palette with transparency")
    elif im.mode not in DIRECT_MODES:  # CMYK, YCbCr, LAB, HSV...: through RGB(A)
        im = _step_convert(im, "RGBA" if "A" in im.getbands() else "RGB", p, f"from {im.mode}")
    if im.mode != mode:
        if "A" in im.getbands() and "A" not in mode:
            p.notes.append("The alpha channel was dropped (not composited); use mode='RGBA' to keep it.")
        im = _step_convert(im, mode, p, f"from {im.mode}")
    return im


def _step_convert(im: Any, mode: str, p: Plan, why: str) -> Any:
    p.steps.append(Step(op="convert", detail=f"{im.mode} -> {mode} ({why})"))
    p.code.append(f'im = im.convert("{mode}")')
    return im.convert(mode)


_POOL = None
_POOL_LOCK = threading.Lock()


def _workers() -> int:
    """Threads for the normalization pass: as many as torch may use, at most 4 (memory-bound beyond)."""
    import torch

    return max(1, min(4, torch.get_num_threads()))


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, _workers()), thread_name_prefix="tensorize")
        return _POOL


def _faulted_buffer(numel: int):
    """A float32 buffer with its pages already faulted in; run on another core while the JPEG decodes.

    A fresh 100+ MB array otherwise pays its page faults inside the normalization pass.
    """
    import numpy as np

    out = np.empty(numel, np.float32)
    out[::1024] = 0.0  # one write per 4 KiB page faults it in; NumPy releases the GIL meanwhile
    return out


def _apply_in_bands(out, src, ops) -> None:
    """`_apply` over horizontal bands in parallel (NumPy releases the GIL inside each operation)."""
    workers, h = _workers(), out.shape[1]
    if workers == 1 or out.size < (1 << 21) or h < 2 * workers:
        _apply(out, src, ops)
        return
    bands = [slice(h * i // workers, h * (i + 1) // workers) for i in range(workers)]
    jobs = [_pool().submit(_apply, out[:, rows], src[:, rows], ops) for rows in bands]
    for job in jobs:
        job.result()


def _apply(out, src, ops, chunk_bytes: int = 1 << 19) -> None:
    """out = ops(float32(src)) in row blocks small enough to stay in cache: src is read once, out written once.

    Each op is one IEEE float32 operation with a per-channel constant, the same operations as torch's
    `x.float() / 255` and `(x - mean) / std`, so the values are bit-identical to the by-hand pipeline.
    """
    import numpy as np

    c, h, w = out.shape
    consts = [(fn, np.asarray(values, dtype=np.float32).reshape(c, 1, 1)) for fn, values in ops]
    rows = max(1, chunk_bytes // (4 * w * c))
    for r0 in range(0, h, rows):
        o = out[:, r0 : r0 + rows]
        np.copyto(o, src[:, r0 : r0 + rows], casting="safe")
        for fn, k in consts:
            fn(o, k, out=o)


def _single_block(im: Any) -> None:
    """Have Pillow decode into one contiguous block, so that `_uint8_view` can read it without a copy."""
    from PIL import Image

    new_block = getattr(Image.core, "new_block", None)
    if new_block is None or im.format not in ("JPEG", "PNG") or im.mode not in CHANNELS:
        return
    if getattr(im, "_im", None) is not None or not im.tile:
        return  # no tile: no pixel data at all, which decode() must refuse (a preset block would pass as zeros)
    try:
        im.im = new_block(im.mode, im.size)
    except (ValueError, MemoryError, OSError):
        return


class _ArrowArray(ctypes.Structure):
    pass


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


# Our own prototype of PyCapsule_GetPointer (setting restype on ctypes.pythonapi's would change it for everyone).
_CAPSULE_POINTER = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


def _capsule_pointer(capsule: Any, name: bytes) -> int:
    return _CAPSULE_POINTER(capsule, name)


def _uint8_view(im: Any):
    """(H, W, C) uint8 tensor of the pixels and an object that keeps their memory alive.

    Zero-copy through the Arrow C data interface when Pillow holds the image in one block (RGB is stored
    as 4 bytes a pixel, so the view skips the pad byte); otherwise one copy through NumPy.
    """
    import numpy as np
    import torch

    w, h = im.size
    c = len(im.getbands())
    try:
        schema, array = im.__arrow_c_array__()
        arr = _ArrowArray.from_address(_capsule_pointer(array, b"arrow_array"))
        node = arr.children[0].contents if arr.n_children == 1 else arr
        width = 1 if arr.n_children == 0 else 4
        ok = arr.length == w * h and arr.offset == 0 and node.offset == 0 and node.length == w * h * width
        if ok and node.n_buffers == 2 and node.buffers[1] and (c == 1) == (width == 1):
            buf = (ctypes.c_uint8 * (w * h * width)).from_address(node.buffers[1])
            a = np.frombuffer(buf, dtype=np.uint8).reshape(h, w, width)[..., :c]
            return torch.from_numpy(a), (schema, array, im)
    except (ValueError, AttributeError, OSError, TypeError):
        pass
    with warnings.catch_warnings():  # the array is read-only; we only read it
        warnings.simplefilter("ignore", UserWarning)
        a = np.asarray(im)
        return torch.from_numpy(a.reshape(h, w, c)), a


# --------------------------------------------------------------------------------------------------
# 3. Everything around the core: statistics, preview, saving, picture, result.


def _histogram(core: Core):
    """(C, 256) int64 counts of each uint8 level, per channel, over the cropped region."""
    import torch

    im = core.pixels if core.plan.crop_box is None else core.pixels.crop(core.plan.crop_box)
    return torch.tensor(im.histogram(), dtype=torch.int64).view(len(core.plan.channels), 256)


def _stats(counts, lut, names) -> list[ChannelStats]:
    n = counts.sum(dim=1, keepdim=True).double()
    present = counts > 0
    mean = (counts * lut).sum(dim=1, keepdim=True) / n
    var = (counts * (lut - mean) ** 2).sum(dim=1, keepdim=True) / (n - 1).clamp(min=1)
    out = []
    for i, name in enumerate(names):
        vals = lut[i][present[i]]
        out.append(
            ChannelStats(
                channel=name,
                min=round(float(vals.min()), 6),
                max=round(float(vals.max()), 6),
                mean=round(float(mean[i]), 6),
                std=round(float(var[i].sqrt()), 6),
            )
        )
    return out


def _preview(x, args: TensorizeInput, names) -> list[ChannelPreview]:
    t = x[0] if args.batch else x
    t = t if args.layout == "CHW" else t.permute(2, 0, 1)
    k = args.preview_size
    block = t[:, :k, :k].double()
    return [
        ChannelPreview(channel=name, values=[[round(float(v), 4) for v in row] for row in block[i].tolist()])
        for i, name in enumerate(names)
    ]


def _save(x, args: TensorizeInput, cfg: LabConfig, meta: dict[str, str]) -> SavedTensor:
    import torch

    x = x.contiguous()
    path = new_output_path(cfg, "tensors", "." + args.save)
    if args.save == "pt":
        torch.save(x, path)
        load = f'x = torch.load("{path}")'
    elif args.save == "npy":
        import numpy as np

        np.save(path, x.numpy())
        load = f'x = torch.from_numpy(np.load("{path}"))'
    else:
        from safetensors.torch import save_file

        save_file({"image": x}, str(path), metadata=meta)
        load = f'from safetensors.torch import load_file\nx = load_file("{path}")["image"]'
    fmt: Literal["pt", "npy", "safetensors"] = args.save  # type: ignore[assignment]  # never "none" here
    return SavedTensor(
        format=fmt, path=str(path), uri=output_uri(cfg, path), bytes=path.stat().st_size, load_code=load
    )


def _picture(core: Core, counts, names, normalize: str) -> bytes:
    """Image | one heatmap per channel (tensor values) / per-channel histogram, from a reduced copy."""
    import numpy as np

    im = core.pixels
    box = core.plan.crop_box or (0, 0, *im.size)
    factor = max(1, math.ceil(max(box[2] - box[0], box[3] - box[1]) / PICTURE_SIDE))
    small = im.reduce(factor, box=box) if factor > 1 else im.crop(box)
    a = np.asarray(small).reshape(small.size[1], small.size[0], -1)
    lut = core.lut.numpy()
    c = len(names)
    fig, axes = new_figure(2, c + 1, figsize=(2.6 * (c + 1), 5.2), gridspec_kw={"height_ratios": [1.3, 1]})
    axes[0, 0].imshow(small.convert("RGBA" if c == 4 else "RGB"), interpolation="nearest")
    axes[0, 0].set_title(f"image {box[2] - box[0]}x{box[3] - box[1]}", fontsize=9)
    colours = {"R": "tab:red", "G": "tab:green", "B": "tab:blue", "A": "0.4", "L": "0.2"}
    for i, name in enumerate(names):
        ax = axes[0, i + 1]
        shown = ax.imshow(lut[i][a[..., i]], cmap="viridis", interpolation="nearest")
        ax.set_title(f"channel {name}", fontsize=9)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    gs = axes[1, 0].get_gridspec()
    for ax in axes[1]:
        ax.remove()
    hist = fig.add_subplot(gs[1, :])
    for i, name in enumerate(names):
        hist.plot(lut[i], counts[i].numpy(), drawstyle="steps-mid", color=colours[name], label=name, lw=1)
    hist.set_xlabel(f"tensor value (normalize={normalize})", fontsize=8)
    hist.set_ylabel("pixels", fontsize=8)
    hist.tick_params(labelsize=7)
    hist.legend(fontsize=7)
    hist.set_title("per-channel histogram", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # one draw; tight_layout already placed everything
    return buf.getvalue()


def run(args: TensorizeInput, cfg: LabConfig, reporter: Reporter | None = None) -> ToolOutput:
    """Turn an image into a tensor as the arguments describe; report its numbers, code and a picture."""
    from PIL import Image

    reporter = reporter or NullReporter()
    # 1. Open (header only; pixel cap, allowed folders and base64 size are checked here) and plan.
    source = open_image_input(args.image, cfg, "image")
    im = source.image
    shown = source.description if len(source.description) <= 80 else source.description[:77] + "..."
    info = SourceInfo(
        kind=source.kind,
        description=source.description,
        format=im.format,
        size=list(im.size),
        mode=im.mode,
        exif_orientation=_exif_orientation(im),
    )
    p = plan(im, args, cfg)
    reporter.progress(1, 4, "decoding")
    reporter.check_cancelled()
    # 2. The core.
    core = tensorize_core(im, args, p, shown)
    x = core.tensor
    reporter.progress(2, 4, "statistics")
    reporter.check_cancelled()
    # 3. Statistics, preview and saved file.
    counts = _histogram(core)
    stats = _stats(counts, core.lut, p.channels)
    layout = ("N" if args.batch else "") + args.layout
    saved = None
    if args.save != "none":
        meta = {
            "layout": layout,
            "normalize": args.normalize,
            "mode": args.mode,
            "source": source.description[:200],
        }
        saved = _save(x, args, cfg, meta)
    # 4. Picture.
    reporter.progress(3, 4, "drawing")
    reporter.check_cancelled()
    png = _picture(core, counts, p.channels, args.normalize)
    picture_path = new_output_path(cfg, "plots", ".png")
    picture_path.write_bytes(png)
    with Image.open(io.BytesIO(png)) as drawn:  # already compact: re-encode only if over the inline limits
        small_enough = max(drawn.size) <= INLINE_MAX_SIDE and len(png) <= INLINE_MAX_BYTES
        inline = png if small_enough else to_inline_png(drawn)
    code = torch_code(p, source.description if source.kind in ("path", "resource") else "your_image.png")
    result = TensorizeResult(
        shape=list(x.shape),
        dtype=str(x.dtype),
        layout=layout,
        channels=list(p.channels),
        normalize=args.normalize,
        numel=x.numel(),
        element_size=x.element_size(),
        size_bytes=x.numel() * x.element_size(),
        source=info,
        steps=p.steps,
        torch_code=code,
        stats=stats,
        preview=_preview(x, args, p.channels),
        preview_size=args.preview_size,
        saved=saved,
        picture_path=str(picture_path),
        picture_uri=output_uri(cfg, picture_path),
        notes=p.notes,
    )
    reporter.progress(4, 4, "done")
    summary = (
        f"{source.description if source.kind != 'path' else im.format or 'image'} -> tensor {tuple(x.shape)} "
        f"{str(x.dtype).replace('torch.', '')} ({layout}), {result.size_bytes:,} bytes; "
        + "; ".join(
            f"{s.channel}: min {s.min:.4g} max {s.max:.4g} mean {s.mean:.4g} std {s.std:.4g}" for s in stats
        )
    )
    return ToolOutput(
        result=result,
        images=[InlineImage(png=inline, caption="image, channel heatmaps, histograms")],
        summary=summary,
    )

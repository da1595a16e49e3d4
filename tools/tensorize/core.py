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

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import torch

from tools.common import InlineImage, InvalidArgument, NullReporter, Reporter, ToolOutput
from tools.config import LabConfig
from tools.images import decode, open_image_input, to_inline_png
from tools.paths import new_output_path, output_uri
from tools.tensorize import picture, report
from tools.tensorize.buffers import (
    PREFAULT_MIN_BYTES,
    apply_in_bands,
    apply_ops,
    faulted_buffer,
    pool,
    single_block,
    uint8_view,
)
from tools.tensorize.schema import (
    CHANNELS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SourceInfo,
    Step,
    TensorizeInput,
    TensorizeResult,
)

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
DIRECT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")  # PIL converts these to L / RGB / RGBA directly


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
    aspect_change: float | None = None


def _pair(value: int | list[int], w: int, h: int) -> tuple[int, int]:
    """An int means the longest side (aspect kept); a pair is (width, height)."""
    if isinstance(value, int):
        scale = value / max(w, h)
        return max(1, round(w * scale)), max(1, round(h * scale))
    return value[0], value[1]


def shorter_side_size(size: int, w: int, h: int) -> tuple[int, int]:
    """torchvision's Resize(size) for an int: the shorter side becomes `size`, the longer one
    int(size * long / short) (truncated, as torchvision's _compute_resized_output_size does)."""
    if w <= h:
        return size, int(size * h / w)
    return int(size * w / h), size


ASPECT_TOLERANCE = 0.01  # a resize that changes width/height by more than 1% gets a note


def plan(im: Any, args: TensorizeInput, cfg: LabConfig) -> Plan:
    orientation = _exif_orientation(im)
    w, h = im.size
    upright = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    if args.resize is not None and args.shorter_side is not None:
        raise InvalidArgument(
            "shorter_side", args.shorter_side, "give either resize or shorter_side, not both"
        )
    resize_to = _pair(args.resize, *upright) if args.resize is not None else None
    if args.shorter_side is not None:
        resize_to = shorter_side_size(args.shorter_side, *upright)
    if resize_to is not None and resize_to[0] * resize_to[1] > cfg.limits.max_pixels:
        raise InvalidArgument(
            "resize" if args.shorter_side is None else "shorter_side",
            args.resize if args.shorter_side is None else args.shorter_side,
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
                tw, th = shorter_side_size(args.resize, *upright)
                hint = (
                    f"; resize={args.resize} sets the longest side. For torchvision's Resize({args.resize}) "
                    f"(shorter side {args.resize}, giving {tw}x{th}) pass shorter_side={args.resize}"
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
    plan = Plan(CHANNELS[args.mode], orientation, upright, resize_to, crop_box, (out_h, out_w), draft_to)
    if resize_to is not None:
        change = (resize_to[0] / resize_to[1]) / (upright[0] / upright[1])
        if abs(change - 1) > ASPECT_TOLERANCE:
            plan.aspect_change = round(change, 4)
            how = (
                f"stretched {change:.2f}x horizontally"
                if change > 1
                else f"squeezed to {change:.2f}x horizontally"
            )
            keep = shorter_side_size(min(resize_to), *upright)
            plan.notes.append(
                f"The resize to {resize_to[0]}x{resize_to[1]} changes the aspect ratio of the "
                f"{upright[0]}x{upright[1]} image ({how}). To keep it, set one side: shorter_side="
                f"{min(resize_to)} gives {keep[0]}x{keep[1]} (torchvision's Resize({min(resize_to)})), "
                f"resize={max(resize_to)} sets the longest side."
            )
    return plan


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
        prefault = pool().submit(faulted_buffer, c * p.out_hw[0] * p.out_hw[1])
    if p.draft_to is not None:
        before = im.size
        im.draft(im.mode, p.draft_to)
        if im.size != before:
            steps.append(
                Step(op="draft", detail=f"JPEG decoded at reduced size {before} -> {im.size} (DCT scaling)")
            )
            code.append(f'im.draft("{im.mode}", {p.draft_to})  # JPEG: decode at reduced size (DCT scaling)')
    single_block(im)
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
    u8, keep = uint8_view(im)  # (H, W, C) uint8
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
        apply_in_bands(out, src.numpy(), ops)
        lut = np.empty((c, 1, 256), np.float32)
        apply_ops(lut, np.broadcast_to(np.arange(256, dtype=np.uint8), (c, 1, 256)), ops)
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


# --------------------------------------------------------------------------------------------------
# 3. Everything around the core (report.py): statistics, preview, saving; then the picture and the result.


def tensorize(args: TensorizeInput, cfg: LabConfig, reporter: Reporter | None = None) -> ToolOutput:
    """Turn an image into a tensor as the arguments describe; report its numbers, code and a picture."""

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
    counts = report.histogram(core)
    stats = report.stats(counts, core.lut, p.channels)
    layout = ("N" if args.batch else "") + args.layout
    saved = None
    if args.save != "none":
        meta = {
            "layout": layout,
            "normalize": args.normalize,
            "mode": args.mode,
            "source": source.description[:200],
        }
        saved = report.save_tensor(x, args, cfg, meta)
    # 4. Picture.
    reporter.progress(3, 4, "drawing")
    reporter.check_cancelled()
    png = picture.draw(core, counts, p.channels, args.normalize)
    picture_path = new_output_path(cfg, "plots", ".png")
    picture_path.write_bytes(png)
    inline = to_inline_png(png)  # already compact: re-encoded only if over the inline limits
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
        preview=report.preview(x, args, p.channels),
        preview_size=args.preview_size,
        saved=saved,
        picture_path=str(picture_path),
        picture_uri=output_uri(cfg, picture_path),
        notes=p.notes,
        view=report.view_sample(core),
        aspect_change=p.aspect_change,
    )
    reporter.progress(4, 4, "done")
    summary = (
        f"{source.description if source.kind != 'path' else im.format or 'image'} -> tensor {tuple(x.shape)} "
        f"{str(x.dtype).replace('torch.', '')} ({layout}), {result.size_bytes:,} bytes; "
        + "; ".join(
            f"{s.channel}: min {s.min:.4g} max {s.max:.4g} mean {s.mean:.4g} std {s.std:.4g}" for s in stats
        )
    )
    if p.notes:
        summary = "\n".join(["Note: " + n for n in p.notes] + [summary])
    return ToolOutput(
        result=result,
        images=[InlineImage(png=inline, caption="image, channel heatmaps, histograms")],
        summary=summary,
    )

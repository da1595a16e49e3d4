"""Arguments and result of tensorize_image (pydantic only: importing this module loads no torch)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from tools.common import InvalidArgument, ToolInput

MAX_SIDE = 16384
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNELS = {"L": ("L",), "RGB": ("R", "G", "B"), "RGBA": ("R", "G", "B", "A")}

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
        description="Resize before tensorizing: an int sets the LONGEST side (aspect kept); [width, height] sets "
        "both (the aspect changes unless it matches: the result then says by how much). For torchvision's "
        "Resize(256), which sets the SHORTER side, use shorter_side=256. Bilinear, antialiased (PIL).",
    )
    shorter_side: Side | None = Field(
        None,
        description="Resize so that the shorter side is this many pixels, aspect kept, exactly as torchvision's "
        "Resize(int): the longer side becomes int(shorter_side * long / short) (truncated). Instead of resize.",
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


class TensorView(BaseModel):
    width: int = Field(description="Sampled pixels per row.")
    height: int = Field(description="Sampled rows.")
    stride: int = Field(
        ge=1, description="Sample (i, j) is tensor pixel (row i * stride, column j * stride)."
    )
    pixels_b64: str = Field(
        description="base64 of height x width x channels uint8: the raw levels of the sampled pixels (HWC)."
    )
    lut_b64: str = Field(
        description="base64 of channels x 256 float32 little-endian: the tensor value each uint8 level became."
    )


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
        description="Things worth knowing about this conversion (dropped alpha, 16-bit, a changed aspect ratio...)."
    )
    aspect_change: float | None = Field(
        None,
        description="Set when the resize changed the aspect ratio by more than 1%: (new width / new height) / "
        "(old width / old height); 1.56 means stretched 1.56x horizontally, 0.64 squeezed.",
    )
    view: TensorView = Field(
        description="A pixel sample and the level -> value table, for the interactive view."
    )

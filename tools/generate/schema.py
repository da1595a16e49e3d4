"""Arguments and result of generate_image (pydantic only: importing this module loads no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from tools.common import InvalidArgument, ToolInput

SchedulerName = Literal["default", "ddim", "euler", "euler_a", "dpm++", "pndm"]
SHOW_FRAMES = 6
BUILTIN_GUIDANCE = 3.0  # measured best on the adherence benchmark (bench/bench_adherence.py)
SD_GUIDANCE = 7.5


class GenerateInput(ToolInput):
    """Arguments of generate_image."""

    prompt: str = Field(
        description="What to draw. The built-in model knows simple scenes: 'a small red circle in the top left "
        "on a blue background' (colours, circle/square/triangle, small/medium/large, top left/top right/"
        "bottom left/bottom right/center, background colour).",
        max_length=4000,
    )
    negative_prompt: str = Field(
        "", description="What to steer away from (used with guidance_scale > 1).", max_length=4000
    )
    model: str = Field(
        "builtin",
        description="'builtin' or the name of a --model-dir folder (see list_models).",
        min_length=1,
        max_length=200,
    )
    steps: int = Field(20, ge=1, le=1000, description="Denoising steps (capped by the server's max_steps).")
    guidance_scale: float | None = Field(
        None,
        ge=0.0,
        le=30.0,
        allow_inf_nan=False,
        description="Classifier-free guidance: 1 = off, higher follows the prompt more. Default: "
        f"{BUILTIN_GUIDANCE} for the built-in model, {SD_GUIDANCE} for Stable Diffusion folders.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Same seed and arguments, same picture.")
    width: int | None = Field(None, ge=8, le=8192, description="Pixels; default the model's native size.")
    height: int | None = Field(None, ge=8, le=8192, description="Pixels; default the model's native size.")
    scheduler: SchedulerName = Field(
        "default",
        description="Sampler: default (the model's own), ddim, euler, euler_a (ancestral), dpm++ "
        "(DPM-Solver++ multistep), pndm.",
    )
    num_images: int = Field(
        1,
        ge=1,
        le=64,
        description="Images from one call (capped by the server's max_images); "
        "image i uses the generator seeded with `seed` in one batch.",
    )
    init_image: str | None = Field(
        None,
        description="Image-to-image: start from this picture (a path under an allowed folder, a data:image/...;"
        "base64 URI, bare base64, or an mllab://outputs/... URI from an earlier call). Resized to width x height.",
    )
    strength: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="With init_image: how much is redrawn. Near 0 keeps the input, 1 ignores it; "
        "steps x strength denoising steps run (at least 1).",
    )
    strengths: list[float] | None = Field(
        None,
        min_length=2,
        max_length=6,
        description="With init_image: a strength sweep, 2-6 strengths (each 0-1) run with the same seed; returns "
        "one strip (input, then one frame per strength) and per-strength figures. Replaces `strength`.",
    )
    lora: str | None = Field(
        None,
        max_length=40,
        description="A word taught with teach_image_model: its lora_id (listed at mllab://image-loras). Loads "
        "the adapter (LoRA + the word's embedding) onto the built-in model for this call.",
    )
    lora_scale: float = Field(
        1.0,
        ge=0.0,
        le=2.0,
        allow_inf_nan=False,
        description="With `lora`: how strongly the LoRA applies (0 = the base UNet with only the word's "
        "embedding, 1 = as trained).",
    )
    show_steps: bool = Field(
        False,
        description="Also return a strip: the model's prediction of the final image at several steps, each "
        "frame labelled with its step, timestep t and noise level; img2img starts with the input and the "
        "noised start.",
    )

    # latents and hires fix (issue 13): nothing extra runs unless these are given
    show_latents: bool = Field(
        False,
        description="Also return the final latent (what the VAE decodes) as one heatmap per channel next to the "
        "decoded image, with its shape (4x16x16 for a 64 px built-in image) and per-channel statistics.",
    )
    hires_scale: float | None = Field(
        None,
        gt=1.0,
        le=4.0,
        allow_inf_nan=False,
        description="Hires fix: upscale the final latent by this factor (e.g. 1.5 or 2; the new width and "
        "height must be multiples of the model's size_multiple and within max_side and max_generate_pixels), "
        "then re-sample it at `hires_strength` before decoding. Returns a side-by-side strip: first pass, "
        "plain latent upscale (blurry), re-sampled.",
    )
    hires_strength: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="With hires_scale: how much of the upscaled latent is re-drawn (img2img from the latent, "
        "steps x hires_strength steps). 0 decodes the plain upscaled latent.",
    )

    @model_validator(mode="after")
    def _check_hires(self) -> GenerateInput:
        if self.hires_scale is None:
            if "hires_strength" in self.model_fields_set:
                raise InvalidArgument(
                    "hires_strength",
                    self.hires_strength,
                    "only used with hires_scale; leave it out otherwise",
                )
            return self
        if self.strengths is not None:
            raise InvalidArgument(
                "hires_scale", self.hires_scale, "not with `strengths` (use one `strength`)"
            )
        if self.hires_strength > 0 and int(self.steps * self.hires_strength) < 1:
            raise InvalidArgument(
                "hires_strength",
                self.hires_strength,
                f"0 (plain upscale) or at least {1 / self.steps:.3g} so that with steps={self.steps} one step "
                "is re-sampled",
            )
        return self

    @model_validator(mode="after")
    def _check_strengths(self) -> GenerateInput:
        if self.strengths is None:
            return self
        if self.init_image is None:
            raise InvalidArgument("strengths", self.strengths, "only used with init_image (image-to-image)")
        if "strength" in self.model_fields_set:
            raise InvalidArgument(
                "strengths", self.strengths, "give either `strength` or `strengths`, not both"
            )
        for s in self.strengths:
            if not 0.0 <= s <= 1.0:
                raise InvalidArgument("strengths", self.strengths, f"each strength between 0 and 1; got {s}")
            if int(self.steps * s) < 1:
                raise InvalidArgument(
                    "strengths",
                    self.strengths,
                    f"with steps={self.steps}, each strength must be at least {1 / self.steps:.3g} "
                    f"so one step is denoised; got {s}",
                )
        if self.num_images != 1:
            raise InvalidArgument(
                "num_images", self.num_images, "1 with `strengths` (one image per strength)"
            )
        if self.show_steps:
            raise InvalidArgument(
                "show_steps", self.show_steps, "false with `strengths` (use one `strength`)"
            )
        return self


class TokenInfo(BaseModel):
    ids: list[int] = Field(description="Token ids the tokenizer produced (start and end tokens included).")
    tokens: list[str] = Field(description="The same tokens as text ('</w>' marks the end of a word).")
    count: int = Field(description="Number of tokens kept.")
    max_length: int = Field(description="The text encoder's limit (77 for Stable Diffusion).")
    truncated: bool = Field(description="Whether the prompt was longer than max_length and cut.")
    dropped_text: str = Field("", description="The tokens that were cut off, as text.")


class Shapes(BaseModel):
    text_embedding: list[int] = Field(
        description="[batch, tokens, width] of the text encoder's output "
        "(batch doubles with classifier-free guidance: unconditional + prompt)."
    )
    latent: list[int] = Field(description="[images, channels, h, w] of the latent the UNet denoises.")
    image: list[int] = Field(description="[images, 3, height, width] of the decoded picture.")


class Timings(BaseModel):
    load_s: float = Field(description="Loading the pipeline (0 when it was already cached).")
    encode_s: float = Field(description="Tokenizer + text encoder.")
    denoise_s: float = Field(
        description="The denoising loop (UNet + scheduler), init-image encoding included."
    )
    decode_s: float = Field(description="VAE decoder, latents to pixels.")
    total_s: float = Field(description="The whole call.")


class SavedImage(BaseModel):
    path: str = Field(description="Full-size PNG under the output folder.")
    uri: str = Field(description="Its resource URI; pass it as init_image to continue from it.")
    width: int = Field(description="Width in pixels.")
    height: int = Field(description="Height in pixels.")


class UnknownWord(BaseModel):
    word: str = Field(description="A word of the prompt the built-in model never saw in training.")
    tokens: list[str] = Field(
        description="The tokens the tokenizer made of it (pieces with no learnt meaning)."
    )
    close_words: list[str] = Field(
        default_factory=list,
        description="Trained words spelt like it (a typo or plural?), best first; empty when none is close.",
    )


class ChannelStats(BaseModel):
    channel: int = Field(description="Channel index.")
    mean: float = Field(description="Mean of the channel.")
    std: float = Field(description="Standard deviation of the channel.")
    min: float = Field(description="Smallest value.")
    max: float = Field(description="Largest value.")


class LatentView(BaseModel):
    shape: list[int] = Field(description="[channels, h, w] of the latent decoded into the first image.")
    downscale: int = Field(description="Image pixels per latent pixel along a side (the VAE's factor).")
    channels: list[ChannelStats] = Field(description="Per-channel statistics, one entry per channel.")
    colour_limit: float = Field(
        description="The heatmaps share one colour scale from -colour_limit (blue) to +colour_limit (red)."
    )
    picture: SavedImage = Field(description="The decoded image, then one heatmap per channel.")


class Sharpness(BaseModel):
    """Variance of the Laplacian of the grey image (0-255) at the hires size: higher means more and stronger
    edges. Only pictures of the same size compare."""

    plain_upscale: float = Field(description="The upscaled latent decoded as is.")
    resampled: float = Field(description="The upscaled latent after re-sampling (the returned image).")


class HiresInfo(BaseModel):
    scale: float = Field(description="The latent upscale factor.")
    strength: float = Field(
        description="hires_strength: share of the denoising re-run on the upscaled latent."
    )
    steps_run: int = Field(description="Re-sampling steps run (steps x hires_strength; 0 = plain upscale).")
    first_pass_latent: list[int] = Field(description="[images, channels, h, w] before upscaling.")
    upscaled_latent: list[int] = Field(description="[images, channels, h, w] after upscaling (bilinear).")
    first_pass: SavedImage = Field(description="The first pass's image at the native size.")
    plain_upscale: SavedImage = Field(description="The upscaled latent decoded without re-sampling.")
    strip: SavedImage = Field(
        description="First pass (enlarged), plain latent upscale, re-sampled, side by side."
    )
    sharpness: Sharpness = Field(description="How sharp each picture of the strip is.")
    seconds: float = Field(description="Time spent on upscaling and re-sampling (decoding excluded).")


class StrengthPoint(BaseModel):
    strength: float = Field(description="The strength of this run.")
    steps_run: int = Field(description="Denoising steps it ran (steps x strength).")
    mean_abs_diff: float = Field(
        description="Mean absolute pixel difference to the input (0-255 scale): how much was redrawn."
    )
    image: SavedImage = Field(description="Its image, saved full size.")


class GenerateResult(BaseModel):
    model: str = Field(
        description="The model used: 'builtin' or a --model-dir folder's name (see list_models)."
    )
    model_path: str = Field(description="Where its weights were loaded from.")
    device: str = Field(description="cuda, mps or cpu.")
    dtype: str = Field(description="float16 on GPUs, float32 on CPU.")
    mode: Literal["text2img", "img2img"] = Field(description="img2img when init_image was given.")
    prompt: str = Field(description="The prompt as given.")
    negative_prompt: str = Field(description="The negative prompt ('' for none).")
    seed: int = Field(description="The seed of the starting noise: same seed and arguments, same picture.")
    steps: int = Field(description="Steps asked for.")
    steps_run: int = Field(description="Denoising steps actually run (steps x strength for img2img).")
    scheduler: str = Field(description="Scheduler class used.")
    guidance_scale: float = Field(
        description="Classifier-free guidance used (the model's default if not given)."
    )
    strength: float | None = Field(None, description="img2img only.")
    width: int = Field(description="Image width in pixels.")
    height: int = Field(description="Image height in pixels.")
    images: list[SavedImage] = Field(description="The generated images, saved full size.")
    tokens: TokenInfo = Field(description="How the tokenizer split the prompt.")
    negative_tokens: TokenInfo | None = Field(None, description="The same for the negative prompt.")
    shapes: Shapes = Field(description="Tensor shapes at each stage.")
    timings: Timings = Field(description="Seconds spent in each stage.")
    pipeline_cached: bool = Field(description="Whether the pipeline was already loaded before this call.")
    steps_shown: list[int] = Field(default_factory=list, description="show_steps: step numbers in the strip.")
    steps_strip: SavedImage | None = Field(None, description="show_steps: the saved strip.")
    frame_labels: list[str] = Field(
        default_factory=list,
        description="The labels of the strip's frames, left to right (show_steps: 'input', 'noised start "
        "(strength s)' in img2img, then 'step k/n, t=..., noise ...'; strengths: 'input', then 'strength s').",
    )
    sweep: list[StrengthPoint] = Field(
        default_factory=list, description="strengths: one entry per strength, in the order given."
    )
    sweep_strip: SavedImage | None = Field(
        None, description="strengths: the saved strip (input, then one frame per strength)."
    )
    unknown_words: list[UnknownWord] = Field(
        default_factory=list,
        description="Built-in model: the prompt's words it never saw in training, and their tokens. The picture "
        "most likely ignores them; rephrase with words from list_models' vocabulary.",
    )
    # latents and hires fix (issue 13)
    latent: LatentView | None = Field(None, description="show_latents: the final latent, channel by channel.")
    hires: HiresInfo | None = Field(None, description="hires_scale: the hires fix's passes and pictures.")

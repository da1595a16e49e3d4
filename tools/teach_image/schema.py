"""Arguments and result of teach_image_model (pydantic only: importing this module loads no torch)."""

from __future__ import annotations

import re
import string

from pydantic import BaseModel, Field, field_validator, model_validator

from tools.common import InvalidArgument, ToolInput
from tools.generate.schema import SavedImage

PLACEHOLDERS = ("word", "colour", "background", "position", "size")
DEFAULT_TEMPLATE = "a {size} {colour} {word} in the {position} on a {background} background"
WORD_RE = re.compile(r"^[a-z]{2,20}$")


class TeachImageInput(ToolInput):
    """Teach the built-in image model a new word from a few pictures (a LoRA + one new token embedding)."""

    word: str = Field(
        description="The new word, 2-20 lower-case letters (a-z), not already in the model's vocabulary "
        "(list_models), e.g. 'star' or 'heart'.",
        min_length=2,
        max_length=20,
    )
    images: list[str] = Field(
        min_length=4,
        max_length=20,
        description="4-20 pictures of it: file paths under an allowed folder, data:image/...;base64 URIs, bare "
        "base64, or mllab://outputs/... URIs from earlier calls. Resized to 64x64 (the model's native size); "
        "one flat-coloured thing on a plain background teaches best.",
    )
    captions: list[str] | None = Field(
        None,
        description="One caption per image, each containing the word (e.g. 'a red star in the top left on a "
        "blue background'). Default: `template` filled in from each picture's pixels.",
    )
    template: str | None = Field(
        None,
        max_length=300,
        description="Caption template filled in per image from its pixels: {word}, {colour}, {background}, "
        "{position}, {size} (read back by the project's pixel checker). Default: '" + DEFAULT_TEMPLATE + "'.",
    )
    augment: int = Field(
        8,
        ge=0,
        le=32,
        description="Re-coloured, moved copies of each flat-coloured picture trained alongside it (the picture's "
        "own outline re-drawn in other colours and places, captioned by the template), so the word learns the "
        "outline and not the pictures' colours and places. Only with template captions, and only what the "
        "template names ({colour}, {background}, {position}) varies; 0 = none.",
    )
    rank: int = Field(4, ge=1, le=64, description="LoRA rank r: parameters = r x (in + out) per layer.")
    steps: int = Field(800, ge=1, le=5000, description="Optimizer steps (stopped earlier by time_budget_s).")
    learning_rate: float = Field(
        2e-3, gt=0.0, le=0.1, allow_inf_nan=False, description="AdamW learning rate of the LoRA pairs."
    )
    embedding_learning_rate: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="AdamW learning rate of the new word's embedding row (one vector: it moves far, fast).",
    )
    prior_weight: float = Field(
        2.0,
        ge=0.0,
        le=4.0,
        allow_inf_nan=False,
        description="Prior preservation: weight of the loss on the model's old scenes trained alongside (half "
        "of each batch; the target is the base model's own prediction). 0 trains on your images alone (old "
        "words may drift).",
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="Same seed and arguments, same adapter and pictures."
    )
    lora_scales: list[float] = Field(
        [0.0, 0.5, 1.0],
        min_length=1,
        max_length=5,
        description="LoRA scales shown in the before/after grid (each 0-2; 0 = base UNet with the new "
        "embedding only).",
    )
    sample_steps: int = Field(20, ge=1, le=100, description="Denoising steps of each grid picture.")
    grid_prompts: list[str] | None = Field(
        None,
        min_length=1,
        max_length=6,
        description="Prompts of the grid, each containing the word. Default: 4 with varied colours and corners.",
    )
    time_budget_s: float | None = Field(
        None,
        ge=1.0,
        le=3600.0,
        allow_inf_nan=False,
        description="Stop training after this many seconds (at most the server's max_time_budget_s). Default: "
        "110 s, or max_time_budget_s if the server allows less.",
    )

    @field_validator("word")
    @classmethod
    def _word(cls, v: str) -> str:
        if not WORD_RE.match(v):
            raise InvalidArgument(
                "word", v, "2-20 lower-case letters a-z only (no spaces, digits or capitals)"
            )
        return v

    @model_validator(mode="after")
    def _texts(self) -> TeachImageInput:
        if self.captions is not None and self.template is not None:
            raise InvalidArgument("template", self.template, "give either `captions` or `template`, not both")
        if self.captions is not None:
            if len(self.captions) != len(self.images):
                raise InvalidArgument(
                    "captions",
                    self.captions,
                    f"one per image: {len(self.images)} images, {len(self.captions)} captions",
                )
            for c in self.captions:
                if self.word not in re.findall(r"[a-z]+", c.lower()):
                    raise InvalidArgument("captions", c, f"every caption must contain the word {self.word!r}")
        if self.template is not None:
            names = [f[1] for f in string.Formatter().parse(self.template) if f[1] is not None]
            bad = [n for n in names if n not in PLACEHOLDERS]
            if bad or "word" not in names:
                raise InvalidArgument(
                    "template",
                    self.template,
                    f"placeholders allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; {{word}} is required"
                    + (f" (unknown: {bad})" if bad else ""),
                )
        for s in self.lora_scales:
            if not 0.0 <= s <= 2.0:
                raise InvalidArgument("lora_scales", self.lora_scales, f"each scale between 0 and 2; got {s}")
        for p in self.grid_prompts or []:
            if self.word not in re.findall(r"[a-z]+", p.lower()) or len(p) > 300:
                raise InvalidArgument(
                    "grid_prompts",
                    p,
                    f"each prompt must contain the word {self.word!r} (at most 300 characters)",
                )
        return self


class SizeAtRank(BaseModel):
    rank: int = Field(description="LoRA rank r.")
    parameters: int = Field(description="Trainable LoRA parameters: r x sum over layers of (in + out).")
    bytes_fp32: int = Field(description="parameters x 4 bytes (float32), the tensors alone.")


class LossCurve(BaseModel):
    steps: list[int] = Field(description="Optimizer step numbers.")
    loss: list[float] = Field(description="v-prediction MSE on the taught images at each step.")
    prior_loss: list[float] = Field(
        description="On the old-world scenes trained alongside: MSE against the base model's own prediction "
        "(0 while the adapter leaves old prompts unchanged)."
    )


class TeachImageResult(BaseModel):
    lora_id: str = Field(description="Pass it as generate_image's `lora`; listed at mllab://image-loras.")
    word: str = Field(description="The word taught.")
    token_id: int = Field(description="Its new token id in the tokenizer (the vocabulary grew by one).")
    tokens_before: list[str] = Field(description="How the tokenizer split the word before teaching.")
    captions: list[str] = Field(description="The caption each image was trained with.")
    augmented: int = Field(description="Re-coloured, moved copies of the pictures trained alongside them.")
    not_flat: list[int] = Field(
        description="Indices of pictures that are not one flat colour on another, so got no copies."
    )
    rank: int = Field(description="LoRA rank.")
    lora_layers: int = Field(
        description="Linear layers wrapped: every to_q, to_k, to_v, to_out.0 of the UNet."
    )
    lora_parameters: int = Field(description="Trainable LoRA parameters (peft's count).")
    embedding_parameters: int = Field(description="The new embedding row (the text encoder's width).")
    unet_parameters: int = Field(description="The frozen UNet's parameters, for scale.")
    parameter_formula: str = Field(description="How lora_parameters follows from the rank and the layers.")
    size_by_rank: list[SizeAtRank] = Field(description="What the adapter would weigh at other ranks.")
    adapter_bytes: int = Field(description="Size of the saved LoRA file (safetensors, float32).")
    embedding_bytes: int = Field(description="Size of the saved embedding file.")
    adapter_path: str = Field(
        description="Folder with pytorch_lora_weights.safetensors + learned_embeds.safetensors."
    )
    steps_run: int = Field(description="Optimizer steps run.")
    train_seconds: float = Field(description="Training time.")
    stopped_by_time: bool = Field(description="Whether time_budget_s stopped training before `steps`.")
    curve: LossCurve = Field(description="Loss at every step.")
    grid_prompts: list[str] = Field(description="The grid's rows.")
    grid_columns: list[str] = Field(description="The grid's columns: before teaching, then each LoRA scale.")
    grid: SavedImage = Field(description="Before/after grid, saved full size.")
    loss_plot: SavedImage = Field(description="Loss curve and adapter size against rank.")
    usage: str = Field(description="How to use the adapter in generate_image.")

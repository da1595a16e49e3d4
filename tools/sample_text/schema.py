"""Arguments and results of sample_text (pydantic only: importing this module loads no torch)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.common import ToolInput


class SampleTextInput(ToolInput):
    """Generate text from a trained tiny GPT (or a local GPT-2-style model), showing each next-token choice."""

    run_id: str | None = Field(
        None, max_length=100, description="A train_tiny_gpt run (see mllab://gpt-runs)."
    )
    model_path: str | None = Field(
        None,
        max_length=4096,
        description="Or a local causal-LM folder (config.json, weights, tokenizer) under the allowed folders.",
    )
    prompt: str = Field("\n", min_length=1, max_length=2000, description="The text to continue.")
    max_new_tokens: int = Field(60, ge=1, le=500, description="Tokens to generate.")
    temperature: float = Field(
        1.0,
        ge=0.0,
        le=5.0,
        allow_inf_nan=False,
        description="Divides the logits before softmax: < 1 sharper (safer), > 1 flatter (wilder); 0 = greedy.",
    )
    top_k: int | None = Field(
        None, ge=1, le=100_000, description="Keep only the k most likely tokens (None = all)."
    )
    top_p: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Nucleus sampling: keep the most likely tokens until their probability reaches p (None = all).",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds the sampling: same seed, same text.")
    show_steps: int = Field(6, ge=1, le=12, description="How many first steps the picture shows.")


class Choice(BaseModel):
    token: str = Field(description="A candidate token's text.")
    probability: float = Field(description="Its probability under the sampling distribution.")


class GeneratedToken(BaseModel):
    token: str = Field(description="The token chosen.")
    id: int = Field(description="Its id.")
    probability: float = Field(
        description="Its probability under the sampling distribution (after temperature, top-k, top-p)."
    )
    model_probability: float = Field(
        description="Its probability under the model itself (temperature 1, no filter)."
    )
    alternatives: list[Choice] = Field(
        description="The 5 most likely tokens at this step, chosen one included."
    )


class SampleTextResult(BaseModel):
    model: str = Field(description="Which model generated.")
    prompt: str = Field(description="The prompt.")
    text: str = Field(description="The generated continuation.")
    tokens: list[GeneratedToken] = Field(
        description="Every generated token with its probability and alternatives."
    )
    mean_log_probability: float = Field(
        description="Mean log model-probability of the generated tokens: lower = more surprising text."
    )
    settings: dict[str, float | int | None] = Field(
        description="temperature, top_k, top_p, seed, max_new_tokens."
    )
    picture_path: str = Field(
        description="Saved picture: the first steps' top-5 distributions, chosen token marked."
    )
    picture_uri: str = Field(description="The picture as an mllab://outputs/ resource.")

"""Arguments and results of train_tiny_gpt (pydantic only: importing this module loads no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tools.common import ToolInput

Preset = Literal["quick", "nanogpt_cpu"]
Corpus = Literal["concepts_en", "concepts_zh", "arithmetic", "names"]

# The presets. `quick` fits one tool call on 2 busy cores (< 40 s); `nanogpt_cpu` is the CPU recipe of nanoGPT's
# README (shakespeare_char with --device=cpu): 4 layers, 4 heads, 128 wide, context 64, batch 12, 2000 steps.
PRESETS: dict[str, dict[str, float | int]] = {
    "quick": dict(
        n_layer=2, n_head=4, n_embd=64, block_size=32, dropout=0.0, batch_size=32, max_steps=400,
        learning_rate=3e-3, warmup_steps=30, eval_interval=100, eval_iters=8, time_budget_s=25.0,
    ),
    "nanogpt_cpu": dict(
        n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, batch_size=12, max_steps=2000,
        learning_rate=1e-3, warmup_steps=100, eval_interval=250, eval_iters=20, time_budget_s=1800.0,
    ),
}  # fmt: skip


class TrainTinyGptInput(ToolInput):
    """Train a tiny GPT (a transformers GPT-2) from scratch on CPU on your text or a built-in corpus."""

    preset: Preset = Field(
        "quick",
        description="quick: 2 layers x 4 heads x 64 wide, context 32, batch 32, 400 steps, stopped at 25 s (one call). nanogpt_cpu: nanoGPT's "
        "CPU recipe (4 x 4 x 128, context 64, batch 12, 2000 steps; minutes: run it as a job). Any size or "
        "training argument you give overrides the preset's value.",
    )
    corpus: Corpus | None = Field(
        None,
        description="Built-in text when neither `text` nor `corpus_path` is given (default concepts_en: the "
        "concept knowledge base in English; concepts_zh; arithmetic like 12+7=19; made-up names).",
    )
    text: str | None = Field(
        None, max_length=5_000_000, description="Train on this inline text (must be longer than the context)."
    )
    corpus_path: str | None = Field(
        None,
        max_length=4096,
        description="Train on a .txt/.md file, or all .txt/.md under a folder (allowed folders).",
    )
    tokenizer: Literal["char", "bpe"] = Field(
        "char",
        description="char: one token per character (as nanoGPT's shakespeare_char). bpe: byte-level BPE.",
    )
    bpe_merges: int = Field(
        500, ge=1, le=16_000, description="tokenizer='bpe': merges to learn (vocab = 257 + merges)."
    )
    n_layer: int | None = Field(
        None, ge=1, le=8, description="Transformer blocks (1-8); None = the preset's."
    )
    n_head: int | None = Field(
        None, ge=1, le=16, description="Attention heads per block; must divide n_embd."
    )
    n_embd: int | None = Field(None, ge=16, le=384, description="Embedding width (16-384).")
    block_size: int | None = Field(None, ge=16, le=512, description="Context window in tokens (16-512).")
    dropout: float | None = Field(
        None, ge=0.0, le=0.5, allow_inf_nan=False, description="Dropout while training."
    )
    batch_size: int | None = Field(None, ge=1, le=128, description="Sequences per step.")
    max_steps: int | None = Field(None, ge=1, le=20_000, description="Optimizer steps.")
    learning_rate: float | None = Field(
        None,
        gt=0.0,
        le=0.1,
        allow_inf_nan=False,
        description="Peak AdamW learning rate (cosine decay to 1/10).",
    )
    warmup_steps: int | None = Field(None, ge=0, le=5000, description="Linear warm-up steps.")
    eval_interval: int | None = Field(
        None, ge=1, le=5000, description="Evaluate (val loss), sample and report progress every N steps."
    )
    eval_iters: int | None = Field(None, ge=1, le=200, description="Validation batches per evaluation.")
    time_budget_s: float | None = Field(
        None, gt=0.0, le=86_400.0, allow_inf_nan=False, description="Stop training after this many seconds."
    )
    val_fraction: float = Field(
        0.1,
        ge=0.02,
        le=0.5,
        allow_inf_nan=False,
        description="The last share of the tokens kept for validation.",
    )
    sample_prompt: str = Field(
        "\n", min_length=1, max_length=200, description="Samples during training continue this prompt."
    )
    sample_tokens: int = Field(60, ge=1, le=500, description="Tokens per sample shown during training.")
    attention_prompt: str | None = Field(
        None,
        min_length=2,
        max_length=400,
        description="Text whose attention maps are drawn after training (default: the start of the val split).",
    )
    seed: int = Field(
        1337, ge=0, le=2**31 - 1, description="Seeds initial weights, batches, dropout and samples."
    )


class ParameterBreakdown(BaseModel):
    embeddings: int = Field(
        description="Token + position embeddings (the output layer shares the token ones)."
    )
    attention: int = Field(description="Q, K, V and output projections of every block.")
    mlp: int = Field(description="The two linear layers of every block's feed-forward network.")
    layer_norm: int = Field(description="LayerNorm scales and shifts.")


class History(BaseModel):
    step: list[int] = Field(description="Steps at which the model was evaluated (0 = before training).")
    train_loss: list[float] = Field(
        description="Mean training-batch loss since the previous evaluation (step 0: on fixed train batches), nats."
    )
    val_loss: list[float] = Field(description="Loss on fixed validation batches, nats per token.")
    val_perplexity: list[float] = Field(
        description="exp(val_loss): the effective number of choices per token."
    )
    learning_rate: list[float] = Field(description="Learning rate at that step.")


class Baselines(BaseModel):
    uniform_loss: float = Field(description="ln(vocab size): guessing every token equally likely, nats.")
    bigram_loss: float = Field(
        description="A bigram count model (next token from the previous one) fitted on the train split, scored on "
        "the whole val split, nats per token."
    )
    bigram_smoothing: float = Field(
        description="The add-alpha smoothing of the bigram counts (best of 1, 0.1, 0.01)."
    )
    uniform_perplexity: float = Field(description="exp(uniform_loss) = vocab size.")
    bigram_perplexity: float = Field(description="exp(bigram_loss).")


class Sample(BaseModel):
    step: int = Field(description="Training step when sampled.")
    text: str = Field(
        description="The prompt's continuation (temperature 1, fixed seed): gibberish turning into words."
    )


class HeadFocus(BaseModel):
    layer: int = Field(description="Block, from 0.")
    head: int = Field(description="Head, from 0.")
    top: list[str] = Field(
        description="For the last token of the prompt: the 3 tokens it attends to most, as 'token (weight)'."
    )
    mean_distance: float = Field(
        description="Average distance (in tokens) between a query and what it attends to."
    )


class AttentionView(BaseModel):
    tokens: list[str] = Field(description="The attention prompt's tokens (queries and keys).")
    heads: list[HeadFocus] = Field(description="One entry per layer and head.")
    weights_b64: str = Field(
        description="Every weight, compactly (for the interactive view): for each layer, then each head, the "
        "rows of its T x T map (T = len(tokens)) up to the diagonal (query q attends to keys 0..q; causal, so "
        "the rest is zero), each weight as one byte round(255 w), base64. T (T + 1) / 2 bytes per head."
    )
    picture_path: str = Field(
        description="Saved heatmaps: one per layer and head, query rows over key columns."
    )
    picture_uri: str = Field(description="The heatmaps as an mllab://outputs/ resource.")


class TrainTinyGptResult(BaseModel):
    run_id: str = Field(description="The run's id: sample_text(run_id=...), tokenize_text(tokenizer='run').")
    run_path: str = Field(
        description="Saved folder: AutoModelForCausalLM / AutoTokenizer .from_pretrained(run_path)."
    )
    load_code: str = Field(description="Python that loads the run with transformers and continues a prompt.")
    corpus: str = Field(description="What was trained on.")
    tokenizer: str = Field(description="char or bpe, with details.")
    vocab_size: int = Field(description="Tokens in the vocabulary.")
    train_tokens: int = Field(description="Tokens in the train split.")
    val_tokens: int = Field(description="Tokens in the val split.")
    settings: dict[str, float | int] = Field(description="The effective model and training settings.")
    parameters: int = Field(description="Trainable parameters (the tied output layer counted once).")
    parameter_breakdown: ParameterBreakdown = Field(description="Where the parameters are.")
    history: History = Field(
        description="The curves: losses (nats), val perplexity and learning rate per evaluation."
    )
    baselines: Baselines = Field(description="What the model must beat, on the same val split.")
    final_train_loss: float = Field(
        description="Mean training-batch loss over the last evaluation interval, nats."
    )
    final_val_loss: float = Field(description="Loss on the whole val split after training, nats per token.")
    final_val_perplexity: float = Field(description="exp(final_val_loss).")
    beats_bigram: bool = Field(description="final_val_loss < the bigram baseline's.")
    samples: list[Sample] = Field(description="Samples from sample_prompt at each evaluation.")
    attention: AttentionView = Field(description="The trained model's attention on attention_prompt.")
    steps_run: int = Field(description="Optimizer steps done.")
    stop_reason: Literal["completed", "time_budget"] = Field(description="Why training ended.")
    wall_time_s: float = Field(description="Training time including evaluation and sampling, seconds.")
    tokens_per_s: float = Field(
        description="Training tokens (batch x context x steps) per wall-clock second."
    )
    torch_threads: int = Field(description="CPU threads torch used.")
    picture_path: str = Field(
        description="Saved picture: loss curves against the baselines, and the samples."
    )
    picture_uri: str = Field(description="The picture as an mllab://outputs/ resource.")

"""Arguments and results of tokenize_text (pydantic only: importing this module loads no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tools.common import ToolInput

TokenizerName = Literal["chars", "bytes", "bpe", "builtin_image", "run", "folder"]
Corpus = Literal["concepts_en", "concepts_zh", "arithmetic", "names"]
MAX_TEXT = 4000


class TokenizeTextInput(ToolInput):
    """Split text into tokens the way a language model sees it."""

    text: str | None = Field(
        None,
        max_length=MAX_TEXT,
        description=f"The text to tokenize (up to {MAX_TEXT} characters). Give this or `path`.",
    )
    path: str | None = Field(
        None,
        max_length=4096,
        description="A UTF-8 text file under the allowed folders to tokenize instead of `text`.",
    )
    compare_text: str | None = Field(
        None,
        max_length=MAX_TEXT,
        description="A second text (e.g. the same sentence in Chinese) tokenized the same way, shown side by side.",
    )
    tokenizer: TokenizerName = Field(
        "bpe",
        description="chars: one token per character (id = code point). bytes: one token per UTF-8 byte. "
        "bpe: a byte-level BPE (GPT-2 style) trained now on `corpus` with `bpe_merges` merges. "
        "builtin_image: the built-in image model's text tokenizer (CLIP-style BPE). "
        "run: the tokenizer of a train_tiny_gpt run (`run_id`). "
        "folder: a local tokenizer folder or tokenizer.json (`tokenizer_path`).",
    )
    bpe_merges: int = Field(
        300,
        ge=0,
        le=20_000,
        description="tokenizer='bpe': how many merges to learn (vocabulary = 257 + merges).",
    )
    corpus: Corpus = Field(
        "concepts_en",
        description="tokenizer='bpe': built-in training text (the concept knowledge base in English or Chinese, "
        "generated arithmetic, generated names).",
    )
    corpus_path: str | None = Field(
        None,
        max_length=4096,
        description="tokenizer='bpe': train on this .txt/.md file or folder (allowed folders) instead of `corpus`.",
    )
    run_id: str | None = Field(
        None, max_length=100, description="tokenizer='run': a train_tiny_gpt run id (see mllab://gpt-runs)."
    )
    tokenizer_path: str | None = Field(
        None,
        max_length=4096,
        description="tokenizer='folder': a folder holding tokenizer.json, or the tokenizer.json file itself.",
    )
    show_merges: int = Field(20, ge=0, le=200, description="How many of the first learnt BPE merges to list.")


class Token(BaseModel):
    id: int = Field(description="The token id the model receives.")
    text: str = Field(
        description="The token's text; a piece that is not whole UTF-8 shows as its bytes, e.g. '<e8 8d>'."
    )
    start: int = Field(description="First character of the token in the text (0-based).")
    end: int = Field(description="One past its last character; start == end for added special tokens.")
    special: bool = Field(
        False, description="An added special token (e.g. <|startoftext|>), not from the text."
    )


class Tokenized(BaseModel):
    text: str = Field(description="The text tokenized (cut to 200 characters here when longer).")
    tokens: list[Token] = Field(description="Every token in order (at most 500 listed).")
    n_characters: int = Field(description="Unicode characters in the text.")
    n_bytes: int = Field(description="UTF-8 bytes in the text.")
    n_tokens: int = Field(description="Tokens the model sees (special tokens included).")
    characters_per_token: float = Field(
        description="n_characters / n_tokens: how much text one token carries."
    )
    bytes_per_token: float = Field(description="n_bytes / n_tokens.")
    unknown_tokens: int = Field(description="Tokens that mapped to an unknown-token id (information lost).")


class TokenizeTextResult(BaseModel):
    tokenizer: str = Field(description="Which tokenizer, in words.")
    vocab_size: int = Field(description="Number of distinct token ids the tokenizer has.")
    main: Tokenized = Field(description="The text.")
    compare: Tokenized | None = Field(None, description="The compare_text, when given.")
    first_merges: list[str] = Field(
        description="BPE only: the first merges learnt, in order, as 'a + b -> ab' (Ġ is a space)."
    )
    picture_path: str = Field(
        description="Saved picture: the text with token boundaries coloured, ids underneath."
    )
    picture_uri: str = Field(description="The picture as an mllab://outputs/ resource.")

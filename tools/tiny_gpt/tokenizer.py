"""Tokenizers built with the `tokenizers` library, so a run saves a standard tokenizer.json.

- char: one token per character of the training text (nanoGPT's shakespeare_char), plus <|endoftext|>.
- bpe: GPT-2's byte-level BPE trained on the text with a chosen number of merges. Every byte is in the base
  alphabet, so any text encodes (unseen characters become several byte tokens, never <unk>).
"""

from __future__ import annotations

import json

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOT = "<|endoftext|>"  # GPT-2's separator; id 0 in our tokenizers
UNK = "<|unk|>"  # char tokenizer only: a character the training text never had


def train_char(text: str) -> Tokenizer:
    """One id per distinct character, in code-point order after the special tokens."""
    chars = sorted(set(text))
    vocab = {EOT: 0, UNK: 1} | {ch: i + 2 for i, ch in enumerate(chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every char alone
    tok.decoder = decoders.Fuse()  # join tokens back without spaces
    tok.add_special_tokens([EOT, UNK])
    return tok


def train_bpe(text: str, merges: int) -> Tokenizer:
    """Byte-level BPE (GPT-2's pre-tokenizer and alphabet) with at most `merges` merges learnt from `text`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 byte symbols
    trainer = trainers.BpeTrainer(
        vocab_size=1 + len(alphabet) + merges,
        special_tokens=[EOT],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def learnt_merges(tok: Tokenizer) -> list[tuple[str, str]]:
    """The BPE merges in the order they were learnt (empty for non-BPE models)."""
    model = json.loads(tok.to_str())["model"]
    out = []
    for m in model.get("merges") or []:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        out.append((a, b))
    return out


def to_transformers(tok: Tokenizer, model_max_length: int):
    """Wrap as PreTrainedTokenizerFast, so save_pretrained writes a folder AutoTokenizer loads."""

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=UNK if tok.token_to_id(UNK) is not None else None,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )

"""The built-in model's tokenizer files (CLIP-style BPE vocab.json + merges.txt) written from the scene vocabulary.

A merge list learnt naively splits words (a merge from "right" can break "triangle" into letters), so the
merges are built word by word against a simulation of the BPE algorithm: each word gets the merges it still
needs after the earlier ones have been applied. Later merges rank lower, so they never change an earlier word.
Unknown words fall back to single characters, which are all in the vocabulary.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from tools.scenes import PUNCTUATION, VOCABULARY

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 32  # positions of the built-in text encoder, special tokens included
SUFFIX = "</w>"


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE on one lower-case word: repeatedly merge the adjacent pair of lowest rank."""
    parts = list(word[:-1]) + [word[-1] + SUFFIX]
    while len(parts) > 1:
        pairs = [
            (ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:], strict=False))
        ]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


def build_vocab(words: tuple[str, ...] = VOCABULARY) -> tuple[dict[str, int], list[tuple[str, str]]]:
    chars = sorted(set(string.ascii_lowercase + string.digits + "".join(PUNCTUATION) + "'-!?;:"))
    tokens = chars + [c + SUFFIX for c in chars]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        parts = _bpe(word, ranks)
        while len(parts) > 1:  # add the merge of the first two pieces until the word is one token
            pair = (parts[0], parts[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            if pair[0] + pair[1] not in tokens:
                tokens.append(pair[0] + pair[1])
            parts = _bpe(word, ranks)
    for word in words:
        assert _bpe(word, ranks) == [word + SUFFIX], word
    vocab = {t: i for i, t in enumerate(tokens + [BOS, EOS])}
    return vocab, merges


def write_tokenizer_files(out_dir: str | Path) -> Path:
    """vocab.json + merges.txt (with the '#version' header CLIP's files carry) in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab()
    (out / "vocab.json").write_text(json.dumps(vocab, indent=0))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return out


def load_tokenizer(files_dir: str | Path):
    """A transformers CLIPTokenizer from the files write_tokenizer_files made."""
    from transformers import CLIPTokenizer

    d = Path(files_dir)
    merges = [tuple(line.split()) for line in (d / "merges.txt").read_text().splitlines()[1:] if line.strip()]
    vocab = json.loads((d / "vocab.json").read_text())
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LENGTH)  # type: ignore[arg-type]  # tuples are what it needs

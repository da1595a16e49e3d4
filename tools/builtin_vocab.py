"""The built-in model's tokenizer files (CLIP-style BPE vocab.json + merges.txt) written from the scene vocabulary.

A merge list learnt naively splits words (a merge from "right" can break "triangle" into letters), so the
merges are built word by word against a simulation of the BPE algorithm: each word gets the merges it still
needs after the earlier ones have been applied. Later merges rank lower, so they never change an earlier word.
Unknown words fall back to single characters, which are all in the vocabulary.

The vocabulary grew once: version 1 (tools/scenes.py's words) ends with the start and end tokens; the
phrasing grammar's extra words (tools/phrasing.py) come after them, so every version-1 token keeps its id and a
text encoder trained on version 1 only needs new embedding rows (train_image_model/train_builtin_model.py adds them).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from transformers import CLIPTokenizer

from tools import phrasing
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


def _add_merges(word: str, tokens: list[str], merges: list[tuple[str, str]], ranks: dict) -> None:
    """Append the merges (and merged tokens) that make `word` one token, after the existing ones."""
    parts = _bpe(word, ranks)
    while len(parts) > 1:  # add the merge of the first two pieces until the word is one token
        pair = (parts[0], parts[1])
        ranks[pair] = len(merges)
        merges.append(pair)
        if pair[0] + pair[1] not in tokens:
            tokens.append(pair[0] + pair[1])
        parts = _bpe(word, ranks)


def build_vocab(
    words: tuple[str, ...] = VOCABULARY, extra_words: tuple[str, ...] = phrasing.VOCABULARY
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Token -> id and the merge list: characters, `words`, start/end tokens, then `extra_words` not yet in."""
    chars = sorted(set(string.ascii_lowercase + string.digits + "".join(PUNCTUATION) + "'-!?;:"))
    tokens = chars + [c + SUFFIX for c in chars]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        _add_merges(word, tokens, merges, ranks)
    tokens += [BOS, EOS]
    for word in extra_words:
        _add_merges(word, tokens, merges, ranks)
    for word in (*words, *extra_words):
        assert _bpe(word, ranks) == [word + SUFFIX], word
    vocab = {t: i for i, t in enumerate(tokens)}
    return vocab, merges


def write_tokenizer_files(out_dir: str | Path, version: int = 2) -> Path:
    """vocab.json + merges.txt (with the '#version' header CLIP's files carry) in out_dir.

    version 1: the scene words only (the vocabulary of the model trained before the phrasing grammar);
    version 2: also every word of tools/phrasing.py.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab(extra_words=phrasing.VOCABULARY if version >= 2 else ())
    (out / "vocab.json").write_text(json.dumps(vocab, indent=0))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return out


def load_tokenizer(files_dir: str | Path):
    """A transformers CLIPTokenizer from the files write_tokenizer_files made."""

    d = Path(files_dir)
    merges = [tuple(line.split()) for line in (d / "merges.txt").read_text().splitlines()[1:] if line.strip()]
    vocab = json.loads((d / "vocab.json").read_text())
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LENGTH)  # type: ignore[arg-type]  # tuples are what it needs

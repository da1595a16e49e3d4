"""Our byte-level BPE (trained with the `tokenizers` library) against a by-hand BPE written from the algorithm.

The reference shares nothing with the library: GPT-2's pre-tokenizer regex, GPT-2's byte-to-character table,
a plain merge loop that counts pairs and merges the most frequent, and an encoder that applies merges by rank.
"""

from __future__ import annotations

from collections import Counter

import regex

from tools.tiny_gpt.corpus import builtin_corpus
from tools.tiny_gpt.tokenizer import EOT, learnt_merges, train_bpe

GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: printable bytes map to themselves, the others to characters from 256 on."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


B2U = bytes_to_unicode()


def words_of(text: str) -> list[str]:
    return ["".join(B2U[b] for b in w.encode("utf-8")) for w in GPT2_SPLIT.findall(text)]


def reference_train(text: str, n_merges: int) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Merge the most frequent adjacent pair, n_merges times. Ties: the pair of smaller ids (the library's rule)."""
    vocab = {EOT: 0} | {ch: i + 1 for i, ch in enumerate(sorted(B2U.values()))}
    words = Counter(tuple(w) for w in words_of(text))
    merges = []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for w, freq in words.items():
            for a, b in zip(w, w[1:], strict=False):
                pairs[a, b] += freq
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], vocab[p[0]], vocab[p[1]]))
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        words = Counter({_merge(w, best): f for w, f in words.items()})
    return merges, vocab


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def reference_encode(text: str, merges: list[tuple[str, str]], vocab: dict[str, int]) -> list[int]:
    """Each word: repeatedly apply the learnt merge of lowest rank present."""
    rank = {m: i for i, m in enumerate(merges)}
    ids = []
    for w in words_of(text):
        parts = tuple(w)
        while len(parts) > 1:
            best = min(zip(parts, parts[1:], strict=False), key=lambda p: rank.get(p, 1 << 30))
            if best not in rank:
                break
            parts = _merge(parts, best)
        ids += [vocab[p] for p in parts]
    return ids


def test_bpe_merges_and_vocabulary_equal_a_by_hand_bpe_on_the_same_text():
    text = builtin_corpus("concepts_en")[:12_000]
    tok = train_bpe(text, 80)
    merges, vocab = reference_train(text, 80)
    assert learnt_merges(tok) == merges
    assert tok.get_vocab() == vocab


def test_bpe_ids_equal_a_by_hand_encoder_on_unseen_text_including_chinese():
    text = builtin_corpus("concepts_en")[:12_000]
    tok = train_bpe(text, 80)
    merges, vocab = reference_train(text, 80)
    for sample in [
        "How many r's are in strawberry?",
        "The transformer's attention layer, 12+7=19.",
        "草莓里有几个r？",
    ]:
        assert tok.encode(sample).ids == reference_encode(sample, merges, vocab), sample


def test_bpe_on_chinese_text_learns_whole_characters():
    text = builtin_corpus("concepts_zh")[:6_000]
    tok = train_bpe(text, 100)
    merges, vocab = reference_train(text, 100)
    assert learnt_merges(tok) == merges
    sentence = "神经网络的基本单元"
    ids = tok.encode(sentence).ids
    assert ids == reference_encode(sentence, merges, vocab)
    assert len(ids) < len(sentence.encode("utf-8"))  # merges joined the 3 bytes of common characters

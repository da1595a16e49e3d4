"""The language model as a policy: load and save a run, encode prompt + response, sample, score log-probs.

Every stage (base, SFT, DPO, GRPO) is a standard `transformers` folder: `AutoModelForCausalLM` and
`AutoTokenizer` load it anywhere. The functions here work with any GPT-2-style causal LM and tokenizer
(characters or BPE); nothing assumes one character per token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as transformers_logging

from tools.align.tasks import STOP

transformers_logging.disable_progress_bar()  # the "Loading weights" / "Writing model shards" bars on every load / save

EOS = "<|endoftext|>"
UNK = "<unk>"
SMALL_MODEL_PARAMS = 5_000_000  # below this, one torch thread (see few_threads)


def char_tokenizer(chars: str) -> Any:
    """A character tokenizer (one token per character, as nanoGPT's shakespeare_char) built with `tokenizers`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {EOS: 0, UNK: 1} | {c: i + 2 for i, c in enumerate(sorted(set(chars)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, unk_token=UNK)


def tiny_gpt(
    vocab_size: int, n_layer: int = 2, n_head: int = 4, n_embd: int = 64, n_positions: int = 32, seed=0
):
    """A small GPT-2 (transformers' GPT2LMHeadModel), seeded, dropout off."""

    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg)


def load(folder: Path) -> tuple[Any, Any]:
    """Model (eval mode, float32) and tokenizer of a saved run folder.

    One load at a time: from_pretrained builds the model on the meta device first, and two loads in
    concurrent calls left a weight on meta (backward failed with "expected device meta but got cpu") or
    gave another model's numbers (seen in the concurrency test).
    """

    with _LOAD_LOCK:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
        tokenizer = AutoTokenizer.from_pretrained(folder)
    model.eval()
    return model, tokenizer


def context_size(model: Any) -> int:
    cfg = model.config
    return int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", 0) or 0)


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_id(tokenizer: Any) -> int | None:
    """The id of the stop string if it is a single token, else None (then completions end at the length cap)."""
    ids = encode(tokenizer, STOP)
    return ids[0] if len(ids) == 1 and ids[0] != tokenizer.unk_token_id else None


@dataclass
class Batch:
    """Prompt + completion sequences, right-padded: ids (B, T), attention (B, T), completion_mask (B, T)."""

    ids: torch.Tensor
    attention: torch.Tensor
    completion_mask: torch.Tensor  # 1 where the token belongs to the response (what the loss may count)


def make_batch(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> Batch:
    T = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
    B = len(prompts)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    completion_mask = torch.zeros((B, T), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c)
        attention[i, :n] = 1
        completion_mask[i, len(p) : n] = 1
    return Batch(ids, attention, completion_mask)


def token_logps(model: Any, batch: Batch) -> torch.Tensor:
    """log pi(token_t | tokens_<t) for t = 1..T-1: (B, T-1); position t-1 of the result scores token t."""
    logits = model(input_ids=batch.ids, attention_mask=batch.attention).logits  # (B, T, V)
    logp = logits[:, :-1].float().log_softmax(-1)  # (B, T-1, V): predictions of tokens 1..T-1
    return logp.gather(-1, batch.ids[:, 1:, None]).squeeze(-1)  # (B, T-1)


def sequence_logps(model: Any, batch: Batch) -> torch.Tensor:
    """Sum of the response tokens' log-probs per sequence: (B,). Prompt and padding do not count."""
    mask = batch.completion_mask[:, 1:].float()  # (B, T-1), aligned with token_logps
    return (token_logps(model, batch) * mask).sum(-1)


def sample(
    model: Any,
    prompts: list[list[int]],
    max_new_tokens: int,
    stop: int | None,
    temperature: float,
    generator: torch.Generator | None,
    check: Callable[[], None] | None = None,
) -> list[list[int]]:
    """One completion per prompt (prompts of equal length), token by token with a KV cache; each ends at
    `stop` (kept) or the cap. temperature 0 = greedy. Finished rows keep running (cheaper than reshaping the
    cache) but their tokens are dropped. `check` runs before every token (a cancellation point).
    """

    n = len(prompts)
    max_new_tokens = min(max_new_tokens, context_size(model) - len(prompts[0]))
    x = torch.tensor(prompts)  # (n, Tp)
    out: list[list[int]] = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    past = None
    # (n, Tp + generated): nothing is padded; a mask of ones says so and keeps transformers' padding warning quiet
    attention = torch.ones_like(x)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if check is not None:
                check()
            res = model(input_ids=x, attention_mask=attention, cache=past, use_cache=True)
            past = res.cache
            logits = res.logits[:, -1].float()  # (n, V)
            if temperature == 0:
                nxt = logits.argmax(-1)
            else:
                probs = (logits / temperature).softmax(-1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (n,)
            for i in torch.nonzero(~done).flatten().tolist():
                out[i].append(int(nxt[i]))
            if stop is not None:
                done |= nxt == stop
            if bool(done.all()):
                break
            x = nxt[:, None]  # (n, 1): the cache holds everything before
            attention = torch.cat([attention, torch.ones_like(x)], dim=1)
    return out


def sample_many(
    model: Any,
    prompts: list[list[int]],
    max_new_tokens: int,
    stop: int | None,
    temperature: float,
    generator: torch.Generator | None,
    check: Callable[[], None] | None = None,
) -> list[list[int]]:
    """`sample` over prompts of any lengths: one batch per prompt length (no padding inside a batch)."""
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    out: list[list[int]] = [[] for _ in prompts]
    for idx in by_len.values():
        for i, ids in zip(
            idx,
            sample(model, [prompts[i] for i in idx], max_new_tokens, stop, temperature, generator, check),
            strict=True,
        ):
            out[i] = ids
    return out


def decode_completion(tokenizer: Any, ids: list[int]) -> str:
    """The completion's text up to (not including) the stop string."""
    return tokenizer.decode(ids, skip_special_tokens=True).split(STOP, 1)[0]


def producible_chars(tokenizer: Any) -> set[str] | None:
    """Characters some token can produce, or None when every character can (byte-level BPE, large vocabs)."""
    vocab = tokenizer.get_vocab()
    if len(vocab) > 5000 or any(t.startswith("<0x") for t in vocab):
        return None
    chars: set[str] = set()
    for i in vocab.values():
        if i not in (tokenizer.unk_token_id,):
            chars |= set(tokenizer.decode([i], skip_special_tokens=True))
    if "Ġ" in chars or "Ċ" in chars:  # byte-level BPE: every byte, so every character, is reachable
        return None
    return chars


def save(model: Any, tokenizer: Any, folder: Path) -> None:
    """A standard transformers folder: config.json, model.safetensors, tokenizer files."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


_LOAD_LOCK = threading.Lock()
_THREADS_LOCK = threading.Lock()
_threads_users = 0  # calls inside few_threads; the first saves torch's setting, the last restores it
_threads_saved = 0


@contextmanager
def few_threads(model: Any) -> Iterator[None]:
    """One intra-op thread for a tiny model, restored afterwards.

    A 100k-parameter GPT does microseconds of work per op, so the thread pool's synchronisation dominates:
    on the busy 2-core dev machine a training step of a 330k-parameter GPT-2 (batch 64 x 32 tokens) took
    0.55 s with 1 thread and 3 to 8 s with 2. Bigger models keep torch's default.
    """
    global _threads_users, _threads_saved

    if sum(p.numel() for p in model.parameters()) >= SMALL_MODEL_PARAMS:
        yield
        return
    with _THREADS_LOCK:  # the setting is process-wide: concurrent calls share one save / restore
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved)


def max_completion_chars(tokenizer: Any, max_new_tokens: int) -> int:
    """The most characters `max_new_tokens` tokens can spell (special tokens decode to nothing)."""
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids)
    if len(vocab) > 5000:  # large BPE vocabularies: the raw token strings are close enough
        longest = max(len(t) for t, i in vocab.items() if i not in special)
    else:
        longest = max(len(tokenizer.decode([i])) for i in vocab.values() if i not in special)
    return max_new_tokens * longest

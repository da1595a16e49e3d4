"""Next-token sampling, one token at a time, keeping what the model thought at each step.

Shared by train_tiny_gpt (samples during training) and sample_text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Step:
    token_id: int
    probability: float  # under the sampling distribution (after temperature, top-k, top-p)
    model_probability: float  # the model's own softmax (temperature 1, no filtering)
    top_ids: list[int]  # the 5 most likely next tokens under the sampling distribution
    top_probs: list[float]


def sampling_distribution(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None):
    """(V,) logits -> (V,) probabilities. temperature 0 = greedy: all mass on the most likely token."""

    if temperature == 0:
        probs = torch.zeros_like(logits)
        probs[logits.argmax()] = 1.0
        return probs
    logits = logits / temperature
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        # keep the smallest set of most likely tokens whose mass reaches top_p (the first one always stays)
        sorted_p, order = torch.sort(probs, descending=True)
        before = sorted_p.cumsum(0) - sorted_p  # mass of the tokens ranked above each one
        sorted_p[before >= top_p] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        probs = probs / probs.sum()
    return probs


def generate(
    model,
    prompt_ids: list[int],
    max_new_tokens: int,
    block_size: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_id: int | None = None,
    check: Callable[[], None] | None = None,
) -> list[Step]:
    """Continue `prompt_ids`. Uses the KV cache; when the context is full, restarts on the last block - 1 tokens.
    `check` runs before every token (a cancellation point)."""

    with torch.no_grad():
        return _generate(
            model,
            prompt_ids,
            max_new_tokens,
            block_size,
            generator,
            temperature,
            top_k,
            top_p,
            stop_id,
            check,
        )


def _generate(
    model, prompt_ids, max_new_tokens, block_size, generator, temperature, top_k, top_p, stop_id, check
):
    was_training = model.training
    model.eval()
    seq = list(prompt_ids[-block_size:]) or [0]
    feed, past, steps = seq, None, []
    for _ in range(max_new_tokens):
        if check is not None:
            check()
        if past is not None and past.get_seq_length() >= block_size:
            feed, past = seq[-(block_size - 1) :], None  # crop, as nanoGPT does
        out = model(input_ids=torch.tensor([feed]), cache=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1].float()  # (V,)
        probs = sampling_distribution(logits, temperature, top_k, top_p)
        token = (
            int(torch.multinomial(probs, 1, generator=generator)) if temperature > 0 else int(probs.argmax())
        )
        top = torch.topk(probs, min(5, probs.numel()))
        steps.append(
            Step(
                token_id=token,
                probability=float(probs[token]),
                model_probability=float(torch.softmax(logits, -1)[token]),
                top_ids=top.indices.tolist(),
                top_probs=top.values.tolist(),
            )
        )
        if stop_id is not None and token == stop_id:
            break
        seq.append(token)
        feed = [token]
    model.train(was_training)
    return steps

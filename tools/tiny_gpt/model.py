"""The model is transformers' GPT-2, sized small; plus the two baselines it must beat and its attention maps."""

from __future__ import annotations

import math

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as transformers_logging

transformers_logging.disable_progress_bar()  # the "Loading weights" / "Writing model shards" bars on every load / save


def build_model(vocab_size: int, n_layer: int, n_head: int, n_embd: int, block_size: int, dropout: float):
    """A GPT-2 with freshly initialised weights (GPT-2's init: normal(0, 0.02), scaled residual projections)."""

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=block_size,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=True,
    )
    # SDPA: PyTorch's fused attention kernel; the same numbers as "eager" (checked in the tests), faster.
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")


def parameter_breakdown(model) -> dict[str, int]:
    parts = {"embeddings": 0, "attention": 0, "mlp": 0, "layer_norm": 0}
    for name, p in model.named_parameters():  # the tied lm_head is not listed again
        if ".wte." in name or ".wpe." in name:
            parts["embeddings"] += p.numel()
        elif ".attn." in name:
            parts["attention"] += p.numel()
        elif ".mlp." in name:
            parts["mlp"] += p.numel()
        else:
            parts["layer_norm"] += p.numel()
    return parts


def bigram_loss(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> tuple[float, float]:
    """Val cross-entropy (nats/token) of P(b | a) = (count(a, b) + alpha) / (count(a) + alpha V), best alpha.

    Counts are kept sparse (pair key a * V + b), so a 16k vocabulary costs no V x V table.
    """

    V = vocab_size
    keys, counts = torch.unique(train[:-1] * V + train[1:], return_counts=True)  # sorted pair keys
    row = torch.bincount(train[:-1], minlength=V)  # count(a)
    vk = val[:-1] * V + val[1:]
    pos = torch.searchsorted(keys, vk).clamp(max=len(keys) - 1)
    c = torch.where(keys[pos] == vk, counts[pos], 0).double()  # count(a, b) for every val pair
    best = (math.inf, 1.0)
    for alpha in (1.0, 0.1, 0.01):
        p = (c + alpha) / (row[val[:-1]].double() + alpha * V)
        best = min(best, (float(-p.log().mean()), alpha))
    return best


def attention_maps(model, ids: torch.Tensor) -> torch.Tensor:
    """(n_layer, n_head, T, T) attention weights for one sequence `ids` (T,): row = query, column = key.

    SDPA never materialises the weights, so the model switches to the "eager" implementation for this pass.
    """

    was_training = model.training
    model.eval()
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_ids=ids[None], output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
        model.train(was_training)
    return torch.stack([a[0] for a in out.attentions])  # L x (1, nh, T, T) -> (L, nh, T, T)

"""Supervised fine-tuning: next-token loss on the response only; the prompt's tokens are masked out."""

from __future__ import annotations

from typing import Any

import torch

from tools.align.policy import Batch


def masked_nll(logits: torch.Tensor, ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the response tokens.

    logits (B, T, V) predict ids shifted by one; completion_mask (B, T) is 1 on response tokens. A prompt
    token is never a target, so changing one changes this loss only through the logits (the context).
    """
    logp = logits[:, :-1].float().log_softmax(-1)  # (B, T-1, V)
    target_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    mask = completion_mask[:, 1:].float()  # (B, T-1): which targets are response tokens
    return -(target_logp * mask).sum() / mask.sum()


def sft_step(model: Any, optimizer: Any, batch: Batch) -> float:
    logits = model(input_ids=batch.ids, attention_mask=batch.attention).logits  # (B, T, V)
    loss = masked_nll(logits, batch.ids, batch.completion_mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    _clip(model)
    optimizer.step()
    return loss.item()


def _clip(model: Any) -> None:
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)

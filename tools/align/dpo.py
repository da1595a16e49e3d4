"""Direct Preference Optimization (Rafailov et al. 2023): prefer chosen over rejected, relative to a frozen
reference, without a reward model.

    loss = -log sigmoid( beta * [ (log pi(y_c|x) - log ref(y_c|x)) - (log pi(y_r|x) - log ref(y_r|x)) ] )

beta * log(pi / ref) is the "implicit reward" of a response; its margin (chosen - rejected) and the share of
pairs where it is positive are what DPO drives up.

The loss only sees the difference, so it can grow the margin by pushing both answers down ("likelihood
displacement"): from the SFT model on the built-in task, pure DPO lowered log pi(chosen) by 2.8 nats in 100
steps and exact accuracy fell from 84% to 54-76% (by the draw of rejected answers). Adding the SFT loss on the
chosen answers (`sft_weight`, the RPO recipe of Pang et al. 2024; Llama 3 used 0.2; TRL 1.x:
loss_type=["sigmoid", "sft"]) keeps chosen up: accuracy 84% -> 86%, held-out preference accuracy 96.5% -> 97.5%
(bench/bench_align.py; docs/llm_alignment.md has the whole search).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tools.align.policy import Batch, sequence_logps, token_logps
from tools.align.sft import _clip


@dataclass
class DpoTerms:
    loss: torch.Tensor  # scalar, mean over pairs
    chosen_rewards: torch.Tensor  # (B,) beta * log(pi/ref) of chosen
    rejected_rewards: torch.Tensor  # (B,)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> DpoTerms:
    """All inputs are summed response log-probs, shape (B,)."""

    chosen_rewards = beta * (policy_chosen - ref_chosen)
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    return DpoTerms(loss, chosen_rewards.detach(), rejected_rewards.detach())


def dpo_objective(
    model: Any, ref: Any, chosen: Batch, rejected: Batch, beta: float, sft_weight: float
) -> tuple[torch.Tensor, DpoTerms, torch.Tensor]:
    """DPO loss + sft_weight x the mean negative log-likelihood of the chosen response tokens (as TRL's "sft"
    loss term: a token mean over the batch). Returns (loss, DPO terms, chosen NLL)."""

    with torch.no_grad():
        ref_c, ref_r = sequence_logps(ref, chosen), sequence_logps(ref, rejected)  # (B,), (B,)
    mask = chosen.completion_mask[:, 1:].float()  # (B, T-1), aligned with token_logps
    chosen_tok = token_logps(model, chosen) * mask  # (B, T-1)
    terms = dpo_loss(chosen_tok.sum(-1), sequence_logps(model, rejected), ref_c, ref_r, beta)
    nll = -chosen_tok.sum() / mask.sum()
    return terms.loss + sft_weight * nll, terms, nll.detach()


def dpo_step(
    model: Any, ref: Any, optimizer: Any, chosen: Batch, rejected: Batch, beta: float, sft_weight: float
) -> dict[str, float]:
    loss, terms, nll = dpo_objective(model, ref, chosen, rejected, beta, sft_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    _clip(model)
    optimizer.step()
    margin = terms.chosen_rewards - terms.rejected_rewards
    return {
        "loss": loss.item(),
        "margin": float(margin.mean()),
        "reward_accuracy": float((margin > 0).float().mean()),
        "chosen_reward": float(terms.chosen_rewards.mean()),
        "rejected_reward": float(terms.rejected_rewards.mean()),
        "chosen_nll": float(nll),
    }


def preference_accuracy(model: Any, chosen: Batch, rejected: Batch) -> float:
    """Share of pairs where the model itself gives chosen a higher log-probability than rejected."""

    with torch.no_grad():
        return float((sequence_logps(model, chosen) > sequence_logps(model, rejected)).float().mean())

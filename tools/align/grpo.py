"""Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath): no value network; each completion's
advantage is its reward compared with the other completions of the same prompt.

    A_i = (r_i - mean(r_group)) / (std(r_group) + eps)
    per token: -min(ratio * A, clip(ratio, 1 - eps_clip, 1 + eps_clip) * A) + beta * KL_t
    ratio = pi(o_t) / pi_old(o_t);  KL_t = ref/pi - log(ref/pi) - 1  (the k3 estimator, >= 0)
    loss = mean over completions of (mean over that completion's tokens)

pi_old is the policy that sampled the batch: with several updates per batch the ratio moves away from 1 and
the clip keeps each update close to the sampling policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ADV_EPS = 1e-4  # as TRL's GRPOTrainer: a group with equal rewards gets advantage 0, not 0/0


def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """rewards (P, G) for P prompts x G completions -> advantages (P, G); std is the unbiased one (as TRL)."""
    mean = rewards.mean(dim=1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=1, keepdim=True)  # (P, 1)
    return (rewards - mean) / (std + ADV_EPS)


@dataclass
class GrpoTerms:
    loss: torch.Tensor  # scalar
    kl: torch.Tensor  # mean per-token KL over completion tokens (detached)
    clip_fraction: torch.Tensor  # share of completion tokens where the clip was active (detached)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
    beta: float,
) -> GrpoTerms:
    """logp, old_logp, ref_logp, mask: (N, T) per-token log-probs and completion mask; advantages: (N,)."""

    adv = advantages[:, None]  # (N, 1): every token of a completion shares its advantage
    ratio = torch.exp(logp - old_logp)  # (N, T)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv
    policy_term = -torch.min(unclipped, clipped)  # (N, T)
    log_ref_ratio = ref_logp - logp
    kl = torch.exp(log_ref_ratio) - log_ref_ratio - 1  # (N, T)
    per_token = policy_term + beta * kl
    mask = mask.float()
    lengths = mask.sum(1).clamp(min=1)  # (N,)
    loss = ((per_token * mask).sum(1) / lengths).mean()
    n = mask.sum().clamp(min=1)
    return GrpoTerms(
        loss,
        ((kl * mask).sum() / n).detach(),
        (((unclipped != clipped).float() * mask).sum() / n).detach(),
    )

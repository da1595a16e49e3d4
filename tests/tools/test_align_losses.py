"""The three losses of the alignment lab against by-hand computations (and transformers' own masked loss)."""

from __future__ import annotations

import math

import pytest
import torch

from tools.align.dpo import dpo_loss, dpo_objective
from tools.align.grpo import group_advantages, grpo_loss
from tools.align.policy import char_tokenizer, make_batch, sequence_logps, tiny_gpt
from tools.align.sft import masked_nll


def test_dpo_loss_equals_the_papers_formula_by_hand():
    # Rafailov et al. 2023, eq. 7: -log sigma(beta log(pi_c/ref_c) - beta log(pi_r/ref_r)), on plain floats
    pc, pr, rc, rr = [-3.2, -7.5, -1.0], [-4.0, -2.5, -1.5], [-3.0, -6.0, -1.2], [-3.9, -3.0, -1.1]
    beta = 0.3
    by_hand = []
    for a, b, c, d in zip(pc, pr, rc, rr, strict=True):
        z = beta * (a - c) - beta * (b - d)
        by_hand.append(-math.log(1 / (1 + math.exp(-z))))
    t = dpo_loss(*(torch.tensor(v, dtype=torch.float64) for v in (pc, pr, rc, rr)), beta=beta)
    assert t.loss.item() == pytest.approx(sum(by_hand) / 3, rel=1e-12)
    assert t.chosen_rewards.tolist() == pytest.approx([beta * (a - c) for a, c in zip(pc, rc, strict=True)])
    assert t.rejected_rewards.tolist() == pytest.approx([beta * (b - d) for b, d in zip(pr, rr, strict=True)])


def test_dpo_loss_is_log_2_when_the_policy_equals_the_reference():
    x = torch.tensor([-2.0, -5.0])
    assert dpo_loss(x, x - 1, x, x - 1, beta=0.1).loss.item() == pytest.approx(math.log(2))


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    pc, pr = torch.tensor([-3.0], requires_grad=True), torch.tensor([-3.0], requires_grad=True)
    dpo_loss(pc, pr, torch.tensor([-3.0]), torch.tensor([-3.0]), beta=0.5).loss.backward()
    # d/dpc of -log sigma(beta (pc - pr)) at 0 = -beta * sigma(0) = -0.25: descent raises pc
    assert pc.grad.item() == pytest.approx(-0.25) and pr.grad.item() == pytest.approx(0.25)


def test_grpo_advantages_equal_the_group_normalised_rewards_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.2, 0.2, 0.2, 0.2], [3.0, 1.0, 2.0, 0.0]])
    adv = group_advantages(r)
    for row, a in zip(r.tolist(), adv.tolist(), strict=True):
        mean = sum(row) / 4
        std = math.sqrt(sum((x - mean) ** 2 for x in row) / 3)  # unbiased, as TRL
        assert a == pytest.approx([(x - mean) / (std + 1e-4) for x in row], abs=1e-6)
    assert adv[1].abs().max().item() == 0.0  # a group without signal teaches nothing


def test_grpo_clipped_objective_and_kl_equal_a_by_hand_computation():
    # two completions of 3 and 2 tokens (second has a padded slot), one positive and one negative advantage
    logp = torch.tensor([[-1.0, -0.5, -2.0], [-0.2, -1.5, 0.0]])
    old = torch.tensor([[-1.5, -0.5, -1.0], [-0.1, -2.5, 0.0]])
    ref = torch.tensor([[-1.2, -0.7, -1.8], [-0.3, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv = torch.tensor([1.5, -0.8])
    eps, beta = 0.2, 0.05
    per_seq = []
    for i in range(2):
        terms = []
        for t in range(3):
            if not mask[i, t]:
                continue
            ratio = math.exp(logp[i, t] - old[i, t])
            clipped = min(max(ratio, 1 - eps), 1 + eps)
            pg = -min(ratio * adv[i].item(), clipped * adv[i].item())
            d = (ref[i, t] - logp[i, t]).item()
            terms.append(pg + beta * (math.exp(d) - d - 1))
        per_seq.append(sum(terms) / len(terms))
    out = grpo_loss(logp, old, ref, adv, mask, eps, beta)
    assert out.loss.item() == pytest.approx(sum(per_seq) / 2, rel=1e-6)
    kl = [math.exp(d) - d - 1 for d in (ref - logp)[mask.bool()].tolist()]
    assert out.kl.item() == pytest.approx(sum(kl) / len(kl), rel=1e-6)


def test_grpo_loss_gradient_is_zero_outside_the_clip_region_for_a_positive_advantage():
    # ratio e^1 > 1.2 with A > 0: the clipped term is the minimum and has no gradient (the update is capped)
    logp = torch.tensor([[0.0]], requires_grad=True)
    out = grpo_loss(
        logp, torch.tensor([[-1.0]]), torch.tensor([[0.0]]), torch.tensor([1.0]), torch.ones(1, 1), 0.2, 0.0
    )
    out.loss.backward()
    assert logp.grad.item() == 0.0 and out.clip_fraction.item() == 1.0


@pytest.fixture(scope="module")
def tiny():
    tok = char_tokenizer("0123456789+=:QA \n")
    return tok, tiny_gpt(len(tok.get_vocab()), n_layer=1, n_embd=16, n_positions=24, seed=3)


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_sft_mask_ignores_prompt_tokens_as_targets(tiny):
    tok, _ = tiny
    batch = make_batch(
        [_ids(tok, "Q: 1+2= A:"), _ids(tok, "Q: 3+4= A:")], [_ids(tok, " 3\n"), _ids(tok, " 7\n")], 0
    )
    logits = torch.randn(*batch.ids.shape, len(tok.get_vocab()), generator=torch.Generator().manual_seed(0))
    loss = masked_nll(logits, batch.ids, batch.completion_mask)
    changed = batch.ids.clone()
    changed[:, 1:4] = _ids(tok, "999")[0]  # only prompt tokens change, the logits stay the same
    assert masked_nll(logits, changed, batch.completion_mask).item() == loss.item()
    changed[0, -2] = _ids(tok, "5")[0]  # a response token changes: the loss must notice
    assert masked_nll(logits, changed, batch.completion_mask).item() != loss.item()


def test_sft_loss_equals_transformers_loss_with_prompt_labels_at_minus_100(tiny):
    tok, model = tiny
    batch = make_batch(
        [_ids(tok, "Q: 12+5= A:"), _ids(tok, "Q: 3+4= A:")], [_ids(tok, " 17\n"), _ids(tok, " 7\n")], 0
    )
    labels = batch.ids.masked_fill(batch.completion_mask == 0, -100)
    with torch.no_grad():
        ref = model(input_ids=batch.ids, attention_mask=batch.attention, labels=labels).loss
        ours = masked_nll(model(input_ids=batch.ids, attention_mask=batch.attention).logits, batch.ids,
                          batch.completion_mask)  # fmt: skip
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def test_sequence_logps_sum_only_the_response_tokens(tiny):
    tok, model = tiny
    p, c = _ids(tok, "Q: 2+2= A:"), _ids(tok, " 4\n")
    batch = make_batch([p], [c], 0)
    with torch.no_grad():
        logp = model(input_ids=batch.ids).logits[0].log_softmax(-1)
        by_hand = sum(logp[len(p) + k - 1, tok_id].item() for k, tok_id in enumerate(c))
        assert sequence_logps(model, batch).item() == pytest.approx(by_hand, rel=1e-5)


def test_dpo_objective_is_the_formula_plus_sft_weight_times_transformers_loss_on_chosen(tiny):
    # TRL 1.x's loss_type=["sigmoid", "sft"] with loss_weights=[1, w]: the DPO formula on summed log-probs plus
    # w x the token-mean NLL of the chosen responses (transformers' loss with prompt labels at -100)
    tok, model = tiny
    ref = tiny_gpt(len(tok.get_vocab()), n_layer=1, n_embd=16, n_positions=24, seed=4)
    prompts = [_ids(tok, "Q: 12+5= A:"), _ids(tok, "Q: 3+4= A:")]
    chosen = make_batch(prompts, [_ids(tok, " 17\n"), _ids(tok, " 7\n")], 0)
    rejected = make_batch(prompts, [_ids(tok, " 18\n"), _ids(tok, " 17\n")], 0)
    beta, w = 0.3, 0.7
    with torch.no_grad():
        loss, _, nll = dpo_objective(model, ref, chosen, rejected, beta, w)
        z = beta * (sequence_logps(model, chosen) - sequence_logps(ref, chosen)) - beta * (
            sequence_logps(model, rejected) - sequence_logps(ref, rejected)
        )
        dpo = sum(-math.log(1 / (1 + math.exp(-v))) for v in z.tolist()) / 2
        labels = chosen.ids.masked_fill(chosen.completion_mask == 0, -100)
        hf_nll = model(input_ids=chosen.ids, attention_mask=chosen.attention, labels=labels).loss.item()
    assert nll.item() == pytest.approx(hf_nll, rel=1e-5)
    assert loss.item() == pytest.approx(dpo + w * hf_nll, rel=1e-5)
    assert dpo_objective(model, ref, chosen, rejected, beta, 0.0)[0].item() == pytest.approx(dpo, rel=1e-5)

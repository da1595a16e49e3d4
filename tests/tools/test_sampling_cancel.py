"""Token-by-token decoding is cancellable at every token: sample_text (tools.tiny_gpt.sampling.generate) and the
batched decoding of finetune_gpt / compare_gpt_stages (tools.align.policy.sample_many) call their `check` before
each new token, so a cancel stops them within one forward pass, however many tokens were asked for."""

from __future__ import annotations

import pytest
import torch

from tools.align.policy import char_tokenizer, sample_many, tiny_gpt
from tools.common import Cancelled
from tools.tiny_gpt.sampling import generate


class CancelAfter:
    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls > self.n:
            raise Cancelled()


@pytest.fixture(scope="module")
def model():
    tok = char_tokenizer("0123456789+=:QA \n")
    return tiny_gpt(len(tok.get_vocab()), n_layer=1, n_embd=16, n_positions=64, seed=3)


def test_generate_checks_before_every_token_and_stops_at_the_cancel(model):
    full = generate(model, [1, 2, 3], 40, 64, torch.Generator().manual_seed(0), check=CancelAfter(10**6))
    assert len(full) == 40
    check = CancelAfter(7)
    with pytest.raises(Cancelled):
        generate(model, [1, 2, 3], 40, 64, torch.Generator().manual_seed(0), check=check)
    assert check.calls == 8  # 7 tokens made, the 8th check raised
    again = generate(model, [1, 2, 3], 40, 64, torch.Generator().manual_seed(0))
    assert [s.token_id for s in again] == [s.token_id for s in full]  # same seed, same tokens


def test_batched_decoding_checks_before_every_token(model):
    prompts = [[1, 2], [3, 4], [5, 6, 7]]  # two lengths: two batches
    counted = CancelAfter(10**6)
    out = sample_many(model, prompts, 20, None, 0.0, None, counted)
    assert [len(o) for o in out] == [20, 20, 20] and counted.calls == 40  # 20 tokens x 2 batches
    with pytest.raises(Cancelled):
        sample_many(model, prompts, 20, None, 0.0, None, CancelAfter(5))

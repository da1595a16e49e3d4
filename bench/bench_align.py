"""LLM lab II on 2 cores: per-stage wall time, steps/s and tokens/s, and the learning figures (accuracy,
preference accuracy, reward, KL) of SFT, DPO and GRPO with the defaults, on the built-in task, in-process.

Reference measured in the same run: a plain transformers training step (model(ids, labels=...).loss,
backward, AdamW) on an SFT batch of the same shape; the SFT step's time is reported as a ratio to it.

    PYTHONPATH=$PWD nice python bench/bench_align.py   # about 2 to 5 minutes
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

from tools.align import FinetuneGptInput, run, tasks
from tools.align.policy import encode, load, make_batch
from tools.align.store import BUILTIN_FOLDER
from tools.common import NullReporter
from tools.config import LabConfig


def mean_tokens(tok, n: int = 500) -> float:
    """Mean prompt + response + stop tokens of a built-in training sequence."""
    exs = tasks.addition_examples(n, 0, "train")
    return sum(len(encode(tok, ex.prompt + ex.response + "\n")) for ex in exs) / n


def reference_step_s(batch_size: int, repeats: int = 20) -> float:
    """Median time of transformers' own loss + backward + AdamW step on a built-in SFT batch (one thread)."""
    model, tok = load(BUILTIN_FOLDER)
    model.train()
    exs = tasks.addition_examples(batch_size, 1, "train")
    b = make_batch([encode(tok, e.prompt) for e in exs], [encode(tok, e.response + "\n") for e in exs], 0)
    labels = b.ids.masked_fill(b.completion_mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        loss = model(input_ids=b.ids, attention_mask=b.attention, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return sorted(times)[repeats // 2]


def main() -> None:
    torch.set_num_threads(1)  # as the tools do for a model this small (policy.few_threads)
    tmp = Path(tempfile.mkdtemp())
    cfg = LabConfig.create(tmp / "out", [tmp])
    _, tok = load(BUILTIN_FOLDER)
    T = mean_tokens(tok)
    ref_s = reference_step_s(64)

    def stage(label: str, **kw):
        t = time.perf_counter()
        r = run(FinetuneGptInput(time_budget_s=55, **kw), cfg, NullReporter()).result
        call = time.perf_counter() - t
        s = r.settings
        if r.method == "sft":  # one forward + backward of B sequences per step
            tokens = r.steps_run * s["batch_size"] * T
        elif r.method == "dpo":  # chosen + rejected through the policy (with backward) and the reference
            tokens = r.steps_run * s["batch_size"] * 2 * T * 2
        else:  # sampled tokens, then old / ref / `updates` forwards of every prompt + completion
            seqs = s["batch_size"] * s["group_size"]
            mean_len = sum(h.completion_length or 0 for h in r.history) / max(1, len(r.history))
            tokens = r.steps_run * seqs * (mean_len + (T - 4 + mean_len) * (2 + s["updates_per_batch"]))
        b, a = r.before, r.after
        pref = (
            f"{100 * b.preference_accuracy:.1f}% -> {100 * a.preference_accuracy:.1f}%"
            if a.preference_accuracy is not None
            else "-"
        )
        kl = max((h.kl for h in r.history if h.kl is not None), default=None)
        print(
            f"| {label} | {r.steps_run} | {r.wall_time_s:.1f} | {call:.1f} | {r.steps_run / r.wall_time_s:.1f} | "
            f"{tokens / r.wall_time_s:,.0f} | {100 * (b.accuracy or 0):.1f}% -> {100 * (a.accuracy or 0):.1f}% | "
            f"{pref} | {b.mean_reward:.3f} -> {a.mean_reward:.3f} | {'-' if kl is None else f'{kl:.3f}'} |",
            flush=True,
        )
        return r

    print(
        f"reference: transformers loss + backward + AdamW on an SFT batch (64 x {T:.1f} tokens): {ref_s * 1e3:.1f} ms\n"
    )
    print(
        "| stage | steps | train s | call s | steps/s | tokens/s | exact accuracy | preference acc. | mean reward | max KL |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    sft = stage("SFT from builtin", method="sft")
    print(f"<!-- SFT step / reference step: {sft.wall_time_s / sft.steps_run / ref_s:.2f} -->", flush=True)
    stage("DPO from SFT (sft_weight 1)", method="dpo", base_run=sft.run_id)
    stage("DPO from SFT, pure (sft_weight 0)", method="dpo", base_run=sft.run_id, sft_weight=0.0)
    stage("GRPO from SFT", method="grpo", base_run=sft.run_id)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

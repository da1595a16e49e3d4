"""Pre-train the built-in base model of the alignment lab (tools/assets/align_base/).

A tiny character-level GPT-2 that has read bare equations (`23+58=81`) for the train split of two-number
addition, and never the `Q: ... A:` format that SFT teaches. Usage:

    PYTHONPATH=. python train_align_base/train.py [--steps 3000] [--out tools/assets/align_base]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch

from tools.align.policy import char_tokenizer, encode, save, tiny_gpt
from tools.align.tasks import MAX_OPERAND, is_held_out, pretraining_line

CHARS = "0123456789+-=:?.,QA abcdefghijklmnopqrstuvwxyz\n"
CONFIG = dict(n_layer=2, n_head=4, n_embd=64, n_positions=24)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="tools/assets/align_base")
    ap.add_argument("--threads", type=int, default=1, help="1: a tiny model gains nothing from more")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    tok = char_tokenizer(CHARS)
    model = tiny_gpt(len(tok.get_vocab()), seed=a.seed, **CONFIG)
    pairs = [(x, y) for x in range(MAX_OPERAND + 1) for y in range(MAX_OPERAND + 1) if not is_held_out(x, y)]
    T = CONFIG["n_positions"]

    lines = [encode(tok, pretraining_line(x, y) + "\n") for x, y in pairs]

    def block() -> list[int]:  # a window of T + 1 tokens from a stream of random equations
        ids: list[int] = []
        while len(ids) < 2 * T:
            ids += rng.choice(lines)
        start = rng.randrange(0, T)
        return ids[start : start + T + 1]

    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = 100
    model.train()
    t0 = time.time()
    for step in range(a.steps):
        lr = a.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        data = torch.tensor([block() for _ in range(a.batch)])  # (B, T+1)
        loss = model(input_ids=data[:, :-1], labels=data[:, :-1]).loss
        # labels = inputs: transformers shifts them itself (predict token t+1 from tokens <= t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 250 == 0 or step == a.steps - 1:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {time.time() - t0:.0f}s", file=sys.stderr)
    model.eval()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save(model, tok, out)
    print(f"saved {out} ({sum(p.numel() for p in model.parameters())} parameters)", file=sys.stderr)


if __name__ == "__main__":
    main()

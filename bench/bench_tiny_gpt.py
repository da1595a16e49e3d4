"""Benchmark: train_tiny_gpt's loop against the textbook loop, same model, data, batch and thread count, one run.

The textbook loop is `loss = model(x, labels=x).loss; loss.backward(); opt.step(); opt.zero_grad()` (transformers
shifts the labels itself), with plain AdamW at a fixed learning rate. Ours is the tool's `train()` with everything
it does: warm-up + cosine schedule, gradient clipping, an evaluation with a sample from the prompt and a progress
report every eval_interval steps. Both run the quick preset's model on the built-in English corpus; they
alternate, several rounds, and the best of each is kept (the machine is shared). Then the torch choices:
threads (1 vs torch's default), attention (SDPA vs eager), in textbook steps per second.

    python bench/bench_tiny_gpt.py [--steps 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from tools.tiny_gpt.corpus import builtin_corpus
from tools.tiny_gpt.model import build_model
from tools.tiny_gpt.sampling import generate
from tools.tiny_gpt.schema import PRESETS
from tools.tiny_gpt.tokenizer import train_char
from tools.tiny_gpt.train import TrainConfig, get_batch, train

P = PRESETS["quick"]


def setup():
    text = builtin_corpus("concepts_en")
    tok = train_char(text)
    ids = torch.tensor(tok.encode(text).ids)
    n = len(ids) // 10
    return tok, ids[:-n], ids[-n:]


def new_model(vocab: int, attn: str = "sdpa"):
    torch.manual_seed(0)
    m = build_model(vocab, P["n_layer"], P["n_head"], P["n_embd"], P["block_size"], 0.0)
    m.set_attn_implementation(attn)
    return m


def textbook(model, data, steps: int) -> float:
    """Tokens per second of the textbook loop."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=P["learning_rate"])
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        x, _ = get_batch(data, P["batch_size"], P["block_size"], gen)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return steps * P["batch_size"] * P["block_size"] / (time.perf_counter() - t0)


def ours(model, tok, train_ids, val_ids, steps: int) -> float:
    """Tokens per second of the tool's loop, evaluation, sampling and progress included."""
    c = TrainConfig(batch_size=P["batch_size"], block_size=P["block_size"], max_steps=steps,
                    learning_rate=P["learning_rate"], warmup_steps=P["warmup_steps"],
                    eval_interval=P["eval_interval"], eval_iters=P["eval_iters"], time_budget_s=3600)  # fmt: skip
    prompt = tok.encode("\n").ids

    def on_eval(step, log):
        steps_ = generate(model, prompt, 60, P["block_size"], torch.Generator().manual_seed(0))
        tok.decode([s.token_id for s in steps_])

    log = train(model, train_ids, val_ids, c, torch.Generator().manual_seed(0), on_eval, lambda: None)
    return steps * P["batch_size"] * P["block_size"] / log.wall_time_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    tok, train_ids, val_ids = setup()
    V = tok.get_vocab_size()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what the tool chooses for this size (tools.tiny_gpt.train.choose_threads)
    best_t, best_o = 0.0, 0.0
    for r in range(a.rounds):
        t = textbook(new_model(V), train_ids, a.steps)
        o = ours(new_model(V), tok, train_ids, val_ids, a.steps)
        best_t, best_o = max(best_t, t), max(best_o, o)
        print(
            f"round {r}: textbook {t:,.0f} tokens/s, ours {o:,.0f} tokens/s (ratio {o / t:.3f})", flush=True
        )
    print(f"best: textbook {best_t:,.0f}, ours {best_o:,.0f} tokens/s: ours / textbook = {best_o / best_t:.3f} "
          f"(steps {a.steps}, evaluations every {P['eval_interval']} with {P['eval_iters']} val batches + a 60-token "
          "sample, included in ours)")  # fmt: skip

    short = max(20, a.steps // 4)
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        for attn in ("sdpa", "eager"):
            tps = max(textbook(new_model(V, attn), train_ids, short) for _ in range(2))
            print(f"textbook, threads={threads}, attention={attn}: {tps:,.0f} tokens/s", flush=True)


if __name__ == "__main__":
    main()

"""The train_tiny_gpt call, as numbered steps: plan, text, tokenizer, split, baselines, model, train, look, save."""

from __future__ import annotations

import base64
import math
from typing import Any

import torch
import torch.nn.functional as F

from tools.common import InlineImage, InvalidArgument, Reporter, ToolOutput
from tools.config import LabConfig
from tools.paths import new_output_path, output_uri
from tools.tiny_gpt import corpus as corpora
from tools.tiny_gpt import picture, store
from tools.tiny_gpt.model import attention_maps, bigram_loss, build_model, parameter_breakdown
from tools.tiny_gpt.sampling import generate
from tools.tiny_gpt.schema import (
    PRESETS,
    AttentionView,
    Baselines,
    HeadFocus,
    History,
    ParameterBreakdown,
    Sample,
    TrainTinyGptInput,
    TrainTinyGptResult,
)
from tools.tiny_gpt.tokenizer import train_bpe, train_char
from tools.tiny_gpt.train import TrainConfig, choose_threads, torch_threads, train

SIZE_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "dropout")
TRAIN_KEYS = (
    "batch_size",
    "max_steps",
    "learning_rate",
    "warmup_steps",
    "eval_interval",
    "eval_iters",
    "time_budget_s",
)
MAX_ATTENTION_TOKENS = 32


def settings_of(args: TrainTinyGptInput, cfg: LabConfig) -> dict[str, Any]:
    """The preset's values, overridden by every size or training argument given; checked against the caps."""
    s: dict[str, Any] = dict(PRESETS[args.preset])
    for key in SIZE_KEYS + TRAIN_KEYS:
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if s["n_embd"] % s["n_head"]:
        raise InvalidArgument(
            "n_head",
            s["n_head"],
            f"must divide n_embd = {s['n_embd']} (each head gets n_embd / n_head dimensions)",
        )
    if s["time_budget_s"] > cfg.limits.gpt_max_time_s:
        raise InvalidArgument(
            "time_budget_s",
            s["time_budget_s"],
            f"at most {cfg.limits.gpt_max_time_s} s (the server's gpt_max_time_s)",
        )
    return s


def estimate_parameters(vocab: int, s: dict[str, Any]) -> int:
    """GPT-2's count: embeddings + per block (attention 4 d^2 + 4 d, MLP 8 d^2 + 5 d, two LayerNorms 4 d) + final LN."""
    d = s["n_embd"]
    return vocab * d + s["block_size"] * d + s["n_layer"] * (12 * d * d + 13 * d) + 2 * d


def train_tiny_gpt(args: TrainTinyGptInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    # 1. settings and text
    s = settings_of(args, cfg)
    text, corpus_what = corpora.load_corpus(
        cfg,
        corpus=args.corpus,
        text=args.text,
        path=args.corpus_path,
        max_chars=cfg.limits.gpt_max_corpus_chars,
    )
    source_arg = (
        "text" if args.text is not None else "corpus_path" if args.corpus_path is not None else "corpus"
    )

    # 2. tokenizer (trained on the whole text: its vocabulary is part of the model, not learnt from val)
    reporter.progress(0, s["max_steps"], "building the tokenizer")
    tok = train_char(text) if args.tokenizer == "char" else train_bpe(text, args.bpe_merges)
    vocab = tok.get_vocab_size()
    if vocab > cfg.limits.gpt_max_vocab:
        what = "distinct characters" if args.tokenizer == "char" else "tokens"
        raise InvalidArgument(
            "bpe_merges" if args.tokenizer == "bpe" else source_arg,
            vocab,
            f"the vocabulary would have {vocab} {what}; at most {cfg.limits.gpt_max_vocab} (gpt_max_vocab)",
        )
    n_params = estimate_parameters(vocab, s)
    if n_params > cfg.limits.gpt_max_parameters:
        raise InvalidArgument(
            "n_embd",
            s["n_embd"],
            f"the model would have {n_params} parameters; at most {cfg.limits.gpt_max_parameters}",
        )

    # 3. tokens, split: the last val_fraction is validation
    reporter.check_cancelled()
    ids = torch.tensor(tok.encode(text).ids, dtype=torch.long)  # (N,)
    n_val = int(len(ids) * args.val_fraction)
    train_ids, val_ids = ids[:-n_val] if n_val else ids, ids[len(ids) - n_val :]
    need = s["block_size"] + 2
    if len(val_ids) < need or len(train_ids) < need:
        raise InvalidArgument(
            source_arg,
            f"{len(text)} characters = {len(ids)} tokens",
            f"too short for context {s['block_size']}: the val split ({args.val_fraction:.0%}) and the train split "
            f"each need at least {need} tokens; give more text or a smaller block_size",
        )

    # 4. baselines on the same split
    reporter.check_cancelled()
    bigram, alpha = bigram_loss(train_ids, val_ids, vocab)
    uniform = math.log(vocab)
    baselines = Baselines(
        uniform_loss=uniform,
        bigram_loss=bigram,
        bigram_smoothing=alpha,
        uniform_perplexity=float(vocab),
        bigram_perplexity=math.exp(bigram),
    )

    # 5. model and training, seeded: weights, batches, dropout and samples
    reporter.check_cancelled()
    prompt_ids = tok.encode(args.sample_prompt).ids
    samples: list[Sample] = []
    tc = TrainConfig(**{k: s[k] for k in ("batch_size", "block_size") + TRAIN_KEYS[1:]})

    def on_eval(step: int, log) -> None:
        steps = generate(
            model,
            prompt_ids,
            args.sample_tokens,
            s["block_size"],
            torch.Generator().manual_seed(args.seed),
            check=reporter.check_cancelled,
        )
        samples.append(
            Sample(step=step, text=tok.decode([st.token_id for st in steps], skip_special_tokens=False))
        )
        reporter.progress(
            step,
            s["max_steps"],
            f"step {step}: train {log.train_loss[-1]:.3f}, val {log.val_loss[-1]:.3f} "
            f"(bigram {bigram:.3f}) | {samples[-1].text[:60]!r}",
        )
        partial = getattr(reporter, "partial", None)
        if partial is not None:
            partial({"history": _history(log).model_dump(), "samples": [x.model_dump() for x in samples],
                     "baselines": baselines.model_dump()})  # fmt: skip

    threads = choose_threads(s["batch_size"], s["block_size"], s["n_embd"])
    with torch.random.fork_rng(), torch_threads(threads):
        torch.manual_seed(args.seed)
        model = build_model(vocab, s["n_layer"], s["n_head"], s["n_embd"], s["block_size"], s["dropout"])
        gen = torch.Generator().manual_seed(args.seed)
        log = train(model, train_ids, val_ids, tc, gen, on_eval, reporter.check_cancelled)
        final_val = _whole_split_loss(model, val_ids, s["block_size"])

        # 6. attention of the trained model on a prompt
        att_text = args.attention_prompt or tok.decode(val_ids[:MAX_ATTENTION_TOKENS].tolist())
        att_ids = torch.tensor(tok.encode(att_text).ids[: min(MAX_ATTENTION_TOKENS, s["block_size"])])
        att = attention_maps(model, att_ids)  # (L, nh, T, T)
    att_tokens = [tok.decode([i]) for i in att_ids.tolist()]

    # 7. save: a save_pretrained folder, pictures, metrics
    from tools.tiny_gpt.tokenizer import to_transformers

    folder = store.new_run_dir(cfg)
    model.save_pretrained(folder)
    to_transformers(tok, s["block_size"]).save_pretrained(folder)
    curves_png = picture.draw_training(log, baselines, samples, corpus_what)
    att_png = picture.draw_attention(att, att_tokens)
    curves, att_file = new_output_path(cfg, "plots", ".png"), new_output_path(cfg, "plots", ".png")
    curves.write_bytes(curves_png)
    att_file.write_bytes(att_png)

    parts = parameter_breakdown(model)
    tokens_per_s = log.steps_run * s["batch_size"] * s["block_size"] / max(log.wall_time_s, 1e-9)
    result = TrainTinyGptResult(
        run_id=folder.name,
        run_path=str(folder),
        load_code=LOAD_CODE.format(path=str(folder), prompt=args.sample_prompt),
        corpus=corpus_what,
        tokenizer="char (one token per character)"
        if args.tokenizer == "char"
        else f"byte-level BPE, {args.bpe_merges} merges",
        vocab_size=vocab,
        train_tokens=len(train_ids),
        val_tokens=len(val_ids),
        settings={**s, "threads": threads},
        parameters=sum(parts.values()),
        parameter_breakdown=ParameterBreakdown(**parts),
        history=_history(log),
        baselines=baselines,
        final_train_loss=log.train_loss[-1],
        final_val_loss=final_val,
        final_val_perplexity=math.exp(final_val),
        beats_bigram=final_val < bigram,
        samples=samples,
        attention=AttentionView(
            tokens=att_tokens,
            heads=_head_focus(att, att_tokens),
            weights_b64=pack_attention(att),
            picture_path=str(att_file),
            picture_uri=output_uri(cfg, att_file),
        ),
        steps_run=log.steps_run,
        stop_reason=log.stop_reason,  # type: ignore[arg-type]
        wall_time_s=round(log.wall_time_s, 3),
        tokens_per_s=round(tokens_per_s, 1),
        torch_threads=threads,
        picture_path=str(curves),
        picture_uri=output_uri(cfg, curves),
    )
    store.write_metrics(folder, args, result)
    images = [InlineImage(curves_png, "loss curves and samples"), InlineImage(att_png, "attention")]
    return ToolOutput(result=result, images=images, summary=_summary(result))


LOAD_CODE = """\
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained({path!r})
tok = AutoTokenizer.from_pretrained({path!r})
ids = tok({prompt!r}, return_tensors="pt").input_ids
text = tok.decode(model.generate(ids, max_new_tokens=60, do_sample=True)[0])  # the continuation"""


def _history(log) -> History:
    return History(
        step=list(log.step),
        train_loss=list(log.train_loss),
        val_loss=list(log.val_loss),
        val_perplexity=[math.exp(v) for v in log.val_loss],
        learning_rate=list(log.learning_rate),
    )


def _whole_split_loss(model, data, block_size: int) -> float:
    """Mean next-token loss over the whole split, in non-overlapping windows of the context size."""

    model.eval()
    n = (len(data) - 1) // block_size
    x = data[: n * block_size].view(n, block_size)  # (n, T)
    y = data[1 : n * block_size + 1].view(n, block_size)  # (n, T)
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, 64):
            logits = model(input_ids=x[i : i + 64]).logits  # (b, T, V)
            total += float(F.cross_entropy(logits.flatten(0, 1), y[i : i + 64].flatten(), reduction="sum"))
    return total / (n * block_size)


def pack_attention(att: torch.Tensor) -> str:
    """(L, nh, T, T) causal weights -> base64 of their lower triangles as bytes round(255 w): the view's copy.

    32 tokens x 2 layers x 4 heads (the quick preset) is 4 kB; the weights above the diagonal are zero anyway.
    """
    T = att.shape[-1]
    rows, cols = torch.tril_indices(T, T)  # (T (T + 1) / 2,) each, row by row
    tri = att[..., rows, cols]  # (L, nh, T (T + 1) / 2)
    q = (tri * 255).round().to(torch.uint8)
    return base64.b64encode(q.flatten().numpy().tobytes()).decode("ascii")


def _head_focus(att, tokens: list[str]) -> list[HeadFocus]:
    L, H, T, _ = att.shape
    dist = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).clamp(min=0).float()  # (T, T) query - key
    out = []
    for layer in range(L):
        for head in range(H):
            a = att[layer, head]  # (T, T)
            last = a[-1]
            top = torch.topk(last, min(3, T))
            out.append(
                HeadFocus(
                    layer=layer,
                    head=head,
                    top=[
                        f"{tokens[int(i)]!r} ({float(w):.2f})"
                        for w, i in zip(top.values, top.indices, strict=True)
                    ],
                    mean_distance=round(float((a * dist).sum() / T), 2),
                )
            )
    return out


def _summary(r: TrainTinyGptResult) -> str:
    b = r.baselines
    lines = [
        f"Trained a {r.parameters:,}-parameter GPT ({r.settings['n_layer']} layers x {r.settings['n_head']} heads x "
        f"{r.settings['n_embd']}, context {r.settings['block_size']}) on {r.corpus}, {r.tokenizer}, vocab {r.vocab_size}.",
        f"{r.steps_run} steps in {r.wall_time_s:.1f} s ({r.tokens_per_s:,.0f} tokens/s, {r.stop_reason}).",
        f"Val loss {r.final_val_loss:.3f} nats (perplexity {r.final_val_perplexity:.1f}) vs bigram {b.bigram_loss:.3f} "
        f"and uniform {b.uniform_loss:.3f}: {'beats' if r.beats_bigram else 'does not beat'} the bigram model.",
        "Samples as training went on:",
        *(f"  step {sm.step}: {sm.text[:80]!r}" for sm in r.samples),
        f"Saved to {r.run_path} (run_id {r.run_id}): sample_text(run_id=...) continues it.",
    ]
    return "\n".join(lines)

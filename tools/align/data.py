"""The data of a stage: built-in addition problems or the caller's own items, checked against the tokenizer
and the context before any training starts (every refusal names the item)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.align import tasks
from tools.align.evaluate import Item
from tools.align.policy import STOP, context_size, encode
from tools.align.rewards import ADDITION_REWARDS
from tools.align.schema import FinetuneGptInput, GrpoPrompt, RewardRule
from tools.common import InvalidArgument

CUSTOM_EVAL_MAX = 50  # own data: the first items double as the eval set (there is no held-out split)


@dataclass
class StageData:
    sft: list[tuple[str, str]] = field(default_factory=list)  # (prompt, response incl. the stop)
    dpo: list[tuple[str, str, str]] = field(default_factory=list)  # (prompt, chosen, rejected), stop included
    dpo_eval: list[tuple[str, str, str]] = field(default_factory=list)
    grpo: list[Item] = field(default_factory=list)
    eval_items: list[Item] = field(default_factory=list)
    rules: list[RewardRule] = field(default_factory=list)
    builtin_format: bool = True


def default_rules(task: str) -> list[RewardRule]:
    return list(ADDITION_REWARDS) if task == "addition" else [RewardRule(kind="format", weight=1.0)]


def build(args: FinetuneGptInput, tokenizer: Any, model: Any) -> StageData:
    d = StageData(rules=args.rewards or default_rules(args.task), builtin_format=args.task == "addition")
    if args.task == "addition":
        train = tasks.addition_examples(args.n_train, args.seed, "train")
        d.sft = [(ex.prompt, ex.response + STOP) for ex in train]
        d.dpo = [
            (p, c + STOP, r + STOP) for p, c, r in tasks.preference_triples(args.n_train, args.seed, "train")
        ]
        d.dpo_eval = [
            (p, c + STOP, r + STOP) for p, c, r in tasks.preference_triples(args.n_eval, args.seed, "eval")
        ]
        d.grpo = [Item(ex.prompt, ex.answer) for ex in train]
        d.eval_items = [
            Item(ex.prompt, ex.answer) for ex in tasks.addition_examples(args.n_eval, args.seed, "eval")
        ]
    elif args.method == "sft":
        assert args.pairs is not None
        d.sft = [(p.prompt, p.response + STOP) for p in args.pairs]
        d.eval_items = [Item(p.prompt, p.response) for p in args.pairs[:CUSTOM_EVAL_MAX]]
        _check_texts(
            tokenizer, model, [("pairs", i, p.prompt, p.response) for i, p in enumerate(args.pairs)], args
        )
    elif args.method == "dpo":
        assert args.triples is not None
        d.dpo = [(t.prompt, t.chosen + STOP, t.rejected + STOP) for t in args.triples]
        d.dpo_eval = d.dpo[:CUSTOM_EVAL_MAX]
        d.eval_items = [Item(t.prompt, t.chosen) for t in args.triples[:CUSTOM_EVAL_MAX]]
        checks = [
            ("triples", i, t.prompt, max(t.chosen, t.rejected, key=len)) for i, t in enumerate(args.triples)
        ]
        _check_texts(tokenizer, model, checks, args)
    else:
        assert args.prompts is not None
        d.grpo = [Item(p.prompt, p.answer) for p in args.prompts]
        d.eval_items = d.grpo[:CUSTOM_EVAL_MAX]
        _check_texts(
            tokenizer, model, [("prompts", i, p.prompt, "") for i, p in enumerate(args.prompts)], args
        )
    return d


def check_prompts(
    items: list[GrpoPrompt], tokenizer: Any, model: Any, max_new_tokens: int, argument: str
) -> None:
    _check(tokenizer, model, [(argument, i, p.prompt, "") for i, p in enumerate(items)], max_new_tokens)


def _check_texts(
    tokenizer: Any, model: Any, items: list[tuple[str, int, str, str]], args: FinetuneGptInput
) -> None:
    _check(tokenizer, model, items, args.max_new_tokens if args.method == "grpo" else 0)


def _check(tokenizer: Any, model: Any, items: list[tuple[str, int, str, str]], room: int) -> None:
    """Each prompt non-empty, fully encodable, and with its response (or `room` new tokens) inside the context."""
    ctx = context_size(model)
    unk = tokenizer.unk_token_id
    for name, i, prompt, response in items:
        where = f"{name}[{i}].prompt"
        if not prompt.strip():
            raise InvalidArgument(where, prompt, "must not be empty: the model needs something to continue")
        for part, text in ((where, prompt), (f"{name}[{i}].response", response)):
            ids = encode(tokenizer, text)
            if unk is not None and unk in ids:
                bad = sorted({c for c in text if unk in encode(tokenizer, c)})
                raise InvalidArgument(
                    part, text, f"has characters the model's tokenizer does not know: {bad}"
                )
        n = len(encode(tokenizer, prompt)) + len(encode(tokenizer, response + STOP)) + room
        if n > ctx:
            raise InvalidArgument(
                where,
                prompt,
                f"prompt + response{' + max_new_tokens' if room else ''} is {n} tokens; the model's "
                f"context holds {ctx}",
            )

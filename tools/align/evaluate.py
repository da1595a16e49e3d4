"""Greedy completions of held-out prompts, scored: exact-answer accuracy, reward, format, length."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.align import rewards as R
from tools.align.policy import decode_completion, encode, sample_many, stop_id
from tools.align.schema import EvalMetrics, RewardRule
from tools.common import Reporter

EVAL_CHUNK = 256  # prompts decoded together (then a cancellation check)


@dataclass(frozen=True)
class Item:
    """An eval or GRPO prompt with its reference answer (None when the caller gave none)."""

    prompt: str
    answer: str | None


@dataclass
class Evaluation:
    metrics: EvalMetrics
    completions: list[str]


def evaluate(
    model: Any,
    tokenizer: Any,
    items: list[Item],
    rules: list[RewardRule],
    builtin_format: bool,
    max_new_tokens: int,
    reporter: Reporter,
) -> Evaluation:
    stop = stop_id(tokenizer)
    texts, totals, formats, answered = [], [], [], []
    all_ids: list[list[int]] = []
    for start in range(0, len(items), EVAL_CHUNK):
        reporter.check_cancelled()
        chunk = [encode(tokenizer, it.prompt) for it in items[start : start + EVAL_CHUNK]]
        all_ids += sample_many(model, chunk, max_new_tokens, stop, 0.0, None, reporter.check_cancelled)
    for it, ids in zip(items, all_ids, strict=True):
        text = decode_completion(tokenizer, ids)
        finished = stop is not None and bool(ids) and ids[-1] == stop
        texts.append(text)
        totals.append(R.score(rules, text, finished, it.answer, builtin_format).total)
        fmt = R.RewardRule(kind="format")
        formats.append(R.score_rule(fmt, text, finished, it.answer, builtin_format))
        if it.answer is not None:
            exact = R.RewardRule(kind="exact_answer")
            answered.append(R.score_rule(exact, text, finished, it.answer, builtin_format))
    n = max(1, len(items))
    metrics = EvalMetrics(
        accuracy=sum(answered) / len(answered) if answered else None,
        mean_reward=sum(totals) / n,
        format_rate=sum(formats) / n,
        mean_length=sum(len(t) for t in texts) / n,
    )
    return Evaluation(metrics, texts)

"""Rule rewards the caller picks and weights: exact answer, format, length near a target, contains / avoids a
word, a regular expression. No code from the caller runs: a rule is data, scored here.

Each rule scores a completion in [0, 1]; the reward is the weighted sum. Before training, `check_rules`
refuses a rule that can never fire (or never change) for this tokenizer and length cap, since GRPO learns
only from differences between completions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.align.schema import RewardRule
from tools.align.tasks import ANSWER_RE, parse_answer
from tools.common import InvalidArgument

ADDITION_REWARDS = [RewardRule(kind="exact_answer", weight=1.0), RewardRule(kind="format", weight=0.2)]


@dataclass(frozen=True)
class Scored:
    total: float
    parts: dict[str, float]  # rule label -> score in [0, 1] (before weighting)


def label(rule: RewardRule) -> str:
    extra = {"length": rule.target, "contains": rule.word, "avoids": rule.word, "regex": rule.pattern}.get(
        rule.kind
    )
    return rule.kind if extra is None else f"{rule.kind}({extra})"


def score_rule(
    rule: RewardRule, text: str, finished: bool, answer: str | None, builtin_format: bool
) -> float:
    """One rule on one completion. `text` is the completion up to the stop; `finished`: it reached the stop."""
    if rule.kind == "exact_answer":
        if answer is None:
            return 0.0
        given = parse_answer(text) if builtin_format else text.strip()
        return float(given == answer.strip())
    if rule.kind == "format":
        # built-in task: one number and the stop; caller's data: the completion ended by itself (not cut)
        return float(finished and (ANSWER_RE.match(text) is not None if builtin_format else True))
    if rule.kind == "length":
        assert rule.target is not None
        return max(0.0, 1.0 - abs(len(text) - rule.target) / rule.target)
    if rule.kind == "contains":
        return float(rule.word is not None and rule.word in text)
    if rule.kind == "avoids":
        return float(rule.word is not None and rule.word not in text)
    assert rule.pattern is not None
    return float(re.search(rule.pattern, text) is not None)


def score(
    rules: list[RewardRule], text: str, finished: bool, answer: str | None, builtin_format: bool
) -> Scored:
    parts = {label(r): score_rule(r, text, finished, answer, builtin_format) for r in rules}
    return Scored(sum(r.weight * parts[label(r)] for r in rules), parts)


def check_rules(
    rules: list[RewardRule],
    chars: set[str] | None,
    max_chars: int,
    have_answers: bool,
    argument: str = "rewards",
) -> None:
    """Refuse a rule that can never fire (or always fires) with this tokenizer and `max_chars` of output.

    `chars`: the characters some token can produce (None = any). A constant rule adds the same number to
    every completion of a group, so it cancels out of GRPO's advantages: it teaches nothing.
    """
    for i, r in enumerate(rules):
        name = f"{argument}[{i}]"
        unproducible = sorted(set(r.word or "") - chars) if chars is not None else []
        if r.kind == "exact_answer" and not have_answers:
            raise InvalidArgument(name, r.kind, "exact_answer needs an `answer` for every prompt")
        if r.kind in ("contains", "avoids") and unproducible:
            never = (
                "can never appear" if r.kind == "contains" else "can never appear, so the rule always fires"
            )
            raise InvalidArgument(
                f"{name}.word",
                r.word,
                f"uses {unproducible}, which no token of the model produces: the word {never}",
            )
        if r.kind in ("contains", "avoids") and r.word is not None and len(r.word) > max_chars:
            raise InvalidArgument(
                f"{name}.word",
                r.word,
                f"is longer than the most a completion can hold ({max_chars} characters)",
            )
        if r.kind == "length" and r.target is not None and r.target > max_chars:
            raise InvalidArgument(
                f"{name}.target",
                r.target,
                f"a completion holds at most {max_chars} characters (max_new_tokens)",
            )
        always = r.pattern is not None and re.fullmatch(r.pattern, "") and re.search(r.pattern, "\x00" * 3)
        if r.kind == "regex" and always:
            raise InvalidArgument(
                f"{name}.pattern", r.pattern, "matches every text, so it can never make a difference"
            )

"""The built-in task with a checkable answer: two-number addition, `Q: 23+58= A: 81`.

A task gives prompts, reference answers, preference pairs and a format to check, all generated from a seed.
A tenth of all (a, b) pairs, picked by a hash, is held out: those problems never appear in training data,
pre-training included, so every accuracy the lab reports is on problems the model never saw.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

STOP = "\n"  # a completion ends at the first newline (responses are trained with it appended)
MAX_OPERAND = 99
ANSWER_RE = re.compile(r"^ ?(-?\d+)$")  # the format: one number after "A:", nothing else


@dataclass(frozen=True)
class Example:
    """One problem: the prompt the model continues, and the reference response (without the stop)."""

    prompt: str
    answer: str  # e.g. "81": what exact_answer compares with

    @property
    def response(self) -> str:
        return " " + self.answer


def prompt_of(a: int, b: int) -> str:
    return f"Q: {a}+{b}= A:"


def pretraining_line(a: int, b: int) -> str:
    """How the base model saw arithmetic while pre-training: bare equations, never the Q/A format."""
    return f"{a}+{b}={a + b}"


def is_held_out(a: int, b: int) -> bool:
    # a multiplicative hash, not a digit rule: "b ends in 0" would hide a whole pattern from training
    return ((a * 131 + b) * 2654435761) % 2**32 % 10 == 0


def addition_examples(n: int, seed: int, split: str) -> list[Example]:
    """`n` problems drawn with `seed` from the train split (9/10 of all pairs) or the held-out eval split."""
    rng = random.Random(seed)
    want_held_out = split == "eval"
    out: list[Example] = []
    while len(out) < n:
        a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
        if is_held_out(a, b) == want_held_out:
            out.append(Example(prompt_of(a, b), str(a + b)))
    return out


def no_carry_sum(a: int, b: int) -> int:
    """The classic mistake: add digit by digit and forget to carry (58 + 23 -> 71)."""
    total, place = 0, 1
    while a or b:
        total += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return total


def near_misses(a: int, b: int) -> list[int]:
    """Plausible wrong sums: off by one, off by ten, and the forgotten carry (when it differs)."""
    s = a + b
    return sorted(w for w in {s - 1, s + 1, s - 10, s + 10, no_carry_sum(a, b)} if w >= 0 and w != s)


def preference_triples(n: int, seed: int, split: str) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected): the right sum against a near miss drawn from `near_misses`.

    Near misses are the classic rejected answers: they share most characters with the right one, so the
    preference is about the digit that is wrong. With only forgotten carries (and off by ten where there is no
    carry), DPO from the SFT model cost 30 points of exact accuracy; see docs/llm_alignment.md.
    """
    rng = random.Random(seed + 7919)
    out = []
    for ex in addition_examples(n, seed, split):
        a, b = (int(x) for x in ex.prompt[3:-4].split("+"))
        out.append((ex.prompt, ex.response, f" {rng.choice(near_misses(a, b))}"))
    return out


def parse_answer(completion: str) -> str | None:
    """The number a completion gives, if it follows the format; None otherwise."""
    m = ANSWER_RE.match(completion.split(STOP, 1)[0])
    return m.group(1) if m else None

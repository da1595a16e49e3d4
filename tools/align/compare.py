"""compare_gpt_stages: the same held-out prompts through base, SFT, DPO and GRPO; one table, one picture."""

from __future__ import annotations

from typing import Any

from tools.align import data as D
from tools.align import picture, policy, rewards, store, tasks
from tools.align.evaluate import Item, evaluate
from tools.align.lab import _load, to_inline_png_bytes
from tools.align.schema import CompareGptStagesInput, CompareGptStagesResult, StageRow
from tools.common import InlineImage, InvalidArgument, Reporter, ToolOutput
from tools.config import LabConfig
from tools.paths import new_output_path, output_uri

MAX_LINEAGE = 6


def lineage(cfg: LabConfig, run: str) -> list[store.Stage]:
    """A stage and the stages it was trained from, oldest first (base, sft, dpo, grpo...)."""
    chain = [store.resolve_stage(cfg, run, "runs[0]")]
    while chain[-1].parent is not None and len(chain) < MAX_LINEAGE:
        chain.append(store.resolve_stage(cfg, chain[-1].parent, "runs[0]"))
    return chain[::-1]


def compare_gpt_stages(args: CompareGptStagesInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    # 1. Stages (one run alone: its lineage) and their models; all must share one tokenizer
    if len(args.runs) == 1:
        stages = lineage(cfg, args.runs[0])
    else:
        stages = [store.resolve_stage(cfg, r, f"runs[{i}]") for i, r in enumerate(args.runs)]
    loaded: list[tuple[Any, Any]] = []
    for i, s in enumerate(stages):
        model, tok = _load(s, f"runs[{i}]")
        if loaded and tok.get_vocab() != loaded[0][1].get_vocab():
            raise InvalidArgument(
                f"runs[{i}]",
                s.name,
                f"has another tokenizer than runs[0] ({stages[0].name}); "
                "stages compared on the same prompts must share one tokenizer",
            )
        loaded.append((model, tok))

    with policy.few_threads(loaded[0][0]):
        return _compare(args, cfg, reporter, stages, loaded)


def _compare(args, cfg, reporter, stages, loaded) -> ToolOutput:
    # 2. Prompts and rules
    if args.task == "addition":
        items = [Item(ex.prompt, ex.answer) for ex in tasks.addition_examples(args.n_eval, args.seed, "eval")]
    else:
        assert args.prompts is not None
        D.check_prompts(args.prompts, loaded[0][1], loaded[0][0], args.max_new_tokens, "prompts")
        items = [Item(p.prompt, p.answer) for p in args.prompts]
    rules = args.rewards or D.default_rules(args.task)
    tok0 = loaded[0][1]
    max_chars = policy.max_completion_chars(tok0, args.max_new_tokens)
    rewards.check_rules(
        rules, policy.producible_chars(tok0), max_chars, all(it.answer is not None for it in items)
    )

    # 3. Every stage on the same prompts (greedy)
    rows, outputs = [], []
    for i, (s, (model, tok)) in enumerate(zip(stages, loaded, strict=True)):
        reporter.progress(i, len(stages), f"evaluating {s.method} ({s.name})")
        ev = evaluate(model, tok, items, rules, args.task == "addition", args.max_new_tokens, reporter)
        rows.append(StageRow(run=s.name, method=s.method, metrics=ev.metrics))
        outputs.append(ev.completions)
    reporter.progress(len(stages), len(stages), "drawing")
    examples = [
        {"prompt": it.prompt, "answer": it.answer, **{f"s{k}": outputs[k][j] for k in range(len(stages))}}
        for j, it in enumerate(items[: args.n_examples])
    ]

    # 4. Table and picture
    png = picture.draw_compare(rows, examples)
    pic = new_output_path(cfg, "plots", ".png")
    pic.write_bytes(png)
    table = _table(rows)
    result = CompareGptStagesResult(
        stages=rows,
        examples=examples,
        rewards=[f"{r.weight:g} x {rewards.label(r)}" for r in rules],
        table_markdown=table,
        picture_path=str(pic),
        picture_uri=output_uri(cfg, pic),
    )
    summary = f"{len(rows)} stages on {len(items)} prompts (greedy):\n{table}"
    return ToolOutput(result, [InlineImage(to_inline_png_bytes(png), "stages side by side")], summary)


def _table(rows: list[StageRow]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lines = ["| stage | run | accuracy | mean reward | format | length |", "|---|---|---|---|---|---|"]
    for r in rows:
        m = r.metrics
        lines.append(
            f"| {r.method} | {r.run} | {pct(m.accuracy)} | {m.mean_reward:.3f} | {pct(m.format_rate)} | "
            f"{m.mean_length:.1f} |"
        )
    return "\n".join(lines)

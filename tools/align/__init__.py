"""The alignment lab: finetune_gpt (SFT, DPO, GRPO on a tiny GPT) and compare_gpt_stages.

Importing this package loads only the argument and result models; torch and transformers load on the first call.
"""

from __future__ import annotations

from tools.align.schema import (
    CompareGptStagesInput,
    CompareGptStagesResult,
    FinetuneGptInput,
    FinetuneGptResult,
)
from tools.common import Reporter, ToolOutput
from tools.config import LabConfig

__all__ = [
    "CompareGptStagesInput",
    "CompareGptStagesResult",
    "FinetuneGptInput",
    "FinetuneGptResult",
    "run_compare",
    "run",
]


def run(args: FinetuneGptInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    """finetune_gpt: check, evaluate before, train, evaluate after, save the stage, draw. See `lab.finetune_gpt`."""
    from tools.align.lab import finetune_gpt

    return finetune_gpt(args, cfg, reporter)


def run_compare(args: CompareGptStagesInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    """compare_gpt_stages: the same prompts through each stage. See `compare.compare_gpt_stages`."""
    from tools.align.compare import compare_gpt_stages

    return compare_gpt_stages(args, cfg, reporter)

"""train_tiny_gpt: a GPT-2-style decoder trained from scratch on CPU, on your text or a built-in corpus.

Importing this package loads only the argument and result models; torch and transformers load on a call.
"""

from __future__ import annotations

from tools.common import Reporter, ToolOutput
from tools.config import LabConfig
from tools.tiny_gpt.schema import TrainTinyGptInput, TrainTinyGptResult

__all__ = ["TrainTinyGptInput", "TrainTinyGptResult", "run"]


def run(args: TrainTinyGptInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    """Plan, read the text, tokenize, train, look at attention, save. See `lab.train_tiny_gpt`."""
    from tools.tiny_gpt.lab import train_tiny_gpt

    return train_tiny_gpt(args, cfg, reporter)

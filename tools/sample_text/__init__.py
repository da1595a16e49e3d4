"""sample_text: next-token prediction made visible. Generate from a tiny GPT run or a local GPT-2-style model.

Importing this package loads only the argument and result models; torch and transformers load on a call.
"""

from __future__ import annotations

from tools.common import Reporter, ToolOutput
from tools.config import LabConfig
from tools.sample_text.schema import SampleTextInput, SampleTextResult

__all__ = ["SampleTextInput", "SampleTextResult", "run"]


def run(args: SampleTextInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    """Load the model, sample token by token, draw the first steps. See `sample.sample_text`."""
    from tools.sample_text.sample import sample_text

    return sample_text(args, cfg, reporter)

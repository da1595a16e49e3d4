"""tokenize_text: how text becomes the tokens a language model sees (characters, bytes, BPE, saved tokenizers).

Importing this package loads only the argument and result models; the tokenizers and matplotlib load on a call.
"""

from __future__ import annotations

from tools.common import Reporter, ToolOutput
from tools.config import LabConfig
from tools.tokenize_text.schema import TokenizeTextInput, TokenizeTextResult

__all__ = ["TokenizeTextInput", "TokenizeTextResult", "run"]


def run(args: TokenizeTextInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    """Read the text, build the tokenizer, encode, draw. See `tokenize.tokenize_text`."""
    from tools.tokenize_text.tokenize import tokenize_text

    return tokenize_text(args, cfg, reporter)

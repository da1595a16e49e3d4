"""MCP registration of tokenize_text (the work is in tools/tokenize_text/)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_server.adapter import WRITES_NEW_FILES, register_tool
from tools import tokenize_text
from tools.config import LabConfig

DESCRIPTION = """\
Show how text becomes the tokens a language model sees: each token with its id, its text and its character
span; counts of characters, bytes and tokens and their ratios; and a picture of the text with token boundaries
coloured and ids underneath. Use it for "why can't ChatGPT count the r's in strawberry" (the model sees
'st|raw|berry', not letters), why Chinese costs more tokens, what BPE merges are.
Tokenizers: chars, bytes (UTF-8), bpe (a byte-level BPE trained now on a built-in corpus or your .txt/.md,
with `bpe_merges` merges; the first merges learnt are listed in order), builtin_image (the built-in image
model's tokenizer), run (a train_tiny_gpt run's tokenizer, by run_id), folder (a local tokenizer.json).
`compare_text` tokenizes a second text (e.g. the Chinese sentence) the same way, side by side."""


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="tokenize_text",
        title="Text -> tokens",
        description=DESCRIPTION,
        input_model=tokenize_text.TokenizeTextInput,
        result_model=tokenize_text.TokenizeTextResult,
        run=tokenize_text.run,
        annotations=WRITES_NEW_FILES,  # the picture
    )

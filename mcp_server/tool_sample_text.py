"""MCP registration of sample_text (the work is in tools/sample_text/)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_server.adapter import WRITES_NEW_FILES, register_tool
from tools import sample_text
from tools.config import LabConfig

DESCRIPTION = """\
Generate text from a train_tiny_gpt run (run_id) or a local GPT-2-style model folder (model_path), one token at
a time, showing for every generated token its probability and the top-5 alternatives: next-token prediction made
visible. temperature (0 = greedy, 0.2 sharp, 1 the model's own distribution, 1.5 wild), top_k, top_p, seed,
max_new_tokens. Returns a picture of the first steps' distributions."""


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="sample_text",
        title="Sample text, token by token",
        description=DESCRIPTION,
        input_model=sample_text.SampleTextInput,
        result_model=sample_text.SampleTextResult,
        run=sample_text.run,
        annotations=WRITES_NEW_FILES,  # the picture of the first steps
    )

"""Build the MCPServer: tools, resources, prompts. Nothing heavy is imported here."""

from __future__ import annotations

import importlib
import mimetypes

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from mcp_server import apps
from mcp_server.adapter import resource_errors
from mcp_server.jobs import long_tools_of, runner_of
from mcp_server.tasks import JobTasks
from tools import __version__
from tools.config import LabConfig
from tools.paths import OUTPUT_URI_PREFIX, resolve_output_uri

INSTRUCTIONS = """\
ml-lab-mcp is a hands-on deep-learning lab backed by real PyTorch computation.
- tensorize_image: show what an image looks like as a tensor (shape, values, channels, normalization).
- train_toy_mlp: train a small neural network on 2-D toy data (TensorFlow-Playground style) and compare variants.
- generate_image: text-to-image (and image-to-image) with a real latent diffusion pipeline, offline.
- tokenize_text: how text becomes tokens (characters, bytes, BPE; "strawberry", Chinese vs English).
- train_tiny_gpt / sample_text: pre-train a tiny GPT on CPU, watch it learn, look at attention, sample from it.
- finetune_gpt / compare_gpt_stages: SFT, DPO and GRPO on a tiny GPT, and the stages side by side.
- teach_image_model: teach the built-in image model a new word from a few pictures (LoRA), then use it in generate_image.
- explain_concept: explain a deep-learning concept in English and/or Chinese, with a live demo.
Results carry numbers (structured content) and pictures; files are saved under the server's output folder
and exposed as mllab://outputs/... resources that later calls can reuse (e.g. as init_image).
"""

# One module per tool family; each has `register(mcp, cfg)`.
_REGISTRARS = (
    "mcp_server.tool_tensorize",
    "mcp_server.tool_explain",
    "mcp_server.tool_toy_mlp",
    "mcp_server.tool_generate",
    "mcp_server.tool_tokenize_text",
    "mcp_server.tool_tiny_gpt",
    "mcp_server.tool_sample_text",
    "mcp_server.tool_jobs",
    "mcp_server.tool_align",
    "mcp_server.tool_teach_image",
)


def build_server(cfg: LabConfig, registrars: tuple[str, ...] = _REGISTRARS) -> MCPServer:
    tasks = JobTasks(lambda: runner_of(mcp, cfg), lambda: long_tools_of(mcp))  # long tools as MCP tasks
    mcp = MCPServer(
        middleware=[cap_error_text],
        name="ml-lab-mcp",
        title="ML Lab",
        version=__version__,
        instructions=INSTRUCTIONS,
        description="A hands-on deep-learning lab: real PyTorch tools for tensors, training, diffusion and concepts.",
        extensions=[apps.build_apps(), tasks],
    )
    for module_name in registrars:
        importlib.import_module(module_name).register(mcp, cfg)
    apps.link_tools(mcp)
    _register_outputs(mcp, cfg)
    return mcp


MAX_ERROR_CHARS = 4000


async def cap_error_text(ctx, call_next):
    """Shorten an error result's text to MAX_ERROR_CHARS.

    The SDK reports a schema mismatch with one line per bad item, so a 100000-item list of the wrong type came
    back as a 17 MB error (over any client's limit). The first lines say what is wrong; the rest is cut.
    """
    result = await call_next(ctx)
    if isinstance(result, CallToolResult):
        blocks = [b for b in result.content if isinstance(b, TextContent)] if result.is_error else []
        for block in blocks:
            block.text = _cut(block.text)
    elif isinstance(result, dict) and result.get("isError"):  # the handler's result, already in wire form
        for block in result.get("content") or []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                block["text"] = _cut(block["text"])
    return result


def _cut(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    cut = text[:MAX_ERROR_CHARS].rsplit("\n", 1)[0]
    return f"{cut}\n... (cut: the whole message was {len(text)} characters)"


def _register_outputs(mcp: MCPServer, cfg: LabConfig) -> None:
    @mcp.resource(
        OUTPUT_URI_PREFIX + "{category}/{name}",
        name="output_file",
        title="A file this server wrote",
        description="Images, tensors, run metrics and weights saved by earlier tool calls.",
    )
    def read_output(category: str, name: str) -> str | bytes:
        with resource_errors():
            path = resolve_output_uri(f"{OUTPUT_URI_PREFIX}{category}/{name}", cfg, "uri")
        mime, _ = mimetypes.guess_type(path.name)
        if mime in ("application/json", "text/plain") or path.suffix in (".json", ".txt", ".md"):
            return path.read_text(encoding="utf-8")
        return path.read_bytes()

"""MCP registration of train_tiny_gpt and sample_text, plus the mllab://gpt-runs resources (saved runs)."""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.types import ToolAnnotations

from mcp_server.adapter import register_tool
from tools import sample_text, tiny_gpt
from tools.config import LabConfig

TRAIN_DESCRIPTION = """\
Pre-train a tiny GPT from scratch on CPU (a transformers GPT-2, trained by a short nanoGPT-style loop: AdamW,
warm-up + cosine decay, gradient clipping, train/val split) and watch next-token prediction being learnt.
Text: a built-in corpus (concepts_en, concepts_zh, arithmetic, names), inline `text`, or your .txt/.md file or
folder (`corpus_path`). Tokenizer: char (default, as nanoGPT's shakespeare_char) or bpe.
Presets: quick (about 30 s, fits one call) and nanogpt_cpu (nanoGPT's CPU recipe: minutes; run it as a job).
Returns train/val loss curves (nats and perplexity) against a uniform and a bigram baseline on the same split,
samples from a fixed prompt at every evaluation (gibberish turning into words), tokens/s, parameter count by
part (embeddings, attention, MLP), and attention heatmaps per layer and head for a prompt. The run is saved as a
standard save_pretrained folder (AutoModelForCausalLM / AutoTokenizer load it) and listed at mllab://gpt-runs;
continue it with sample_text(run_id=...)."""

SAMPLE_DESCRIPTION = """\
Generate text from a train_tiny_gpt run (run_id) or a local GPT-2-style model folder (model_path), one token at
a time, showing for every generated token its probability and the top-5 alternatives: next-token prediction made
visible. temperature (0 = greedy, 0.2 sharp, 1 the model's own distribution, 1.5 wild), top_k, top_p, seed,
max_new_tokens. Returns a picture of the first steps' distributions."""


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="train_tiny_gpt",
        title="Pre-train a tiny GPT",
        description=TRAIN_DESCRIPTION,
        input_model=tiny_gpt.TrainTinyGptInput,
        result_model=tiny_gpt.TrainTinyGptResult,
        run=tiny_gpt.run,
        # Saves a new run folder; never destructive; same arguments and seed, same losses (when not cut by time).
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
        progress_interval_s=0.2,
    )
    register_tool(
        mcp,
        cfg,
        name="sample_text",
        title="Sample text, token by token",
        description=SAMPLE_DESCRIPTION,
        input_model=sample_text.SampleTextInput,
        result_model=sample_text.SampleTextResult,
        run=sample_text.run,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )

    @mcp.resource(
        "mllab://gpt-runs",
        name="gpt_runs",
        title="Recent train_tiny_gpt runs",
        description="The 20 most recent tiny GPT runs, newest first: corpus, size, final losses, baselines.",
        mime_type="application/json",
    )
    def list_runs() -> str:
        from tools.tiny_gpt.store import list_runs

        return json.dumps(list_runs(cfg), ensure_ascii=False, indent=1)

    @mcp.resource(
        "mllab://gpt-runs/{run_id}",
        name="gpt_run",
        title="One train_tiny_gpt run",
        description="The arguments and full result (curves, samples, attention summary) of a run, by run_id.",
        mime_type="application/json",
    )
    def read_run(run_id: str) -> str:
        from tools.tiny_gpt.store import read_run

        text = read_run(cfg, run_id)
        if text is None:
            raise ResourceError(f"no saved run {run_id!r}; list them at mllab://gpt-runs")
        return text

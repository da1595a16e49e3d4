"""MCP registration of train_tiny_gpt, plus the mllab://gpt-runs resources (saved runs)."""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from mcp_server.adapter import WRITES_NEW_FILES, register_tool
from tools import tiny_gpt
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
        annotations=WRITES_NEW_FILES,  # a run folder; same arguments and seed, same losses (unless cut by time)
        progress_interval_s=0.2,
        long_running=True,  # minutes of training: past wait_s the call returns a job (docs/jobs.md)
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

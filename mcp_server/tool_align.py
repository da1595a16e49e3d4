"""MCP wrappers of finetune_gpt and compare_gpt_stages, plus the mllab://gpt-stages resources (saved stages)."""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from mcp_server.adapter import WRITES_NEW_FILES, register_tool
from tools import align
from tools.config import LabConfig

FINETUNE = """\
Fine-tune a tiny GPT the way chat models are made, on CPU in seconds: method='sft' (learn responses, prompt
tokens masked), 'dpo' (prefer chosen over rejected answers against a frozen reference, plus sft_weight x the SFT loss
on chosen; reports implicit reward margins and preference accuracy) or 'grpo' (sample a group of answers per prompt, score them with rule rewards,
reinforce the above-average ones with a clipped policy gradient and a KL penalty; reports reward, KL, length and
the share of groups with signal per step). Default task: built-in addition 'Q: 23+58= A: 81' from base_run='builtin'
(a tiny GPT pre-trained on bare equations); or task='custom' with your own pairs / triples / prompts. Rewards:
exact_answer, format, length, contains, avoids, regex, with weights. Returns before/after accuracy and reward on
held-out prompts, curves and a picture; the stage is saved as a transformers folder (run_id, listed at
mllab://gpt-stages) to use as base_run of the next stage, in compare_gpt_stages and in sample_text.
Typical chain: sft -> dpo (base_run=<sft run>) -> grpo (base_run=<dpo run>) -> compare_gpt_stages([<grpo run>])."""

COMPARE = """\
Run the same held-out prompts through several stages of a tiny GPT (e.g. base, SFT, DPO, GRPO) and show
exact-answer accuracy, mean reward, format rate and length for each, plus a few answers side by side, in one
table and one picture: what each stage of "RLHF" changes. Give one finetune_gpt run id to compare its whole
lineage, or a list of runs ('builtin' is the pre-trained base)."""


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="finetune_gpt",
        title="Fine-tune a tiny GPT: SFT, DPO or GRPO",
        description=FINETUNE,
        input_model=align.FinetuneGptInput,
        result_model=align.FinetuneGptResult,
        run=align.run,
        annotations=WRITES_NEW_FILES,  # each call saves a stage / a picture
        progress_interval_s=0.2,
        long_running=True,  # a stage may train for minutes: past wait_s the call returns a job (docs/jobs.md)
    )
    register_tool(
        mcp,
        cfg,
        name="compare_gpt_stages",
        title="Compare GPT stages side by side",
        description=COMPARE,
        input_model=align.CompareGptStagesInput,
        result_model=align.CompareGptStagesResult,
        run=align.run_compare,
        annotations=WRITES_NEW_FILES,  # each call saves a stage / a picture
        progress_interval_s=0.2,
    )

    @mcp.resource(
        "mllab://gpt-stages",
        name="gpt_stages",
        title="Recent finetune_gpt stages",
        description="The 20 most recent fine-tuned stages, newest first, with before/after figures and folders.",
        mime_type="application/json",
    )
    def list_stages() -> str:
        from tools.align.store import list_stages

        return json.dumps(list_stages(cfg), ensure_ascii=False, indent=1)

    @mcp.resource(
        "mllab://gpt-stages/{run_id}",
        name="gpt_stage",
        title="One finetune_gpt stage",
        description="The arguments and full result (metrics, history, samples, folder) of a saved stage.",
        mime_type="application/json",
    )
    def read_stage(run_id: str) -> str:
        from tools.align.store import read_stage

        text = read_stage(cfg, run_id)
        if text is None:
            raise ResourceError(f"no saved stage {run_id!r}; list them at mllab://gpt-stages")
        return text

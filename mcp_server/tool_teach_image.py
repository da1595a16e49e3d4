"""MCP registration of teach_image_model, plus the mllab://image-loras resources (saved adapters)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from mcp_server.adapter import WRITES_NEW_FILES, register_tool
from tools import teach_image
from tools.config import LabConfig

DESCRIPTION = """\
Teach the built-in image model a new word (e.g. 'star') from 4-20 pictures, as kohya_ss/diffusers LoRA training
does: the word becomes a new token with its own trained embedding row, and a LoRA (peft, rank r) on every
attention projection of the UNet (to_q, to_k, to_v, to_out.0) learns the look; the rest stays frozen. Half of each
batch is the model's old scenes (prior preservation) so the old words keep working. Captions come from a template
filled in from each picture's pixels ('a {size} {colour} {word} in the {position} on a {background} background')
or are given; with the template, each flat-coloured picture also trains as 8 re-coloured, moved copies (augment) so
the word learns the outline, not the pictures' colours and places. Returns a before/after grid at several LoRA scales, the loss curve, and the adapter's size against
its rank (r x sum of in + out). The adapter is saved in diffusers' format (pipe.load_lora_weights +
load_textual_inversion), listed at mllab://image-loras; draw with it: generate_image(lora=<lora_id>, lora_scale=1).
Takes about 2 minutes on 2 free cores: run it as a job."""


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="teach_image_model",
        title="Teach the image model a new word (LoRA)",
        description=DESCRIPTION,
        input_model=teach_image.TeachImageInput,
        result_model=teach_image.TeachImageResult,
        run=teach_image.run,
        annotations=WRITES_NEW_FILES,  # an adapter folder and pictures; same seed, same adapter
        progress_interval_s=0.2,
        long_running=True,  # minutes of training: past wait_s the call returns a job (docs/jobs.md)
    )

    @mcp.resource(
        "mllab://image-loras",
        name="image_loras",
        title="Words taught to the image model",
        description="The 20 most recent teach_image_model adapters, newest first: word, rank, size, usage.",
        mime_type="application/json",
    )
    def list_adapters() -> str:
        import json

        from tools.teach_image.store import list_adapters

        return json.dumps(list_adapters(cfg), ensure_ascii=False, indent=1)

    @mcp.resource(
        "mllab://image-loras/{lora_id}",
        name="image_lora",
        title="One taught word",
        description="The arguments and full result (captions, loss curve, sizes) of a teach_image_model adapter.",
        mime_type="application/json",
    )
    def read_adapter(lora_id: str) -> str:
        from tools.teach_image.store import read

        text = read(cfg, lora_id)
        if text is None:
            raise ResourceError(f"no adapter {lora_id!r}; list them at mllab://image-loras")
        return text

"""End to end: the installed `ml-lab-mcp` console script over stdio, every tool called, valid and invalid."""

from __future__ import annotations

import base64
import io
import os
import shutil
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from PIL import Image

# One valid and one invalid call per tool; the invalid call's error must name the argument.
VALID = {
    "tensorize_image": lambda img: {"image": img, "normalize": "unit", "preview_size": 4},
    "explain_concept": lambda img: {"concept": "residual connection", "language": "both"},
    "train_toy_mlp": lambda img: {"dataset": "xor", "hidden_layers": [4], "epochs": 5, "n_samples": 100},
    "generate_image": lambda img: {"prompt": "a red circle on a blue background", "steps": 2, "seed": 1},
    "list_models": lambda img: {},
    "tokenize_text": lambda img: {"text": "strawberry", "compare_text": "草莓", "tokenizer": "bytes"},
    "train_tiny_gpt": lambda img: {
        "corpus": "names",
        "n_layer": 1,
        "n_embd": 16,
        "n_head": 2,
        "block_size": 16,
        "batch_size": 4,
        "max_steps": 2,
        "eval_interval": 2,
        "eval_iters": 1,
    },
    "sample_text": lambda run_id: {"run_id": run_id, "prompt": "ma", "max_new_tokens": 5},
    "finetune_gpt": lambda img: {"method": "sft", "steps": 2, "n_eval": 10},
    "compare_gpt_stages": lambda img: {"runs": ["builtin"], "n_eval": 3, "n_examples": 1},
    "list_jobs": lambda img: {},
    "teach_image_model": lambda img: {
        "word": "blob",
        "images": [img] * 4,
        "captions": ["a green blob"] * 4,
        "steps": 1,
        "rank": 1,
        "lora_scales": [1.0],
        "sample_steps": 1,
        "grid_prompts": ["a blob"],
    },  # fmt: skip
}
# job_status and cancel_job need a job: called here only with one that does not exist (the refusal names job_id).
JOB_TOOLS = {"job_status", "cancel_job"}
INVALID = {
    "job_status": ({"job_id": "job-" + "x" * 22}, "job_id"),
    "cancel_job": ({"job_id": "job-" + "x" * 22}, "job_id"),
    "tensorize_image": ({"image": "x.png", "normalize": "sideways"}, "normalize"),
    "explain_concept": ({"concept": "relu", "language": "klingon"}, "language"),
    "train_toy_mlp": ({"dataset": "donut"}, "dataset"),
    "generate_image": ({"prompt": "a red circle", "steps": 100000}, "steps"),
    "train_tiny_gpt": ({"n_head": 3, "n_embd": 64}, "n_head"),
    "teach_image_model": ({"word": "Blob", "images": ["a.png"] * 4}, "word"),
}


def _console_script() -> str:
    script = Path(sys.executable).parent / "ml-lab-mcp"
    return (
        str(script)
        if script.exists()
        else shutil.which("ml-lab-mcp") or pytest.skip("console script missing")
    )


async def test_console_script_over_stdio_lists_and_calls_every_tool(tmp_path):
    img_path = tmp_path / "pic.png"
    Image.new("RGB", (12, 9), (10, 200, 30)).save(img_path)
    params = StdioServerParameters(
        command=_console_script(),
        args=["--output-dir", str(tmp_path / "out"), "--allow-dir", str(tmp_path), "--log-level", "WARNING"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    async with Client(params, mode="legacy") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert set(VALID) | JOB_TOOLS == names, names
        run_id = ""
        for name in sorted(set(VALID), key=lambda n: n == "sample_text"):  # sample_text continues the GPT run
            res = await c.call_tool(name, VALID[name](run_id if name == "sample_text" else str(img_path)))
            assert not res.is_error, (name, res.content[0].text[:500])
            assert res.structured_content, name
            if name == "train_tiny_gpt":
                run_id = res.structured_content["run_id"]
        # a picture comes back inline for the tools that draw
        res = await c.call_tool("tensorize_image", VALID["tensorize_image"](str(img_path)))
        images = [b for b in res.content if b.type == "image"]
        assert images and Image.open(io.BytesIO(base64.b64decode(images[0].data))).format == "PNG"
        assert res.structured_content["shape"] == [3, 9, 12]
        for name, (args, argument) in INVALID.items():
            res = await c.call_tool(name, args)
            assert res.is_error, name
            assert argument in res.content[0].text, (name, res.content[0].text[:300])
        # still serving after the errors
        assert len((await c.list_tools()).tools) == len(names)

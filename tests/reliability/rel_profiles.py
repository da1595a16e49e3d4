"""Hints for tools whose schema alone does not give a fast valid call (the only place tools are named in the
reliability harness; rel_harness re-exports them)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tools.config import LabConfig

DEMO_TOOL = "reliability_demo"  # the harness's own tool (reliability_demo_tool.py)

# ---------------------------------------------------------------- tool hints (optional, by name)

# Hints for tools whose schema alone gives slow or mostly-refused calls (all optional; by tool name):
#   base(cfg)   -> arguments of a fast, deterministic valid call (merged over the schema's minimal ones)
#   valid(cfg)  -> {argument: strategy} replacing the schema-drawn strategy in the "valid" fuzz batch
#   long(cfg)   -> arguments of a call that runs for many seconds unless cancelled (needs roomy limits)
#   image_args  -> arguments that take an image input
# Tools missing here get schema-derived arguments only.
CONCEPTS = ["relu", "softmax", "dropout", "gradient_descent", "attention", "tensor", "class", "temperature"]


def sample_image(cfg: LabConfig, name: str = "sample.png", size: tuple[int, int] = (48, 32)) -> str:
    """A small real image in the first allowed folder (written once)."""
    from PIL import Image

    path = cfg.allowed_dirs[0] / name
    if not path.exists():
        im = Image.new("RGB", size)
        im.putdata([((x * 5) % 256, (x // 7) % 256, 128) for x in range(size[0] * size[1])])
        im.save(path)
    return str(path)


def _data_uri(cfg: LabConfig) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(sample_image(cfg)).read_bytes()).decode()


def _sts():
    from hypothesis import strategies as st

    return st


TINY_GPT = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 4, "max_steps": 3,
            "eval_interval": 3, "eval_iters": 1, "sample_tokens": 4}  # fmt: skip

TOOL_PROFILES: dict[str, dict[str, Any]] = {
    DEMO_TOOL: {
        "base": lambda cfg: {"count": 5, "seed": 3},
        "valid": lambda cfg: {"seconds": _sts().sampled_from([0.0, 0.1])},
        "long": lambda cfg: {"seconds": 30, "label": "long"},
        "image_args": ["image"],
    },
    "tensorize_image": {
        "base": lambda cfg: {"image": sample_image(cfg)},
        "valid": lambda cfg: {"image": _sts().sampled_from([sample_image(cfg), _data_uri(cfg)])},
        "image_args": ["image"],
    },
    "generate_image": {
        "base": lambda cfg: {
            "prompt": "a red circle in the center on a blue background",
            "steps": 2,
            "seed": 1,
        },
        "valid": lambda cfg: {
            "steps": _sts().integers(1, 3),
            "num_images": _sts().integers(1, 2),
            "width": _sts().sampled_from([None, 64]),
            "height": _sts().sampled_from([None, 64]),
            "init_image": _sts().sampled_from([None, sample_image(cfg)]),
        },
        "long": lambda cfg: {
            "prompt": "a long one",
            "steps": 1000,
            "width": 64,
            "height": 64,
            "num_images": 1,
        },
        "image_args": ["init_image"],
    },
    "train_toy_mlp": {
        "base": lambda cfg: {"n_samples": 100, "epochs": 20, "hidden_layers": [4], "seed": 1},
        "valid": lambda cfg: {
            "n_samples": _sts().integers(10, 200),
            "epochs": _sts().integers(1, 40),
            "time_budget_s": _sts().sampled_from([None, 1.0]),
        },
        "long": lambda cfg: {"n_samples": 200, "epochs": 100_000, "batch_size": 1, "time_budget_s": 50},
        "image_args": [],
    },
    "tokenize_text": {
        "base": lambda cfg: {"text": "strawberry", "tokenizer": "chars"},
        "valid": lambda cfg: {
            "tokenizer": _sts().sampled_from(["chars", "bytes"]),
            "compare_text": _sts().sampled_from([None, "草莓"]),
        },
        "image_args": [],
    },
    "train_tiny_gpt": {
        "base": lambda cfg: {"corpus": "arithmetic", **TINY_GPT},
        "valid": lambda cfg: {
            **{k: _sts().just(v) for k, v in TINY_GPT.items()},
            "max_steps": _sts().integers(1, 4),
            "tokenizer": _sts().sampled_from(["char", "bpe"]),
            "bpe_merges": _sts().integers(1, 50),
            "time_budget_s": _sts().just(10.0),
        },
        "long": lambda cfg: {"max_steps": 20_000, "eval_interval": 5000, "time_budget_s": 50},
        "image_args": [],
        "fuzz_valid": 3,
        "fuzz_invalid": 8,
    },
    # sample_text needs a run trained first (no long profile): tests/tools/test_sampling_cancel.py checks that
    # every token is a cancellation point.
    "sample_text": {"base": lambda cfg: {"max_new_tokens": 2}, "image_args": []},
    # The job tools answer about other calls (their results depend on what ran before): fuzzed, not compared.
    "job_status": {"stateful": True, "image_args": []},
    "cancel_job": {"stateful": True, "image_args": []},
    "list_jobs": {"stateful": True, "image_args": []},
    "finetune_gpt": {
        "base": lambda cfg: {"steps": 2, "n_eval": 10, "seed": 1},
        "valid": lambda cfg: {
            "method": _sts().sampled_from(["sft", "dpo", "grpo"]),
            "steps": _sts().integers(1, 3),
            "n_eval": _sts().integers(10, 20),
            "batch_size": _sts().sampled_from([None, 2]),
        },
        "long": lambda cfg: {"steps": 5000, "n_eval": 10, "time_budget_s": 50},
        "image_args": [],
        "fuzz_valid": 3,
        "fuzz_invalid": 8,
    },
    "teach_image_model": {
        "base": lambda cfg: {
            "word": "blob",
            "images": [sample_image(cfg)] * 4,
            "captions": ["a blob"] * 4,
            "steps": 1,
            "rank": 1,
            "lora_scales": [1.0],
            "sample_steps": 1,
            "grid_prompts": ["a blob"],
            "seed": 1,
        },
        "valid": lambda cfg: {"steps": _sts().integers(1, 2), "rank": _sts().sampled_from([1, 2])},
        "long": lambda cfg: {"steps": 5000, "time_budget_s": 50},
        "image_args": [],
        "fuzz_valid": 2,
        "fuzz_invalid": 8,
    },  # fmt: skip
    "compare_gpt_stages": {
        "base": lambda cfg: {"runs": ["builtin"], "n_eval": 5},
        # seconds of greedy decoding: 6 stages x 2000 prompts (the cancel must land before the drawing)
        "long": lambda cfg: {"runs": ["builtin"] * 6, "n_eval": 2000, "max_new_tokens": 256},
        "valid": lambda cfg: {"n_eval": _sts().integers(1, 10), "n_examples": _sts().integers(1, 3)},
        "image_args": [],
    },
    "explain_concept": {
        "base": lambda cfg: {"concept": "relu"},
        "valid": lambda cfg: {"concept": _sts().sampled_from(CONCEPTS)},
        "image_args": [],
    },
}

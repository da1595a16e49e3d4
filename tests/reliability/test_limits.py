"""Every cap in tools.config.Limits, tested at its edge through a real client: at the cap the call is accepted,
one over it is refused with a message naming the argument. Caps are configuration: `--limit NAME=VALUE` on
the command line sets each of them (checked by parsing and end to end over stdio)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rel_harness import (
    DEMO_TOOL,
    build,
    check_result,
    in_memory,
    make_cfg,
    result_text,
    sample_image,
    small_limits,
)
from rel_process import RawServer

from mcp_server.cli import build_parser, config_from_args, parse_limits
from tools.config import Limits

IMG = (48, 32)  # the sample image: 1536 pixels


def edge(root: Path, tool: str, argument: str, at: tuple[dict, dict], over: tuple[dict, dict]) -> None:
    """at/over: (limit overrides, arguments). The first call must succeed, the second be refused naming
    `argument`."""
    results = []
    for i, (limits, args) in enumerate((at, over)):
        cfg = make_cfg(root / str(i), small_limits(**limits))
        server = build(cfg)
        if tool not in {t.name for t in server._tool_manager.list_tools()}:
            pytest.skip(f"{tool} is not present")
        args = {k: (v(cfg) if callable(v) else v) for k, v in args.items()}
        with in_memory(server) as client:
            results.append(client.call(tool, args))
    ok, refused = results
    if ok.is_error and "model" in result_text(ok) and tool == "generate_image":
        pytest.skip(f"generate_image cannot run here: {result_text(ok)[:200]}")
    assert not ok.is_error, f"at the cap: {result_text(ok)[:400]}"
    check_result(tool, ok)
    assert refused.is_error, f"one over the cap was accepted: {result_text(refused)[:300]}"
    check_result(tool, refused, broken_arg=argument)


def _image_tool() -> str:
    return "tensorize_image"


def _data_uri(cfg) -> str:
    return (
        "data:image/png;base64," + base64.b64encode(Path(sample_image(cfg, size=IMG)).read_bytes()).decode()
    )


def _payload_len(root: Path) -> int:
    return len(_data_uri(make_cfg(root / "probe"))) - len("data:image/png;base64,")


def _file_len(root: Path) -> int:
    return Path(sample_image(make_cfg(root / "probe"), size=IMG)).stat().st_size


TRAIN = {"n_samples": 20, "train_ratio": 0.5, "epochs": 5, "hidden_layers": [3], "seed": 1}
GEN = {"prompt": "a red circle", "steps": 1, "seed": 1}


# A tiny GPT on a 240-character text: char tokenizer, vocabulary = 2 special tokens + 9 distinct characters.
GPT_TEXT = "abc def ghi " * 20
GPT_VOCAB = 2 + len(set(GPT_TEXT))
GPT = {"text": GPT_TEXT, "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 4,
       "max_steps": 1, "eval_interval": 1, "eval_iters": 1, "sample_tokens": 2, "val_fraction": 0.5}  # fmt: skip
# GPT-2's count for that model (the same formula as tools.tiny_gpt.lab.estimate_parameters, written out):
# embeddings V*d + T*d, per block 12 d^2 + 13 d, final LayerNorm 2 d
GPT_PARAMS = GPT_VOCAB * 16 + 16 * 16 + (12 * 16 * 16 + 13 * 16) + 2 * 16


def _image_args(cfg) -> str:
    return sample_image(cfg, size=IMG)


EDGES: dict[str, Callable[[Path], None]] = {
    "max_pixels": lambda r: edge(
        r,
        _image_tool(),
        "image",
        ({"max_pixels": 1536}, {"image": _image_args}),
        ({"max_pixels": 1535}, {"image": _image_args}),
    ),
    "max_base64_bytes": lambda r: edge(
        r,
        _image_tool(),
        "image",
        ({"max_base64_bytes": _payload_len(r)}, {"image": _data_uri}),
        ({"max_base64_bytes": _payload_len(r) - 1}, {"image": _data_uri}),
    ),
    "max_file_bytes": lambda r: edge(
        r,
        _image_tool(),
        "image",
        ({"max_file_bytes": _file_len(r)}, {"image": _image_args}),
        ({"max_file_bytes": _file_len(r) - 1}, {"image": _image_args}),
    ),
    "max_samples": lambda r: edge(
        r,
        "train_toy_mlp",
        "n_samples",
        ({"max_samples": 50}, {**TRAIN, "n_samples": 50}),
        ({"max_samples": 50}, {**TRAIN, "n_samples": 51}),
    ),
    "max_train_work": lambda r: edge(
        r,
        "train_toy_mlp",
        "epochs",
        ({"max_train_work": 300}, {**TRAIN, "epochs": 30}),  # 30 epochs x 10 training points
        ({"max_train_work": 300}, {**TRAIN, "epochs": 31}),
    ),
    "max_variants": lambda r: edge(
        r,
        "train_toy_mlp",
        "variants",
        ({"max_variants": 2}, {**TRAIN, "variants": [{"learning_rate": 0.1}, {"learning_rate": 0.2}]}),
        ({"max_variants": 2}, {**TRAIN, "variants": [{"learning_rate": 0.1}, {"learning_rate": 0.2}, {}]}),
    ),
    "max_time_budget_s": lambda r: edge(
        r,
        "train_toy_mlp",
        "time_budget_s",
        ({"max_time_budget_s": 1.0}, {**TRAIN, "time_budget_s": 1.0}),
        ({"max_time_budget_s": 1.0}, {**TRAIN, "time_budget_s": 1.01}),
    ),
    "default_time_budget_s": lambda r: _default_budget(r),
    "max_steps": lambda r: edge(
        r,
        "generate_image",
        "steps",
        ({"max_steps": 2}, {**GEN, "steps": 2}),
        ({"max_steps": 2}, {**GEN, "steps": 3}),
    ),
    "max_images": lambda r: edge(
        r,
        "generate_image",
        "num_images",
        ({"max_images": 2}, {**GEN, "num_images": 2}),
        ({"max_images": 2}, {**GEN, "num_images": 3}),
    ),
    "max_generate_pixels": lambda r: edge(
        r,
        "generate_image",
        "width",
        ({"max_generate_pixels": 64 * 64}, {**GEN, "width": 64, "height": 64}),
        ({"max_generate_pixels": 64 * 64 - 1}, {**GEN, "width": 64, "height": 64}),
    ),
    "gpt_max_corpus_chars": lambda r: edge(
        r,
        "train_tiny_gpt",
        "text",
        ({"gpt_max_corpus_chars": len(GPT_TEXT)}, GPT),
        ({"gpt_max_corpus_chars": len(GPT_TEXT) - 1}, GPT),
    ),
    "gpt_max_vocab": lambda r: edge(
        r,
        "train_tiny_gpt",
        "text",
        ({"gpt_max_vocab": GPT_VOCAB}, GPT),
        ({"gpt_max_vocab": GPT_VOCAB - 1}, GPT),
    ),
    "gpt_max_parameters": lambda r: edge(
        r,
        "train_tiny_gpt",
        "n_embd",
        ({"gpt_max_parameters": GPT_PARAMS}, GPT),
        ({"gpt_max_parameters": GPT_PARAMS - 1}, GPT),
    ),
    "gpt_max_time_s": lambda r: edge(
        r,
        "train_tiny_gpt",
        "time_budget_s",
        ({"gpt_max_time_s": 5.0}, {**GPT, "time_budget_s": 5.0}),
        ({"gpt_max_time_s": 5.0}, {**GPT, "time_budget_s": 5.01}),
    ),
}


def _default_budget(root: Path) -> None:
    """No 'over' here: the default budget applies when the caller gives none, and training stops there."""
    import time

    cfg = make_cfg(root, small_limits(default_time_budget_s=0.3, max_time_budget_s=0.3, max_train_work=10**9))
    server = build(cfg)
    if "train_toy_mlp" not in {t.name for t in server._tool_manager.list_tools()}:
        pytest.skip("train_toy_mlp is not present")
    with in_memory(server) as client:
        client.call("train_toy_mlp", TRAIN)  # warm up
        t0 = time.monotonic()
        result = client.call("train_toy_mlp", {**TRAIN, "n_samples": 200, "epochs": 100_000, "batch_size": 1})
        elapsed = time.monotonic() - t0
    assert not result.is_error, result_text(result)
    assert "time_budget" in json.dumps(result.structured_content), (
        "the result does not say the budget stopped it"
    )
    assert elapsed < 0.3 + 3.0, f"took {elapsed:.1f} s with a 0.3 s budget"


def test_every_limit_has_an_edge_test():
    assert set(EDGES) == set(Limits.model_fields), "a new cap in Limits needs its edge case here"


@pytest.mark.parametrize("name", sorted(EDGES))
def test_limit_accepts_the_cap_and_refuses_one_over_naming_the_argument(tmp_path, name):
    EDGES[name](tmp_path)


@pytest.mark.parametrize("name", sorted(Limits.model_fields))
def test_every_limit_is_settable_with_the_limit_flag(tmp_path, name):
    default = Limits.model_fields[name].default
    value = default * 2 if isinstance(default, int) else default / 2
    assert getattr(parse_limits([f"{name}={value}"]), name) == value
    args = build_parser().parse_args(["--output-dir", str(tmp_path), "--limit", f"{name}={value}"])
    cfg = config_from_args(args)
    assert getattr(cfg.limits, name) == value
    assert all(
        getattr(cfg.limits, n) == Limits.model_fields[n].default for n in Limits.model_fields if n != name
    )


@pytest.mark.parametrize(
    "item", ["max_pixels=0", "max_pixels=1.5", "max_time_budget_s=nan", "nope=1", "max_steps"]
)
def test_a_bad_limit_flag_stops_the_server_with_a_message(item):
    with pytest.raises(SystemExit) as err:
        parse_limits([item])
    assert "limit" in str(err.value)


def test_limit_flag_takes_effect_in_a_running_stdio_server(tmp_path):
    cfg = make_cfg(tmp_path, small_limits(max_time_budget_s=0.5))  # passed as --limit flags
    server = RawServer(cfg, tmp_path, registrars=("reliability_demo_tool",))
    try:
        server.initialize()
        call = {"name": DEMO_TOOL, "arguments": {"seconds": 0.5}}
        assert not server.wait_for(server.request("tools/call", call))["result"].get("isError")
        call["arguments"]["seconds"] = 0.51
        reply = server.wait_for(server.request("tools/call", call))["result"]
        assert reply["isError"] and "seconds" in reply["content"][0]["text"]
    finally:
        server.close()

"""One error style: every refusal names the argument, the value and what is allowed, in the project's words."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import Field, model_validator

from mcp_server.adapter import READ_ONLY, register_tool
from mcp_server.server import build_server
from tools.common import ToolInput, ToolOutput
from tools.config import LabConfig


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


@pytest.fixture
def toy_mlp(cfg):
    return build_server(cfg, ("mcp_server.tool_toy_mlp",))


def _text(res) -> str:
    assert res.is_error
    return "\n".join(b.text for b in res.content if b.type == "text")


def _no_library_words(text: str) -> None:
    for word in ("pydantic", "http", "validation error for", "Arguments", "Input should", "type="):
        assert word not in text, text


@pytest.mark.parametrize(
    "args, expected",
    [
        ({"epochs": -5}, "Invalid `epochs` = -5: must be at least 1"),
        ({"epochs": 10**9}, "Invalid `epochs` = 1000000000: must be at most 100000"),
        ({"epochs": "many"}, "Invalid `epochs` = 'many': must be a whole number"),
        ({"learning_rate": 0}, "Invalid `learning_rate` = 0: must be greater than 0"),
        ({"dataset": "spirl"}, "Invalid `dataset` = 'spirl': must be one of 'circle', "),
        ({"hidden_layers": [8, 0]}, "Invalid `hidden_layers[1]` = 0: must be at least 1"),
        ({"residual": "maybe"}, "Invalid `residual` = 'maybe': must be true or false"),
        (
            {"variants": [{"learning_rate": -1}]},
            "Invalid `variants[0].learning_rate` = -1: must be greater than 0",
        ),
    ],
)
async def test_range_and_type_errors_read_as_the_projects_own(toy_mlp, args, expected):
    async with Client(toy_mlp, mode="legacy") as c:
        text = _text(await c.call_tool("train_toy_mlp", args))
    assert expected in text
    _no_library_words(text)


async def test_misspelt_argument_gets_did_you_mean(toy_mlp):
    async with Client(toy_mlp, mode="legacy") as c:
        text = _text(await c.call_tool("train_toy_mlp", {"epoch": 5}))
    assert "Unknown argument `epoch` for train_toy_mlp: did you mean `epochs`?" in text
    assert "Allowed arguments:" in text and "learning_rate" in text
    _no_library_words(text)


async def test_unknown_argument_with_no_near_name_gets_no_guess(toy_mlp):
    async with Client(toy_mlp, mode="legacy") as c:
        text = _text(await c.call_tool("train_toy_mlp", {"zzzz": 5}))
    assert "Unknown argument `zzzz` for train_toy_mlp" in text and "did you mean" not in text


async def test_missing_required_argument_is_named(cfg):
    async with Client(build_server(cfg, ("mcp_server.tool_tensorize",)), mode="legacy") as c:
        text = _text(await c.call_tool("tensorize_image", {}))
    assert "Missing `image`: it is required" in text
    _no_library_words(text)


async def test_prompt_arguments_carry_descriptions(cfg):
    async with Client(build_server(cfg, ("mcp_server.tool_explain",)), mode="legacy") as c:
        (prompt,) = (await c.list_prompts()).prompts
    described = {a.name: a.description for a in prompt.arguments}
    assert set(described) == {"concept", "language"}
    assert all(d and len(d) > 20 for d in described.values()), described


class CountingInput(ToolInput):
    n: int = Field(3, ge=1, le=10, description="How many.")
    scale: float = Field(1.0, description="A factor.")

    @model_validator(mode="before")
    @classmethod
    def _count(cls, data):
        CALLS.append(dict(data))
        return data


class CountingResult(ToolInput):
    fields_set: list[str] = Field(description="The arguments the caller gave.")


CALLS: list[dict] = []


def _run(args: CountingInput, cfg, reporter) -> ToolOutput:
    return ToolOutput(CountingResult(fields_set=sorted(args.model_fields_set)))


async def test_arguments_are_validated_once_and_the_core_sees_which_were_given(cfg):
    mcp = MCPServer("t")
    register_tool(
        mcp,
        cfg,
        name="count",
        title="Count",
        description="Counts validations.",
        input_model=CountingInput,
        result_model=CountingResult,
        run=_run,
        annotations=READ_ONLY,
    )
    CALLS.clear()
    async with Client(mcp, mode="legacy") as c:
        res = await c.call_tool("count", {"n": 4})
        assert not res.is_error and res.structured_content == {"fields_set": ["n"]}
        assert CALLS == [{"n": 4}]  # the input model alone validated, once
        bad = await c.call_tool("count", {"n": 0})
    assert "Invalid `n` = 0: must be at least 1" in _text(bad)
    assert len(CALLS) == 2


def test_register_tool_refuses_a_model_that_would_drop_unknown_arguments(cfg):
    from pydantic import BaseModel

    class Lenient(BaseModel):
        n: int = Field(1, description="n")

    with pytest.raises(TypeError, match="ToolInput"):
        register_tool(
            MCPServer("t"), cfg, name="x", title="x", description="x", input_model=Lenient,
            result_model=CountingResult, run=_run, annotations=READ_ONLY,
        )  # fmt: skip

"""explain_concept, the concept resources, the prompt and completion, through a real MCP client in both eras."""

from __future__ import annotations

import base64
import json

import jsonschema
import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from mcp_server.server import build_server
from tools.config import LabConfig
from tools.explain import load_kb


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out", [tmp_path])


@pytest.fixture(params=["legacy", "default"])
def mode(request):
    return {"mode": "legacy"} if request.param == "legacy" else {}


def _client(cfg, mode):
    return Client(build_server(cfg, ("mcp_server.tool_explain",)), **mode)


async def test_tool_is_listed_read_only_with_title_bounds_and_output_schema(cfg, mode):
    async with _client(cfg, mode) as c:
        (tool,) = [t for t in (await c.list_tools()).tools if t.name == "explain_concept"]
    assert tool.title and "中文" in tool.title
    assert tool.annotations.read_only_hint is True and tool.annotations.destructive_hint is False
    props = tool.input_schema["properties"]
    assert tool.input_schema["required"] == ["concept"]
    assert all(p.get("description") for p in props.values())
    assert props["temperature"]["minimum"] == 0.01 and props["temperature"]["maximum"] == 100
    assert props["steps"]["maximum"] == 200
    assert {"found", "suggestions", "demo", "try_it"} <= set(tool.output_schema["properties"])


async def test_call_returns_structured_result_text_and_an_inline_plot(cfg, mode):
    async with _client(cfg, mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        r = await c.call_tool("explain_concept", {"concept": "relu activation", "demo_input": [-1.0, 2.0]})
    assert not r.is_error
    s = r.structured_content
    jsonschema.validate(s, tools["explain_concept"].output_schema)
    assert s["found"] and s["id"] == "relu" and s["language"] == "en"
    assert s["demo"]["values"]["relu"]["value"] == [0.0, 2.0]
    assert s["demo"]["values"]["relu"]["derivative"] == [0.0, 1.0]
    texts = [b.text for b in r.content if b.type == "text"]
    assert texts[0].startswith("ReLU [relu]") and json.loads(texts[1]) == s
    (img,) = [b for b in r.content if b.type == "image"]
    assert img.mime_type == "image/png" and base64.b64decode(img.data)[:4] == b"\x89PNG"
    assert sum(len(b.text if b.type == "text" else b.data) for b in r.content) < 1024 * 1024


async def test_chinese_query_answers_in_chinese(cfg, mode):
    async with _client(cfg, mode) as c:
        r = await c.call_tool("explain_concept", {"concept": "残差", "detail": "summary"})
    s = r.structured_content
    assert s["id"] == "residual_connection" and s["language"] == "zh"
    assert s["name"] == {"en": None, "zh": "残差连接"}


async def test_unknown_concept_is_a_normal_result_with_suggestions(cfg, mode):
    async with _client(cfg, mode) as c:
        r = await c.call_tool("explain_concept", {"concept": "quantum banana"})
    assert not r.is_error
    assert r.structured_content["found"] is False
    assert r.structured_content["suggestions"] and "Closest" in r.content[0].text


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        ({"concept": "softmax", "temperature": 0}, "temperature"),
        ({"concept": "softmax", "language": "fr"}, "language"),
        ({"concept": "gradient descent", "learning_rate": 11}, "learning_rate"),
        ({"concept": "convolution", "demo_input": [1, 2, 3]}, "demo_input"),
        ({"concept": "cross entropy", "target_class": 7}, "target_class"),
        ({}, "concept"),
    ],
)
async def test_invalid_arguments_get_an_error_naming_the_argument(cfg, mode, args, argument):
    async with _client(cfg, mode) as c:
        r = await c.call_tool("explain_concept", args)
    assert r.is_error
    assert argument in r.content[0].text


async def test_concept_resource_is_markdown_in_both_languages(cfg, mode):
    async with _client(cfg, mode) as c:
        templates = (await c.list_resource_templates()).resource_templates
        assert any(t.uri_template == "concept://{id}" for t in templates)
        res = await c.read_resource("concept://residual_connection")
    (content,) = res.contents
    assert content.mime_type == "text/markdown"
    assert "Residual connection / 残差连接" in content.text and "## 中文" in content.text


async def test_concept_resource_accepts_an_alias_and_refuses_unknown_ids_with_suggestions(cfg, mode):
    async with _client(cfg, mode) as c:
        res = await c.read_resource("concept://batchnorm")
        assert "Batch normalization" in res.contents[0].text
        with pytest.raises(Exception, match="Unknown concept id") as exc:
            await c.read_resource("concept://no_such_thing")
    assert "concepts://index" in str(exc.value)


async def test_index_resource_lists_every_concept(cfg, mode):
    async with _client(cfg, mode) as c:
        listed = (await c.list_resources()).resources
        assert any(str(r.uri) == "concepts://index" for r in listed)
        text = (await c.read_resource("concepts://index")).contents[0].text
    for cid in load_kb().concepts:
        assert f"`{cid}`" in text


async def test_prompt_tells_the_assistant_to_explain_then_run_the_try_it_call(cfg, mode):
    async with _client(cfg, mode) as c:
        prompts = {p.name: p for p in (await c.list_prompts()).prompts}
        assert {a.name for a in prompts["explain_with_demo"].arguments} == {"concept", "language"}
        got = await c.get_prompt("explain_with_demo", {"concept": "dropout", "language": "both"})
    text = got.messages[0].content.text
    assert got.messages[0].role == "user"
    assert '"concept": "dropout"' in text and '"language": "both"' in text
    try_it = load_kb().concepts["dropout"].try_it
    assert f"`{try_it.tool}`" in text and json.dumps(try_it.arguments, ensure_ascii=False) in text


async def test_prompt_in_chinese_and_for_an_unknown_concept(cfg, mode):
    async with _client(cfg, mode) as c:
        zh = await c.get_prompt("explain_with_demo", {"concept": "学习率"})
        unknown = await c.get_prompt("explain_with_demo", {"concept": "quantum banana"})
    assert "简体中文" in zh.messages[0].content.text and '"learning_rate"' in zh.messages[0].content.text
    assert "found=false" in unknown.messages[0].content.text


async def test_prompt_refuses_an_unknown_language_naming_it(cfg, mode):
    async with _client(cfg, mode) as c:
        with pytest.raises(Exception, match="language") as exc:
            await c.get_prompt("explain_with_demo", {"concept": "relu", "language": "fr"})
    assert "'fr'" in str(exc.value)


async def test_completion_of_concept_names_for_the_prompt_and_the_template(cfg, mode):
    prompt = PromptReference(type="ref/prompt", name="explain_with_demo")
    template = ResourceTemplateReference(type="ref/resource", uri="concept://{id}")
    async with _client(cfg, mode) as c:
        by_prefix = (await c.complete(prompt, {"name": "concept", "value": "resid"})).completion
        soft = (await c.complete(prompt, {"name": "concept", "value": "soft"})).completion
        by_zh = (await c.complete(template, {"name": "id", "value": "残"})).completion
        zh_names = (await c.complete(prompt, {"name": "concept", "value": "激活"})).completion
        typo = (await c.complete(template, {"name": "id", "value": "dropuot"})).completion
        everything = (await c.complete(template, {"name": "id", "value": ""})).completion
        language = (await c.complete(prompt, {"name": "language", "value": "z"})).completion
    assert by_prefix.values[0] == "residual_connection"
    assert soft.values[0] == "softmax", "an id or main name that starts with the partial comes first"
    assert by_zh.values == ["residual_connection"]
    assert "激活函数" in zh_names.values
    assert typo.values[0] == "dropout"
    assert len(everything.values) == min(100, len(load_kb().concepts)) and everything.total == len(
        load_kb().concepts
    )
    assert language.values == ["zh"]

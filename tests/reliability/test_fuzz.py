"""Property-based fuzzing of every tool through a real MCP client, with arguments drawn from each tool's own
inputSchema: valid ones, and ones broken the ways a model breaks them. Every call ends in a result or a
clear isError (never an internal error), and the server still answers tools/list after each batch.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from rel_harness import STATS, build, check_result, harness_registrars, make_cfg, profile, valid_overrides
from rel_process import stdio_client
from rel_schema import invalid_args, valid_args


def _tool_names() -> list[str]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        mcp = build(make_cfg(Path(d)), harness_registrars())
        return sorted(t.name for t in mcp._tool_manager.list_tools())


TOOLS = _tool_names()


def _settings(n: int, derandomize: bool = True):
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=derandomize,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def fuzz(client, cfg, tool: str, n_valid: int, n_invalid: int, derandomize: bool = True) -> None:
    schema = client.list_tools()[tool]
    props = set(schema.get("properties", {}))
    overrides = valid_overrides(tool, cfg)

    @_settings(n_valid, derandomize)
    @given(valid_args(schema, overrides))
    def valid(args):
        check_result(tool, client.call(tool, args))

    @_settings(n_invalid, derandomize)
    @given(invalid_args(schema, overrides))
    def invalid(case):
        args, broken, _ = case
        result = client.call(tool, args)
        check_result(tool, result)
        if result.is_error and broken is not None:
            text = "\n".join(getattr(c, "text", "") for c in result.content)
            # An argument is named as `x`, or as a part of it (`x[0]`, `x.kind`), or on its own line.
            named = broken in text or any(
                re.search(rf"`{re.escape(p)}[`\[.]|\n{re.escape(p)}\n", text) for p in props
            )
            assert named, f"{tool}: error after breaking `{broken}` names no argument: {text[:500]}"

    if n_valid:
        valid()
    assert tool in client.list_tools(), "server stopped listing the tool after the valid batch"
    invalid()
    assert tool in client.list_tools(), "server stopped listing the tool after the invalid batch"


def _counts(tool: str, scale: float) -> tuple[int, int]:
    p = profile(tool)
    return max(1, round(p.get("fuzz_valid", 8) * scale)), max(1, round(p.get("fuzz_invalid", 25) * scale))


@pytest.mark.parametrize("tool", TOOLS)
def test_fuzzed_arguments_get_a_result_or_a_clear_error_in_memory(client, cfg, tool):
    fuzz(client, cfg, tool, *_counts(tool, 1.0))


def test_unknown_tool_is_a_clear_error_and_the_server_keeps_listing(client):
    result = client.call("no_such_tool", {"x": 1})
    assert result.is_error
    assert "no_such_tool" in "".join(getattr(c, "text", "") for c in result.content)
    assert set(TOOLS) <= set(client.list_tools())


def test_fuzzed_arguments_over_stdio_get_a_result_or_a_clear_error(tmp_path):
    cfg = make_cfg(tmp_path)
    with stdio_client(cfg, tmp_path) as (client, proc):
        for tool in TOOLS:
            fuzz(client, cfg, tool, *_counts(tool, 0.25))
        assert proc.is_running()
        STATS.record_peak("stdio fuzz (fast)", _peak(proc))


def _peak(proc) -> float:
    from rel_process import peak_rss_mb

    return peak_rss_mb(proc)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_long_fuzz_over_stdio_never_kills_the_server(tmp_path, mode):
    cfg = make_cfg(tmp_path)
    with stdio_client(cfg, tmp_path, mode=mode) as (client, proc):
        for tool in TOOLS:
            fuzz(client, cfg, tool, *_counts(tool, 4.0), derandomize=False)
            assert proc.is_running()
        STATS.record_peak(f"stdio fuzz (slow, {mode})", _peak(proc))

"""Eight calls at once (mixed tools) on one server: each result is the one the same call gives alone with the
same seed (structured content minus timings and paths), and each call's progress stays its own."""

from __future__ import annotations

import pytest
from rel_harness import DEMO_TOOL, base_args, build, comparable, in_memory, make_cfg, profile, result_text
from rel_process import stdio_client

N_CALLS = 8


def mixed_calls(client, cfg) -> list[tuple[str, dict]]:
    """N_CALLS calls cycling through every tool, each with its own seed (and, for the demo, its own tag)."""
    tools = client.list_tools()
    names = sorted(t for t in tools if not profile(t).get("stateful"))  # job tools answer about other calls
    calls = []
    for i in range(N_CALLS):
        tool = names[i % len(names)]
        args = base_args(tool, tools[tool], cfg)
        if "seed" in tools[tool].get("properties", {}):
            args["seed"] = 100 + i
        if tool == DEMO_TOOL:
            args.update(label=f"call-{i}", seconds=0.3)
        calls.append((tool, args))
    if not any(t == DEMO_TOOL for t, _ in calls):
        calls[-1] = (DEMO_TOOL, {"label": "call-last", "seconds": 0.3, "seed": 7})
    return calls


def check_same(calls, alone, together) -> None:
    for (tool, args), (r1, log1), (r2, log2) in zip(calls, alone, together, strict=True):
        assert r1.is_error == r2.is_error, (
            f"{tool}: alone {result_text(r1)[:200]} / together {result_text(r2)[:200]}"
        )
        if r1.is_error:
            assert result_text(r1) == result_text(r2), tool
            continue
        assert comparable(r1.structured_content) == comparable(r2.structured_content), f"{tool} {args}"
        # progress: the same totals, never going backwards, and (for the demo) only its own tag
        assert {t for _, t, _ in log1} == {t for _, t, _ in log2}, f"{tool}: progress totals differ"
        done = [p for p, _, _ in log2]
        assert done == sorted(done), f"{tool}: progress went backwards: {done}"
        if tool == DEMO_TOOL:
            assert log2, "the demo reports progress"
            assert all(m.startswith(args["label"] + ":") for _, _, m in log2), f"cross-talk: {log2}"


def run_alone_then_together(client, cfg):
    calls = mixed_calls(client, cfg)
    alone = []
    for tool, args in calls:
        log: list = []
        alone.append((client.call(tool, args, progress=log), log))
    together = client.call_many(calls)
    check_same(calls, alone, together)
    assert set(client.list_tools()) >= {t for t, _ in calls}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_eight_concurrent_mixed_calls_match_the_same_calls_made_alone(tmp_path, mode):
    cfg = make_cfg(tmp_path)
    with in_memory(build(cfg), mode=mode) as client:
        run_alone_then_together(client, cfg)


@pytest.mark.slow
def test_eight_concurrent_mixed_calls_over_stdio_match_the_same_calls_made_alone(tmp_path):
    cfg = make_cfg(tmp_path)
    with stdio_client(cfg, tmp_path) as (client, _):
        for _ in range(3):
            run_alone_then_together(client, cfg)

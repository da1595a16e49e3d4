"""Hostile image inputs through every tool argument that takes an image: broken and disguised files, bombs,
odd formats, and paths that try to leave the allowed folders. Each is refused with a clear message naming
the argument (or, for odd but real images, handled), nothing hangs, and the server's memory stays bounded.
"""

from __future__ import annotations

import pytest
from rel_files import REFUSE, build_cases
from rel_harness import (
    STATS,
    base_args,
    build,
    check_result,
    harness_registrars,
    image_arguments,
    in_memory,
    make_cfg,
    result_text,
    sample_image,
    small_limits,
)
from rel_process import peak_rss_mb, rss_mb, stdio_client


def _image_targets() -> list[tuple[str, str]]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        mcp = build(make_cfg(Path(d)), harness_registrars())
        return [
            (t.name, arg)
            for t in mcp._tool_manager.list_tools()
            for arg in image_arguments(t.name, t.parameters)
        ]


TARGETS = _image_targets()


def require_baseline(client, cfg, tool: str, arg: str) -> dict:
    """Base arguments with a good image in `arg`; skip if even that call fails (e.g. no model installed)."""
    args = {**base_args(tool, client.list_tools()[tool], cfg), arg: sample_image(cfg)}
    result = client.call(tool, args, timeout=120)
    if result.is_error:
        pytest.skip(f"{tool} cannot run here even with a good image: {result_text(result)[:200]}")
    return args


def run_cases(client, cfg, tool: str, arg: str, cases) -> list[str]:
    """Every case through `tool`'s `arg`; returns the failures (one line each) instead of stopping at one."""
    base = require_baseline(client, cfg, tool, arg)
    failures = []
    for case in cases:
        STATS.hostile_cases += 1
        result = client.call(tool, {**base, arg: case.value}, timeout=60)
        try:
            check_result(tool, result, broken_arg=arg if result.is_error else None)
            if case.expect == REFUSE:
                assert result.is_error, f"accepted: {result_text(result)[:200]}"
        except AssertionError as exc:
            failures.append(f"{tool}.{arg} <- {case.name}: {str(exc).splitlines()[0][:300]}")
    assert tool in client.list_tools()
    return failures


@pytest.mark.slow
@pytest.mark.parametrize(("tool", "arg"), TARGETS)
def test_hostile_images_are_refused_or_handled_clearly_in_memory(tmp_path, tool, arg):
    cfg = make_cfg(tmp_path)
    cases = build_cases(
        cfg.allowed_dirs[0], tmp_path / "outside", cfg.limits.max_file_bytes, cfg.limits.max_base64_bytes
    )
    with in_memory(build(cfg)) as client:
        failures = run_cases(client, cfg, tool, arg, cases)
    assert not failures, "\n".join(failures)


def test_hostile_images_are_refused_or_handled_clearly_and_memory_stays_bounded(tmp_path):
    """All cases through every image argument of a subprocess server with the product's pixel cap; its peak
    RSS is measured."""
    cfg = make_cfg(tmp_path, small_limits(max_pixels=40_000_000, max_base64_bytes=8 * 1024 * 1024))
    cases = build_cases(
        cfg.allowed_dirs[0], tmp_path / "outside", cfg.limits.max_file_bytes, cfg.limits.max_base64_bytes
    )
    with stdio_client(cfg, tmp_path) as (client, proc):
        usable = []
        for tool, arg in TARGETS:  # warm up: first calls import the heavy libraries
            try:
                require_baseline(client, cfg, tool, arg)
                usable.append((tool, arg))
            except pytest.skip.Exception as exc:
                STATS.notes.append(f"hostile files: {tool}.{arg} skipped: {exc}")
        warm = rss_mb(proc)
        failures = []
        for tool, arg in usable:
            failures += run_cases(client, cfg, tool, arg, cases)
        peak = peak_rss_mb(proc)
        STATS.record_peak("hostile files (subprocess)", peak)
        assert proc.is_running()
    assert not failures, "\n".join(failures)
    # The bombs are refused before decoding; the biggest real decode is 20000x1 pixels.
    assert peak - warm < 300, f"peak RSS {peak:.0f} MB vs {warm:.0f} MB after warm-up"

"""Output confinement: whatever a tool is given (paths, names, extra 'output_path' fields), it writes only under
the output folder, with names the server generates. A stdio server runs with HOME, TMPDIR and its working
directory inside a sandbox that is snapshotted before and after; the package itself must not change either."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from rel_harness import GENERATED_NAME, REPO, base_args, check_result, make_cfg, valid_overrides
from rel_process import stdio_client
from rel_schema import valid_args

from tools.jobs.records import JOB_ID_RE

SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}


def snapshot(root: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if n not in SKIP_DIRS and d / n not in exclude]
        for name in filenames:
            p = d / name
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def fuzz_valid(client, cfg, tool: str, schema: dict, n: int) -> None:
    @settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(valid_args(schema, valid_overrides(tool, cfg)))
    def fuzz(args):
        check_result(tool, client.call(tool, args))

    fuzz()


def hostile_strings(token: str, root: Path) -> list[str]:
    return [
        f"/tmp/{token}.png",
        f"../../{token}.png",
        f"{token}.pt",
        str(root / "home" / f"{token}.npy"),
        str(root / "outputs" / ".." / f"{token}.png"),
        f"mllab://outputs/images/../../{token}.png",
        f"C:\\{token}\\x.png",
    ]


def test_no_tool_writes_outside_the_output_folder(tmp_path):
    check_confinement(tmp_path, n_strings=3, n_fuzz=2)


@pytest.mark.slow
def test_no_tool_writes_outside_the_output_folder_under_longer_fuzzing(tmp_path):
    check_confinement(tmp_path, n_strings=7, n_fuzz=15)


def check_confinement(tmp_path: Path, n_strings: int, n_fuzz: int) -> None:
    token = "mllab-canary-" + uuid.uuid4().hex[:8]
    cfg = make_cfg(tmp_path)
    outputs, cache = tmp_path / "outputs", tmp_path / "cache"
    package = [REPO / "tools", REPO / "mcp_server"]
    with stdio_client(cfg, tmp_path) as (client, _):
        tools = client.list_tools()
        for tool in tools:  # warm up: imports may legitimately fill caches (matplotlib fonts, compiled code)
            client.call(tool, base_args(tool, tools[tool], cfg))
        before = snapshot(tmp_path, exclude=(outputs, cache))
        pkg_before = {p: snapshot(p) for p in package}
        for tool, schema in sorted(tools.items()):
            base = base_args(tool, schema, cfg)
            props = schema.get("properties", {})
            strings = [
                n for n, p in props.items() if "string" in str(p.get("type", "")) + str(p.get("anyOf", ""))
            ]
            for s in hostile_strings(token, tmp_path)[:n_strings]:
                extras = {"output_path": s, "save_path": s, "filename": s, "out": s, "path": s}
                check_result(tool, client.call(tool, {**base, **extras}))
                for name in strings:
                    check_result(tool, client.call(tool, {**base, name: s}))

            fuzz_valid(client, cfg, tool, schema, n_fuzz)
        after = snapshot(tmp_path, exclude=(outputs, cache))
        pkg_after = {p: snapshot(p) for p in package}
    assert changed(before, after) == [], "written outside the output folder"
    for p in package:
        assert changed(pkg_before[p], pkg_after[p]) == [], f"the package folder {p} changed"
    stray = [str(p) for p in Path("/tmp").glob(f"*{token}*")] + [str(p) for p in tmp_path.rglob(f"*{token}*")]
    assert stray == [], "a caller-given name reached the disk"
    written = [p for p in outputs.rglob("*") if p.is_file()]
    assert written, "the tools wrote nothing at all (is the harness calling them?)"
    for p in written:
        rel = p.relative_to(outputs)
        if rel.parts[:2] == ("jobs", ".servers"):  # a server's lease: jobs/.servers/<random id>.lock
            assert len(rel.parts) == 3 and re.fullmatch(r"[A-Za-z0-9_-]{16}\.lock", rel.parts[2]), rel
            continue
        if rel.parts[0] == "jobs":  # the job runner's records: jobs/<random job id>/<a fixed name>
            assert len(rel.parts) == 3 and JOB_ID_RE.match(rel.parts[1]), f"{rel}: not jobs/<job id>/<file>"
            assert re.fullmatch(r"record\.json|result\.json|image\d+\.(png|jpg)", rel.parts[2]), rel
            continue
        # <category>/<generated file>, or <category>/<generated folder>/<file> for a saved model folder
        # (train_tiny_gpt's save_pretrained run: the library names the files inside the generated folder)
        assert len(rel.parts) in (2, 3), f"{rel}: not <category>/<file> or <category>/<run folder>/<file>"
        assert GENERATED_NAME.search(rel.parts[1]), f"{rel}: not a generated name"

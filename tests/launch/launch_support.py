"""Helpers for the launcher tests and `.ci/container-test`: sample arguments, the MCP Inspector CLI,
process trees. Also a test-only tool (`count_slowly`) that reports progress, for the HTTP tests.

Run as a script it checks one server command with the Inspector (list the tools, call each one):
    python tests/launch/launch_support.py --inspector DIR -- podman run -i --rm IMAGE
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EXPECTED_TOOLS = ("tensorize_image", "explain_concept", "train_toy_mlp", "generate_image")
INSPECTOR_PACKAGE = "@modelcontextprotocol/inspector"
INSPECTOR_VERSION = os.environ.get("ML_LAB_INSPECTOR_VERSION", "0.15.0")
# .ci/launch-test sets this: then a missing tool (uv, npm, the Inspector) fails the tests instead of skipping.
REQUIRED = os.environ.get("ML_LAB_LAUNCH_TESTS") == "1"


def need(condition: object, what: str) -> None:
    """Fail when the launch tests were asked for (ML_LAB_LAUNCH_TESTS=1), skip otherwise."""
    import pytest

    if condition:
        return
    if REQUIRED:
        pytest.fail(f"ML_LAB_LAUNCH_TESTS=1 but {what}")
    pytest.skip(what)


def tiny_png_data_uri(size: int = 8) -> str:
    """A small RGB gradient PNG as a data: URI, valid input for any image argument."""
    from PIL import Image

    img = Image.new("RGB", (size, size))
    img.putdata([(x * 30 % 256, y * 30 % 256, 128) for y in range(size) for x in range(size)])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# Small, fast arguments per tool, applied where the tool's inputSchema has the property.
SAMPLE_OVERRIDES: dict[str, dict[str, Any]] = {
    "tensorize_image": {"image": None},  # None: filled with tiny_png_data_uri()
    "explain_concept": {"concept": "relu", "language": "en"},
    "train_toy_mlp": {"epochs": 5, "n_samples": 100, "time_budget_s": 10},
    "generate_image": {
        "prompt": "a small red circle in the center on a blue background",
        "steps": 2,
        "seed": 0,
    },
    "tokenize_text": {"text": "strawberry", "tokenizer": "chars"},
    "train_tiny_gpt": {
        "corpus": "names",
        "n_layer": 1,
        "n_embd": 16,
        "n_head": 2,
        "block_size": 16,
        "batch_size": 4,
        "max_steps": 2,
        "eval_interval": 2,
        "eval_iters": 1,
    },  # fmt: skip
    "finetune_gpt": {"method": "sft", "steps": 2, "n_eval": 10},
    "compare_gpt_stages": {"runs": ["builtin"], "n_eval": 3, "n_examples": 1},
    "teach_image_model": {
        "word": "blob",
        "images": [None] * 4,
        "captions": ["a blob"] * 4,
        "steps": 1,
        "rank": 1,
        "lora_scales": [1.0],
        "sample_steps": 1,
        "grid_prompts": ["a blob"],
    },  # fmt: skip; each None: a tiny_png_data_uri()
}
# Tools that answer about an earlier call's run or job (each Inspector call starts a fresh server): listed, not
# called here; tests/test_e2e_stdio.py calls them in one session.
NEEDS_EARLIER_CALL = ("sample_text", "job_status", "cancel_job")


def _value_for(schema: dict[str, Any]) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            if options:
                return _value_for(options[0])
    kind = schema.get("type")
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return "relu"


def sample_arguments(tool: dict[str, Any]) -> dict[str, Any]:
    """Valid minimal arguments for a tool: its required fields, plus the fast overrides it accepts."""
    schema = tool.get("inputSchema") or {}
    props: dict[str, Any] = schema.get("properties") or {}
    args = {name: _value_for(props.get(name, {})) for name in schema.get("required", [])}
    for name, value in SAMPLE_OVERRIDES.get(tool["name"], {}).items():
        if name in props:
            if isinstance(value, list):
                value = [tiny_png_data_uri() if v is None else v for v in value]
            args[name] = tiny_png_data_uri() if value is None else value
    return args


# --- MCP Inspector CLI --------------------------------------------------------------------------------


def inspector_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ml-lab-mcp" / "inspector"
    return Path(os.environ.get("ML_LAB_INSPECTOR_DIR", default))


def find_inspector(install: bool = False) -> Path | None:
    """The Inspector's CLI entry (cli/build/cli.js) in the cache folder; installs it there if asked."""
    root = inspector_dir()
    cli = root / "node_modules" / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
    if not cli.is_file() and install and shutil.which("npm"):
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(root),
                f"{INSPECTOR_PACKAGE}@{INSPECTOR_VERSION}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
    return cli if cli.is_file() else None


# Dropped from launched servers' environment: CI machines may set it, and then every start of a uv
# environment (no .pyc written) recompiles torch's Python files, which multiplies start-up time.
UNSET_FOR_SERVERS = ("PYTHONDONTWRITEBYTECODE",)


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET_FOR_SERVERS}
    env.update(extra or {})
    return env


def write_launch_script(path: Path, argv: list[str], env: dict[str, str] | None = None) -> Path:
    """A one-line sh script that execs `argv`: the Inspector then starts a plain command, and none of the
    server's own flags can be mistaken for the Inspector's (it parses `--transport` itself)."""
    lines = ["#!/bin/sh", *(f"unset {name}" for name in UNSET_FOR_SERVERS)]
    for key, value in (env or {}).items():
        lines.append(f"export {key}={shlex.quote(value)}")
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv) + ' "$@"')
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def inspector_env_flags() -> list[str]:
    """`-e KEY=VALUE` for what uv and pip need in the server's environment (newer Inspectors pass few)."""
    flags = []
    for key in (
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HOME",
        "PATH",
        "UV_CACHE_DIR",
        "npm_config_cache",
        "TMPDIR",
    ):
        if os.environ.get(key):
            flags += ["-e", f"{key}={os.environ[key]}"]
    return flags


def run_inspector(
    cli: Path, command: Path | str, method: str, extra: list[str] | None = None, timeout: float = 300
) -> dict[str, Any]:
    """One Inspector CLI call against `command` (a script, or an http URL); returns the JSON it printed."""
    argv = [
        "node",
        str(cli),
        "--cli",
        *inspector_env_flags(),
        str(command),
        "--method",
        method,
        *(extra or []),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"inspector {method} failed (rc {proc.returncode})\nstdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}"
        )
    start = proc.stdout.find("{")
    return json.loads(proc.stdout[start:])


def inspector_tool_flags(args: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key, value in args.items():
        text = value if isinstance(value, str) else json.dumps(value)
        flags += ["--tool-arg", f"{key}={text}"]
    return flags


def check_with_inspector(
    cli: Path, command: Path, expected: tuple[str, ...] = EXPECTED_TOOLS, only: tuple[str, ...] | None = None
) -> dict[str, dict]:
    """List the tools and call each (or those in `only`) with sample arguments; returns {tool: result}.
    Raises on any failure."""
    listed = run_inspector(cli, command, "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    missing = [name for name in expected if name not in tools]
    if missing:
        raise AssertionError(f"tools missing from tools/list: {missing}; got {sorted(tools)}")
    results = {}
    for name, tool in tools.items():
        if (only is not None and name not in only) or name in NEEDS_EARLIER_CALL:
            continue
        args = sample_arguments(tool)
        result = run_inspector(cli, command, "tools/call", ["--tool-name", name, *inspector_tool_flags(args)])
        if result.get("isError"):
            raise AssertionError(f"{name}({list(args)}) returned an error: {json.dumps(result)[:2000]}")
        if not result.get("content"):
            raise AssertionError(f"{name} returned no content: {json.dumps(result)[:2000]}")
        results[name] = result
    return results


# --- processes ----------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[Any]:
    """psutil.Process objects for `pid` and all its descendants (those still alive)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def still_running(procs: list[Any], timeout: float) -> list[Any]:
    """Wait up to `timeout` s for every process to end; returns those still alive (zombies count as ended)."""
    import psutil

    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        gone, alive = psutil.wait_procs(alive, timeout=0.25)
        alive = [p for p in alive if _alive(p)]
    return [p for p in alive if _alive(p)]


def _alive(proc: Any) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def describe(procs: list[Any]) -> str:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid}: {' '.join(p.cmdline())[:200]}")
        except Exception:
            out.append(f"{p.pid}: (gone)")
    return "\n".join(out)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "ml-lab-launch-test", "version": "0"},
    },
}


def initialize_over_pipe(proc: subprocess.Popen, timeout: float = 300) -> dict[str, Any]:
    """Send `initialize` on the child's stdin and read the answer from its stdout (one JSON line)."""
    import selectors

    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
    proc.stdin.flush()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise AssertionError(f"no answer to initialize within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"server closed stdout without answering (rc {proc.poll()})")
    return json.loads(line)


def hold_client(argv: list[str], pid_file: Path, timeout: float) -> None:
    """Act as an MCP client that starts `argv`, initializes it, writes the launcher's pid, then waits
    forever (the test kills this process to play a client that crashed)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=server_env())
    answer = initialize_over_pipe(proc, timeout)
    assert "result" in answer, answer
    pid_file.write_text(str(proc.pid))
    while True:
        time.sleep(3600)


# --- a test-only tool with progress, for the HTTP tests ---------------------------------------------


def register(mcp: Any, cfg: Any) -> None:
    """Registrar for build_server: `count_slowly(label, n)` reports n progress steps tagged with label."""
    from mcp.types import ToolAnnotations
    from pydantic import BaseModel, Field

    from mcp_server.adapter import register_tool
    from tools.common import ToolInput, ToolOutput

    class CountInput(ToolInput):
        label: str = Field(description="Tag carried by every progress message.", max_length=40)
        n: int = Field(description="How many steps.", ge=1, le=50)
        delay_s: float = Field(0.05, description="Pause per step.", ge=0, le=1)

    class CountResult(BaseModel):
        label: str = Field(description="The label given.")
        total: int = Field(description="Sum of 1..n.")

    def run(args: CountInput, _cfg: Any, reporter: Any) -> ToolOutput:
        total = 0
        for i in range(1, args.n + 1):
            reporter.check_cancelled()
            time.sleep(args.delay_s)
            total += i
            reporter.progress(i, args.n, f"{args.label} step {i}")
        return ToolOutput(CountResult(label=args.label, total=total), summary=f"{args.label}: {total}")

    register_tool(
        mcp,
        cfg,
        name="count_slowly",
        title="Count slowly",
        description="Test tool: counts to n, reporting progress.",
        input_model=CountInput,
        result_model=CountResult,
        run=run,
        annotations=ToolAnnotations(readOnlyHint=True),
    )


def serve_http_with_test_tool(argv: list[str], output_dir: str) -> int:
    """Run the real CLI's HTTP path (`run_http`) on a server holding only `count_slowly`."""
    import logging

    from mcp_server.cli import build_parser
    from mcp_server.http import run_http
    from mcp_server.server import build_server
    from tools.config import LabConfig

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    args = build_parser().parse_args(["--transport", "streamable-http", *argv])
    mcp = build_server(LabConfig.create(output_dir, [output_dir]), (__name__,))
    return run_http(mcp, args)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inspector", action="store_true", help="check a server command with the MCP Inspector")
    p.add_argument("--hold-client", metavar="PID_FILE", help="play a client that initializes, then waits")
    p.add_argument(
        "--serve-http", metavar="OUTPUT_DIR", help="serve the test tool over HTTP (argv: CLI flags)"
    )
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    ns = p.parse_args()
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    if ns.hold_client:
        hold_client(argv, Path(ns.hold_client), ns.timeout)
        return 0
    if ns.serve_http:
        return serve_http_with_test_tool(argv, ns.serve_http)
    cli = find_inspector(install=True)
    if cli is None:
        print("MCP Inspector not found and npm could not install it", file=sys.stderr)
        return 2
    script = write_launch_script(
        Path(os.environ.get("TMPDIR", "/tmp")) / f"ml-lab-launch-{os.getpid()}.sh", argv
    )
    try:
        results = check_with_inspector(cli, script)
    finally:
        script.unlink(missing_ok=True)
    for name, result in results.items():
        kinds = [c.get("type") for c in result["content"]]
        print(f"ok {name}: content {kinds}, structured {'yes' if result.get('structuredContent') else 'no'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    raise SystemExit(main())

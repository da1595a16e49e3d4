"""Each launcher starts the server from a packed artifact, and a real client drives it over stdio.

- uvx: `uvx --from <built wheel> ml-lab-mcp` (and from the sdist), torch pinned to the CPU wheel in
  pip's find-links folder, so uv never resolves a CUDA build.
- npx: `npx --yes ./ml-lab-mcp-<v>.tgz` (npm pack of npm/), which runs uvx with the wheel;
  and the same tarball falling back to `python -m mcp_server` when there is no uvx.
- The MCP Inspector's CLI lists the tools and calls each one through every launcher.
- Closing stdin, killing the client, or SIGTERM to the launcher leaves no process behind.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from launch_support import (
    EXPECTED_TOOLS,
    check_with_inspector,
    describe,
    find_inspector,
    initialize_over_pipe,
    inspector_tool_flags,
    need,
    process_tree,
    run_inspector,
    server_env,
    still_running,
    write_launch_script,
)

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).with_name("launch_support.py")
pytestmark = pytest.mark.launch


def _find_links() -> list[str]:
    """pip's find-links folders (the machine's local wheels), as `pip config` reports them."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True
    ).stdout
    dirs = [d.removeprefix("file://") for d in out.split()]
    return [d for d in dirs if os.path.isdir(d)]


@pytest.fixture(scope="session")
def uvx() -> str:
    found = shutil.which("uvx") or shutil.which("uvx", path=str(Path(sys.executable).parent))
    need(found, "uvx is not installed (pip install uv)")
    return found


@pytest.fixture(scope="session")
def uv_args() -> list[str]:
    """Arguments that make uv take torch from the local CPU wheel, pinned: never a CUDA download."""
    torch_version = importlib.metadata.version("torch")
    need("+cpu" in torch_version, f"the installed torch {torch_version} is not a +cpu build")
    links = _find_links()
    wheels = [w for d in links for w in Path(d).glob(f"torch-{torch_version}-*.whl")]
    need(wheels, f"no torch-{torch_version} wheel in pip's find-links folders {links}")
    args = [
        "--python",
        sys.executable,
        "--with",
        f"torch=={torch_version}",
    ]
    for d in links:
        args += ["--find-links", d]
    return args


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, uvx) -> dict[str, Path]:
    """The packed artifacts: sdist and wheel (uv build), and the npm tarball (npm pack)."""
    out = tmp_path_factory.mktemp("dist")
    uv = Path(uvx).with_name("uv.exe" if uvx.endswith(".exe") else "uv")
    subprocess.run([str(uv), "build", "--out-dir", str(out), str(ROOT)], check=True, capture_output=True)
    need(shutil.which("npm"), "npm is not installed")
    subprocess.run(
        ["npm", "pack", "--pack-destination", str(out), str(ROOT / "npm")], check=True, capture_output=True
    )
    found = {
        "wheel": next(out.glob("ml_lab_mcp-*.whl")),
        "sdist": next(out.glob("ml_lab_mcp-*.tar.gz")),
        "npm": next(out.glob("ml-lab-mcp-*.tgz")),
    }
    return found


@pytest.fixture(scope="session")
def inspector() -> Path:
    cli = find_inspector(install=True)
    need(cli, "the MCP Inspector is not installed and npm could not install it")
    return cli


@dataclass
class Launcher:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    def full_env(self) -> dict[str, str]:
        return server_env(self.env)

    def script(self, folder: Path) -> Path:
        argv = (
            self.argv if self.cwd is None else ["sh", "-c", f'cd "{self.cwd}" && exec "$@"', "sh", *self.argv]
        )
        return write_launch_script(folder / f"{self.name}.sh", argv, self.env)


LAUNCHERS = ["uvx-wheel", "uvx-sdist", "npx", "npx-python-fallback"]


@pytest.fixture(scope="session")
def launchers(artifacts, uvx, uv_args, tmp_path_factory) -> dict[str, Launcher]:
    home = tmp_path_factory.mktemp("npx")
    npm_env = {"npm_config_cache": str(home / "npm-cache"), "npm_config_update_notifier": "false"}
    tarball = f"./{artifacts['npm'].name}"
    return {
        "uvx-wheel": Launcher("uvx-wheel", [uvx, *uv_args, "--from", str(artifacts["wheel"]), "ml-lab-mcp"]),
        "uvx-sdist": Launcher("uvx-sdist", [uvx, *uv_args, "--from", str(artifacts["sdist"]), "ml-lab-mcp"]),
        "npx": Launcher(
            "npx",
            ["npx", "--yes", tarball],
            {
                **npm_env,
                "ML_LAB_UVX": uvx,
                "ML_LAB_UVX_FROM": str(artifacts["wheel"]),
                "ML_LAB_UVX_ARGS": " ".join(uv_args),
            },
            cwd=artifacts["npm"].parent,
        ),
        "npx-python-fallback": Launcher(
            "npx-python-fallback",
            ["npx", "--yes", tarball],
            {**npm_env, "ML_LAB_UVX": "none", "ML_LAB_PYTHON": sys.executable},
            cwd=artifacts["npm"].parent,
        ),
    }


def _server_processes(procs) -> list:
    found = []
    for p in procs:
        try:
            cmd = " ".join(p.cmdline())
        except Exception:
            continue
        if "ml-lab-mcp" in cmd or "mcp_server" in cmd:
            found.append(p)
    return found


@pytest.mark.parametrize("name", ["uvx-wheel", "npx", "npx-python-fallback"])
def test_inspector_lists_and_calls_every_tool_through_the_launcher(name, launchers, inspector, tmp_path):
    script = launchers[name].script(tmp_path)
    results = check_with_inspector(inspector, script)
    assert set(EXPECTED_TOOLS) <= set(results)
    for result in results.values():
        assert result.get("structuredContent"), result


def test_inspector_lists_the_tools_of_the_server_installed_from_the_sdist(launchers, inspector, tmp_path):
    # The sdist must carry everything the wheel does (package data included): one call proves the data.
    script = launchers["uvx-sdist"].script(tmp_path)
    results = check_with_inspector(inspector, script, only=("explain_concept",))
    assert results["explain_concept"].get("structuredContent")


@pytest.mark.parametrize("name", ["uvx-wheel", "npx"])
def test_the_inspector_sees_a_refused_argument_as_a_tool_error(name, launchers, inspector, tmp_path):
    script = launchers[name].script(tmp_path)
    result = run_inspector(
        inspector,
        script,
        "tools/call",
        ["--tool-name", "tensorize_image", "--tool-arg", "image=not-an-image"],
    )
    assert result.get("isError") is True
    assert "image" in result["content"][0]["text"]


def _start(launcher: Launcher, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        launcher.argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.log").open("wb"),
        env=launcher.full_env(),
        cwd=launcher.cwd,
    )


def _tree_with_server(pid: int, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while True:
        tree = process_tree(pid)
        if _server_processes(tree) or time.monotonic() > deadline:
            return tree
        time.sleep(0.2)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_closing_stdin_ends_the_server_and_leaves_no_process(name, launchers, tmp_path):
    proc = _start(launchers[name], tmp_path)
    answer = initialize_over_pipe(proc)
    assert answer["result"]["serverInfo"]["name"] == "ml-lab-mcp"
    tree = _tree_with_server(proc.pid)
    assert _server_processes(tree), describe(tree)
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    left = still_running(tree, timeout=15)
    assert left == [], describe(left)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_killing_the_client_leaves_no_process(name, launchers, tmp_path):
    pid_file = tmp_path / "launcher.pid"
    launcher = launchers[name]
    client = subprocess.Popen(
        [sys.executable, str(SUPPORT), "--hold-client", str(pid_file), "--", *launcher.argv],
        env=launcher.full_env(),
        cwd=launcher.cwd,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "client.log").open("wb"),
    )
    deadline = time.monotonic() + 300
    while not pid_file.exists() or not pid_file.read_text():
        assert client.poll() is None, (tmp_path / "client.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the client never got an initialize answer"
        time.sleep(0.2)
    tree = _tree_with_server(int(pid_file.read_text()))
    assert _server_processes(tree), describe(tree)
    client.send_signal(signal.SIGKILL)
    client.wait()
    left = still_running(tree, timeout=20)
    assert left == [], describe(left)


@pytest.mark.parametrize("name", ["uvx-wheel", "npx"])
def test_sigterm_to_the_launcher_ends_the_server(name, launchers, tmp_path):
    proc = _start(launchers[name], tmp_path)
    initialize_over_pipe(proc)
    tree = _tree_with_server(proc.pid)
    assert _server_processes(tree), describe(tree)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    left = still_running(tree, timeout=15)
    proc.stdin.close()
    assert left == [], describe(left)


@contextlib.contextmanager
def http_server(tmp_path: Path):
    """`python -m mcp_server` on streamable HTTP on a free loopback port; yields its /mcp URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "--transport", "streamable-http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("wb"),
        env=server_env({"ML_LAB_OUTPUT_DIR": str(tmp_path / "out")}),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "server.log"
                ).read_text()
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_inspector_over_streamable_http_lists_and_calls_the_tools(inspector, tmp_path):
    # Loopback needs no token (the Inspector's CLI cannot send headers); the token tests are in
    # test_http_transport.py.
    with http_server(tmp_path) as url:
        listed = run_inspector(inspector, url, "tools/list", ["--transport", "http"])
        assert set(EXPECTED_TOOLS) <= {t["name"] for t in listed["tools"]}
        result = run_inspector(
            inspector,
            url,
            "tools/call",
            ["--transport", "http", "--tool-name", "explain_concept", "--tool-arg", "concept=relu"],
        )
        assert not result.get("isError") and result["structuredContent"]


STRICT_CLIENT_S = 10.0  # the strict client: every request answers within 10 s


def test_the_inspector_gets_a_long_training_through_job_status_with_no_call_over_10_s(inspector, tmp_path):
    """Each Inspector CLI call is a fresh client (a new HTTP session): the first returns a job handle at
    `wait_s`, later ones poll `job_status` until the training's full result arrives. No call is allowed
    anywhere near a client's timeout: each (node start-up included) answers within 10 s."""
    train = {"dataset": "spiral", "epochs": 100_000, "time_budget_s": 14, "seed": 0, "wait_s": 1}

    def call(tool: str, args: dict) -> dict:
        t0 = time.monotonic()
        flags = ["--transport", "http", "--tool-name", tool, *inspector_tool_flags(args)]
        result = run_inspector(inspector, url, "tools/call", flags)
        took = time.monotonic() - t0
        assert took < STRICT_CLIENT_S, f"{tool} took {took:.1f} s through the Inspector"
        assert not result.get("isError"), result
        return result["structuredContent"]

    with http_server(tmp_path) as url:
        first = call("train_toy_mlp", train)
        job_id = first["job_id"]
        assert first["status"] in ("queued", "running"), first
        polls = 0
        while True:
            polls += 1
            status = call("job_status", {"job_id": job_id, "wait_s": 2})
            if status["status"] not in ("queued", "running"):
                break
            assert polls < 40, status
        assert status["status"] == "completed", status
        assert polls >= 2, "the training finished before a second poll: make it longer"
        run = status["result"]["runs"][0]
        assert run["stop_reason"] == "time_budget" and run["epochs_run"] > 0, run
        assert run["wall_time_s"] >= STRICT_CLIENT_S, run  # the work outlived any single call

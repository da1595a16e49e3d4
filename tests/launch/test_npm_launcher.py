"""The npm launcher (npm/bin/ml-lab-mcp.js) with a stand-in uvx: which command it runs, where it looks
for uvx, the Python fallback, stderr-only diagnostics, exit codes, signals and orphan handling.
Needs only Node; the real uvx/npx path is in test_launchers_e2e.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launch_support import still_running

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "npm" / "bin" / "ml-lab-mcp.js"
NODE = shutil.which("node")
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

# A stand-in for uvx: records its argv and a few env vars, then behaves as FAKE_MODE says.
FAKE_UVX = """#!{python}
import json, os, signal, sys, time
log = os.environ["FAKE_LOG"]
def write(**kw):
    with open(log, "a") as f:
        f.write(json.dumps(kw) + "\\n")
write(event="start", argv=sys.argv[1:], pid=os.getpid(), guard=os.environ.get("ML_LAB_MCP_NPM_LAUNCHER"))
mode = os.environ.get("FAKE_MODE", "exit")
if mode == "exit":
    sys.exit(int(os.environ.get("FAKE_CODE", "0")))
if mode == "trap":
    def on_term(signum, frame):
        write(event="signal", signum=signum)
        sys.exit(42)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
while True:
    time.sleep(0.1)
"""


@pytest.fixture
def fake_uvx(tmp_path: Path) -> Path:
    path = tmp_path / "fakebin" / "uvx"
    path.parent.mkdir()
    path.write_text(FAKE_UVX.format(python=sys.executable))
    path.chmod(0o755)
    return path


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.path.dirname(NODE) + os.pathsep + "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "FAKE_LOG": str(tmp_path / "fake.log"),
    }
    env.update(extra)
    return env


def _events(tmp_path: Path) -> list[dict]:
    log = tmp_path / "fake.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _wait_for_event(tmp_path: Path, kind: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in _events(tmp_path):
            if event["event"] == kind:
                return event
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event: {_events(tmp_path)}")


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, str(BIN), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_npm_package_has_the_python_package_version_and_a_node_bin():
    pkg = json.loads((ROOT / "npm" / "package.json").read_text())
    assert pkg["version"] == VERSION
    assert pkg["bin"] == {"ml-lab-mcp": "bin/ml-lab-mcp.js"}
    assert not pkg.get("dependencies")
    assert BIN.read_text().startswith("#!/usr/bin/env node\n")
    assert os.access(BIN, os.X_OK)
    subprocess.run([NODE, "--check", str(BIN)], check=True)


def test_launcher_runs_uvx_with_the_same_version_and_forwards_args_and_exit_code(tmp_path, fake_uvx):
    proc = _run(["--log-level", "DEBUG"], _env(tmp_path, ML_LAB_UVX=str(fake_uvx), FAKE_CODE="7"))
    assert proc.returncode == 7
    assert proc.stdout == ""  # stdout is the protocol's: nothing of the launcher's own
    (start,) = _events(tmp_path)
    assert start["argv"] == ["--from", f"ml-lab-mcp=={VERSION}", "ml-lab-mcp", "--log-level", "DEBUG"]
    assert start["guard"] == "1"


def test_extra_uv_args_and_a_local_source_go_before_the_command(tmp_path, fake_uvx):
    env = _env(
        tmp_path,
        ML_LAB_UVX=str(fake_uvx),
        ML_LAB_UVX_ARGS='--find-links "/opt/my wheels" --with torch==2.13.0+cpu',
        ML_LAB_UVX_FROM="/tmp/ml_lab_mcp-0.1.0-py3-none-any.whl",
    )
    assert _run([], env).returncode == 0
    assert _events(tmp_path)[0]["argv"] == [
        "--find-links",
        "/opt/my wheels",
        "--with",
        "torch==2.13.0+cpu",
        "--from",
        "/tmp/ml_lab_mcp-0.1.0-py3-none-any.whl",
        "ml-lab-mcp",
    ]


def test_launcher_finds_uvx_on_path(tmp_path, fake_uvx):
    env = _env(tmp_path)
    env["PATH"] = str(fake_uvx.parent) + os.pathsep + env["PATH"]
    assert _run([], env).returncode == 0
    assert _events(tmp_path)[0]["event"] == "start"


def test_launcher_finds_uvx_in_the_usual_install_folder_when_path_lacks_it(tmp_path, fake_uvx):
    # Claude Desktop on macOS starts servers with a bare PATH; uv's installer puts uvx in ~/.local/bin.
    local_bin = tmp_path / "home" / ".local" / "bin"
    local_bin.mkdir(parents=True)
    shutil.copy(fake_uvx, local_bin / "uvx")
    env = _env(tmp_path)
    if shutil.which("uvx", path=env["PATH"]):
        pytest.skip("a uvx on the system PATH would be found first")
    assert _run([], env).returncode == 0
    assert _events(tmp_path)[0]["event"] == "start"


def test_launcher_falls_back_to_python_with_the_package_installed(tmp_path):
    proc = _run(["--version"], _env(tmp_path, ML_LAB_UVX="none", ML_LAB_PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ml-lab-mcp {VERSION}"


def test_launcher_without_uvx_or_python_explains_on_stderr_only(tmp_path):
    proc = _run([], _env(tmp_path, ML_LAB_UVX="none", ML_LAB_PYTHON=str(tmp_path / "no-python")))
    assert proc.returncode == 127
    assert proc.stdout == ""
    assert "could not find uvx" in proc.stderr
    assert "docs.astral.sh/uv" in proc.stderr


def test_launcher_refuses_to_launch_itself_again(tmp_path, fake_uvx):
    proc = _run([], _env(tmp_path, ML_LAB_UVX=str(fake_uvx), ML_LAB_MCP_NPM_LAUNCHER="1"))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "would be starting itself again" in proc.stderr
    assert _events(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_reach_the_server_and_its_exit_code_comes_back(tmp_path, fake_uvx, signum):
    env = _env(tmp_path, ML_LAB_UVX=str(fake_uvx), FAKE_MODE="trap")
    proc = subprocess.Popen([NODE, str(BIN)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    _wait_for_event(tmp_path, "start")
    proc.send_signal(signum)
    assert proc.wait(timeout=20) == 42
    assert _wait_for_event(tmp_path, "signal")["signum"] == signum


def test_a_server_killed_by_a_signal_ends_the_launcher_by_the_same_signal(tmp_path, fake_uvx):
    env = _env(tmp_path, ML_LAB_UVX=str(fake_uvx), FAKE_MODE="sleep")
    proc = subprocess.Popen([NODE, str(BIN)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    child = _wait_for_event(tmp_path, "start")["pid"]
    os.kill(child, signal.SIGKILL)
    assert proc.wait(timeout=20) == -signal.SIGKILL


def test_an_orphaned_launcher_stops_its_server(tmp_path, fake_uvx):
    # The client dies without closing the launcher's stdin (here: stdin is /dev/null, never closed).
    env = _env(tmp_path, ML_LAB_UVX=str(fake_uvx), FAKE_MODE="sleep")
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"subprocess.Popen([{NODE!r}, {str(BIN)!r}], stdin=subprocess.DEVNULL)\n"
            "time.sleep(600)",
        ],
        env=env,
    )
    server_pid = _wait_for_event(tmp_path, "start")["pid"]
    import psutil

    server = psutil.Process(server_pid)
    launcher = server.parent()
    assert launcher is not None and launcher.ppid() == client.pid
    client.kill()
    client.wait()
    left = still_running([launcher, server], timeout=15)
    assert left == [], left

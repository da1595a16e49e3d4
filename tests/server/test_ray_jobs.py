"""Jobs on Ray (`--jobs ray`) through real MCP clients: two replicas on one Ray instance answer for each other's
jobs, a replica killed mid-job loses nothing, the numbers equal the local backend's, and the faults (no Ray
installed, an address that does not answer, storage that is not shared, a worker killed mid-job) say why.

One Ray instance (2 CPUs, no dashboard) serves the whole session; .ci/run runs these with `-m ray`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcp_server.server import build_server
from tools.config import JobSettings, LabConfig

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30
SMALL = {"dataset": "circle", "hidden_layers": [8], "epochs": 40, "n_samples": 200, "seed": 3}
# Long enough to poll, cancel and kill mid-run (the budget ends it; cancel and kill come well before).
LONG = {
    "dataset": "spiral",
    "epochs": 50_000,
    "n_samples": 1000,
    "hidden_layers": [16, 16],
    "time_budget_s": 8,
}


@pytest.fixture(scope="session")
def ray_address():
    """A local Ray instance for the session (2 CPUs, no dashboard); skipped with the reason where it cannot start."""
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "ml-lab-mcp[ray]"')
    try:
        ray.init(num_cpus=2, include_dashboard=False, namespace="ml-lab-mcp", log_to_driver=False)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Ray cannot start here: {type(exc).__name__}: {exc}")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def cfg(tmp_path, ray_address):
    return LabConfig.create(tmp_path / "out", jobs=JobSettings(backend="ray", ray_address=ray_address))


def _replica(cfg):
    return Client(build_server(cfg), mode="legacy", read_timeout_seconds=TIMEOUT_S)


async def _wait_until(c, job_id: str, check, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        view = (await c.call_tool("job_status", {"job_id": job_id, "wait_s": 0.5})).structured_content
        if check(view):
            return view
        assert time.monotonic() < deadline, view
        await anyio.sleep(0.1)


def _running_with_partial(view: dict) -> bool:
    return view["status"] == "running" and bool(view["partial"])


async def test_a_job_started_on_replica_a_is_polled_and_cancelled_from_replica_b(cfg):
    async with _replica(cfg) as a, _replica(cfg) as b:
        handle = (await a.call_tool("train_toy_mlp", {**LONG, "wait_s": 0})).structured_content
        job_id = handle["job_id"]
        assert handle["status"] in ("queued", "running")
        seen = await _wait_until(b, job_id, _running_with_partial)
        assert seen["progress"]["total"] == LONG["epochs"] and seen["partial"]["current_run"]["history"]
        listed = (await b.call_tool("list_jobs", {"status": "running"})).structured_content["jobs"]
        assert [j["job_id"] for j in listed] == [job_id]
        t = time.monotonic()
        cancelled = (await b.call_tool("cancel_job", {"job_id": job_id})).structured_content
        assert cancelled["status"] == "cancelled" and time.monotonic() - t < 5
        assert "partial result is kept" in cancelled["error"]
        on_a = (await a.call_tool("job_status", {"job_id": job_id, "wait_s": 0})).structured_content
        assert on_a["status"] == "cancelled" and on_a["partial"]  # A sees what B did: nothing lived in B


def _http_replica(cfg, tokens: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["--transport", "streamable-http", "--stateless", "--port", str(port)]
    argv += [a for t in tokens for a in ("--auth-token", t)]
    argv += ["--output-dir", str(cfg.output_dir), "--jobs", "ray", "--ray-address", cfg.jobs.ray_address]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return proc, f"http://127.0.0.1:{port}/mcp"


def _listening(proc: subprocess.Popen, url: str, timeout_s: float = 90) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]  # type: ignore[union-attr]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            assert time.monotonic() < deadline, "replica did not start listening"
            time.sleep(0.2)


def _http_client(url: str, token: str) -> Client:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=60)
    )
    return Client(streamable_http_client(url, http_client=http), mode="legacy")


async def test_two_stateless_http_replicas_answer_for_each_others_jobs_and_keep_tokens_apart(cfg):
    # Two tokens on both replicas; each replica is its own process speaking stateless streamable HTTP.
    procs = [_http_replica(cfg, ["tok-alice", "tok-mallory"]) for _ in range(2)]
    try:
        for proc, url in procs:
            _listening(proc, url)
        (_, url_a), (_, url_b) = procs
        async with _http_client(url_a, "tok-alice") as a, _http_client(url_b, "tok-alice") as b:
            job_id = (await a.call_tool("train_toy_mlp", {**LONG, "wait_s": 0})).structured_content["job_id"]
            seen = await _wait_until(b, job_id, _running_with_partial)
            assert seen["progress"]["total"] == LONG["epochs"]
            async with _http_client(url_b, "tok-mallory") as other:
                res = await other.call_tool("job_status", {"job_id": job_id, "wait_s": 0})
                assert res.is_error and "no such job" in res.content[0].text  # exactly as for an unknown id
            cancelled = (await b.call_tool("cancel_job", {"job_id": job_id})).structured_content
            assert cancelled["status"] == "cancelled"
            on_a = (await a.call_tool("list_jobs", {})).structured_content["jobs"]
            assert [(j["job_id"], j["status"]) for j in on_a] == [(job_id, "cancelled")]
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(10)


async def test_a_job_waits_queued_for_a_free_ray_cpu_and_a_cancel_drops_it_before_it_starts(cfg):
    async with _replica(cfg) as a, _replica(cfg) as b:
        ids = [
            (await a.call_tool("train_toy_mlp", {**LONG, "seed": i, "wait_s": 0})).structured_content[
                "job_id"
            ]
            for i in range(3)
        ]
        for job_id in ids[:2]:  # two CPUs: two run, each having asked Ray for one
            await _wait_until(b, job_id, lambda v: v["status"] == "running")
        third = (await b.call_tool("job_status", {"job_id": ids[2], "wait_s": 0})).structured_content
        assert third["status"] == "queued"
        dropped = (await b.call_tool("cancel_job", {"job_id": ids[2]})).structured_content
        assert (dropped["status"], dropped["error"]) == ("cancelled", "cancelled before it started")
        for job_id in ids[:2]:
            assert (await a.call_tool("cancel_job", {"job_id": job_id})).structured_content[
                "status"
            ] == "cancelled"


async def test_results_on_ray_equal_the_local_backends_for_the_same_seed(cfg, tmp_path):
    local = LabConfig.create(tmp_path / "local")
    async with _replica(cfg) as r, Client(build_server(local), mode="legacy") as lc:
        on_ray = await r.call_tool("train_toy_mlp", {**SMALL, "wait_s": 55})
        on_local = await lc.call_tool("train_toy_mlp", {**SMALL, "wait_s": 55})
    assert not on_ray.is_error and not on_local.is_error, on_ray.content
    a, b = on_ray.structured_content, on_local.structured_content
    for x, y in zip(a["runs"], b["runs"], strict=True):
        assert x["history"] == y["history"] and x["test_accuracy"] == y["test_accuracy"]
    assert [c.type for c in on_ray.content] == [c.type for c in on_local.content]  # the picture came back too


async def test_killing_replica_a_mid_job_loses_nothing_and_replica_b_collects_the_result(cfg):
    import psutil

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "--output-dir", str(cfg.output_dir), "--jobs", "ray"]
        + ["--ray-address", cfg.jobs.ray_address],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    small_long = {**LONG, "time_budget_s": 4}
    async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT_S) as a:
        server = next(
            p
            for p in psutil.Process().children(recursive=True)
            if str(cfg.output_dir) in " ".join(p.cmdline())
        )
        job_id = (await a.call_tool("train_toy_mlp", {**small_long, "wait_s": 0})).structured_content[
            "job_id"
        ]
        async with _replica(cfg) as b:
            await _wait_until(b, job_id, _running_with_partial)
            server.send_signal(signal.SIGKILL)
            server.wait(5)
            done = await _wait_until(b, job_id, lambda v: v["status"] not in ("queued", "running"))
            assert done["status"] == "completed", done
            assert done["result"]["runs"][0]["stop_reason"] == "time_budget"
    for path in (cfg.output_dir / "jobs").rglob("*.json"):
        json.loads(path.read_text())  # nothing torn


async def test_a_worker_killed_mid_job_ends_the_job_failed_with_the_reason(cfg):
    import psutil

    async with _replica(cfg) as c:
        job_id = (await c.call_tool("train_toy_mlp", {**LONG, "wait_s": 0})).structured_content["job_id"]
        await _wait_until(c, job_id, _running_with_partial)
        workers = [p for p in psutil.process_iter(["cmdline"]) if job_id in " ".join(p.info["cmdline"] or [])]
        assert len(workers) == 1, "the job's Ray worker names the job (its task name)"
        workers[0].kill()
        failed = await _wait_until(c, job_id, lambda v: v["status"] != "running", timeout_s=30)
    assert failed["status"] == "failed"
    assert (
        "Ray worker running this job died" in failed["error"] and "run train_toy_mlp again" in failed["error"]
    )


def test_an_address_that_does_not_answer_stops_the_server_at_start_up_with_a_clear_message(tmp_path):
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_server", "--output-dir", str(tmp_path), "--jobs", "ray"]
        + ["--ray-address", "127.0.0.1:9"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no Ray cluster answers at '127.0.0.1:9'" in proc.stderr and "ray start --head" in proc.stderr
    assert time.monotonic() - t < 30


def test_output_storage_that_a_node_cannot_reach_is_refused_naming_the_node(ray_address, tmp_path):
    import ray

    from tools.jobs import BackendUnavailable
    from tools.jobs.ray_backend import check_shared_storage

    real = [n for n in ray.nodes() if n["Alive"]]
    check_shared_storage(tmp_path, real + real)  # two entries for the one real node: both read it: shared
    ghost = {"NodeID": "ab" * 28, "NodeManagerAddress": "10.9.9.9", "Alive": True}
    with pytest.raises(BackendUnavailable, match=r"not shared storage: 10\.9\.9\.9 \(node abababab\)"):
        check_shared_storage(tmp_path, real + [ghost], timeout_s=5)
    assert list(tmp_path.iterdir()) == []  # markers cleaned up


def _swallows_interrupts(reporter):
    """A job whose interrupts are swallowed (as one landing inside Ray's own code can be): only a kill ends it."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            reporter.progress(1, 2, "busy")
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass
    raise AssertionError("never cancelled")


def test_a_running_job_that_ignores_the_interrupt_is_still_cancelled_by_killing_its_worker(cfg):
    from ray import cloudpickle

    from tools.jobs import make_runner

    runner = make_runner(cfg.output_dir / "jobs", cfg.jobs)
    cloudpickle.register_pickle_by_value(
        sys.modules[__name__]
    )  # the Ray worker cannot import this test module
    job = runner.submit("train_toy_mlp", {}, _swallows_interrupts, owner="local")
    deadline = time.monotonic() + 60
    while (rec := runner.store.load_record(job.job_id)) is None or rec.status != "running":
        assert time.monotonic() < deadline, rec
        time.sleep(0.1)
    time.sleep(0.5)
    t = time.monotonic()
    rec = runner.cancel(runner.get(job.job_id, "local"))
    assert rec.status == "cancelled" and time.monotonic() - t < 5, rec
    assert rec.error and "partial result is kept" in rec.error

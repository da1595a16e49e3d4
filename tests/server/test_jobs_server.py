"""Jobs through a real MCP client: a training longer than the client's request timeout still delivers its full
result via job_status (in memory and over stdio, progress on both calls), cancel_job within a second, a SIGKILL
mid-job then a restart, and refusals that name the argument."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcp_server.server import build_server
from tools.common import NullReporter
from tools.config import LabConfig
from tools.jobs import JobRunner
from tools.toy_mlp import TrainToyMlpInput, run

CLIENT_TIMEOUT_S = 10  # a strict client: every request must answer within 10 s
WAIT_S = 4  # so each call waits well inside that
# About 12 s of training: longer than the client's timeout, short enough for CI (the 60 s case is marked slow).
LONG = {
    "dataset": "spiral",
    "epochs": 50_000,
    "n_samples": 1000,
    "hidden_layers": [16, 16],
    "time_budget_s": 12,
}
SMALL = {"dataset": "circle", "hidden_layers": [8], "epochs": 30, "n_samples": 200}
ROOT = Path(__file__).resolve().parents[2]


def comparable(value):
    """A result without what differs between two identical calls: timings, run ids, file names."""
    volatile = ("time", "_s", "per_s", "path", "uri", "run_id")
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if not any(w in k for w in volatile)}
    return [comparable(v) for v in value] if isinstance(value, list) else value


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out")


def _client(cfg, timeout: float | None = CLIENT_TIMEOUT_S):
    return Client(build_server(cfg), mode="legacy", read_timeout_seconds=timeout)


async def _follow(c, first, progress) -> tuple[dict, object, int]:
    """Call job_status until the job is finished; the final job view, the last result and how many calls."""
    view, calls = first.structured_content, 1
    res = first
    if "job_id" not in view:  # finished within wait_s: the call returned the tool's own result
        return {"status": "completed", "result": view}, res, calls
    while view["status"] in ("queued", "running"):
        seen = len(progress)
        res = await c.call_tool(
            "job_status", {"job_id": view["job_id"], "wait_s": WAIT_S}, progress_callback=_on(progress)
        )
        assert not res.is_error, res.content
        view, calls = res.structured_content, calls + 1
        if view["status"] == "running" and view["progress"]["total"]:
            assert len(progress) > seen, "a job_status call that waited on a training saw no progress"
    return view, res, calls


def _on(progress: list):
    async def on_progress(done, total, message):
        progress.append((done, total, message))

    return on_progress


async def _long_training_via_job_status(c, budget_s: float) -> None:
    tool = next(t for t in (await c.list_tools()).tools if t.name == "train_toy_mlp")
    # The first call loads torch (seconds on a busy CI); like every call here it waits at most WAIT_S.
    warm = await c.call_tool("train_toy_mlp", {**SMALL, "wait_s": WAIT_S})
    assert (await _follow(c, warm, []))[0]["status"] == "completed"
    first_progress: list = []
    t0 = time.monotonic()
    first = await c.call_tool(
        "train_toy_mlp",
        {**LONG, "time_budget_s": budget_s, "wait_s": WAIT_S},
        progress_callback=_on(first_progress),
    )
    assert not first.is_error, first.content
    assert time.monotonic() - t0 < CLIENT_TIMEOUT_S
    handle = first.structured_content
    jsonschema.validate(handle, tool.output_schema)
    assert handle["status"] in ("queued", "running") and handle["tool"] == "train_toy_mlp"
    assert f'job_status with job_id="{handle["job_id"]}"' in handle["next_step"]
    assert handle["job_id"] in first.content[0].text and "job_status" in first.content[0].text
    assert first_progress, "the first call saw no progress"
    later: list = []
    view, res, calls = await _follow(c, first, later)
    assert calls >= 2 and later, "progress reached the follow-up calls too"
    assert view["status"] == "completed", view
    result = view["result"]
    run0 = result["runs"][0]
    assert run0["stop_reason"] == "time_budget" and run0["epochs_run"] > 10
    assert [b.type for b in res.content][-1] == "image"  # the final picture, inline
    # The result is the tool's real result: the same as the run it saved (an independent copy on disk).
    saved = json.loads((await c.read_resource(f"mllab://runs/{result['run_id']}")).contents[0].text)
    assert saved["result"]["runs"][0]["test_loss"] == run0["test_loss"]
    assert saved["result"]["runs"][0]["history"] == run0["history"]


async def test_training_longer_than_the_client_timeout_delivers_its_full_result_via_job_status(cfg):
    async with _client(cfg) as c:
        await _long_training_via_job_status(c, budget_s=12)


@pytest.mark.slow
async def test_a_sixty_second_training_delivers_its_full_result_via_job_status(cfg):
    async with _client(cfg) as c:
        await _long_training_via_job_status(c, budget_s=60)


async def test_stdio_client_with_a_ten_second_timeout_gets_a_long_trainings_result(cfg):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "--output-dir", str(cfg.output_dir)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    async with Client(params, mode="legacy", read_timeout_seconds=CLIENT_TIMEOUT_S) as c:
        await _long_training_via_job_status(c, budget_s=12)


async def test_a_short_call_within_wait_s_returns_the_direct_result_in_one_round_trip(cfg):
    async with _client(cfg, timeout=None) as c:  # the default wait_s (40 s) is for clients that allow 60 s
        res = await c.call_tool("train_toy_mlp", SMALL)
        jobs = (await c.call_tool("list_jobs", {})).structured_content["jobs"]
    assert not res.is_error and "job_id" not in res.structured_content
    direct = run(TrainToyMlpInput(**SMALL), cfg, NullReporter()).result.model_dump(mode="json")
    for key in ("runs", "best_run", "n_train", "n_test"):  # the numbers of a direct call, bit for bit
        got, want = res.structured_content[key], direct[key]
        if key == "runs":
            for g, w in zip(got, want, strict=True):
                g.pop("wall_time_s"), w.pop("wall_time_s"), g.pop("epochs_per_s"), w.pop("epochs_per_s")
        assert got == want
    assert [(j["tool"], j["status"]) for j in jobs] == [("train_toy_mlp", "completed")]


async def test_a_result_no_longer_held_in_memory_is_answered_from_disk_the_same(cfg, monkeypatch):
    """The runner keeps only the newest outputs in memory (flat RSS); the waiting call then reads the result back."""
    async with _client(cfg, timeout=None) as c:
        held = await c.call_tool("train_toy_mlp", SMALL)
        monkeypatch.setattr(JobRunner, "KEEP_OUTPUTS", 0)
        from_disk = await c.call_tool("train_toy_mlp", SMALL)
    assert not held.is_error and not from_disk.is_error and "job_id" not in from_disk.structured_content
    assert comparable(from_disk.structured_content) == comparable(held.structured_content)
    assert [b.type for b in from_disk.content] == [b.type for b in held.content]
    assert [b.data for b in from_disk.content if b.type == "image"]  # the pictures too


async def test_cancel_job_ends_a_queued_and_a_running_job_within_a_second(cfg):
    async with _client(cfg) as c:
        running = (await c.call_tool("train_toy_mlp", {**LONG, "wait_s": 0})).structured_content
        queued = (await c.call_tool("train_toy_mlp", {**LONG, "seed": 1, "wait_s": 0})).structured_content
        assert queued["status"] == "queued"  # one heavy job at a time
        for _ in range(200):  # until the running job has a partial result
            view = (
                await c.call_tool("job_status", {"job_id": running["job_id"], "wait_s": 0.2})
            ).structured_content
            if view["partial"]:
                break
        t0 = time.monotonic()
        res = await c.call_tool("cancel_job", {"job_id": queued["job_id"]})
        assert time.monotonic() - t0 < 1.0 and res.structured_content["status"] == "cancelled"
        t0 = time.monotonic()
        res = await c.call_tool("cancel_job", {"job_id": running["job_id"]})
        latency = time.monotonic() - t0
        view = res.structured_content
        assert latency < 1.0 and view["status"] == "cancelled", (latency, view)
        assert view["partial"]["current_run"]["history"]["train_loss"], (
            "the running job keeps its partial result"
        )
        listed = (await c.call_tool("list_jobs", {"status": "cancelled"})).structured_content["jobs"]
        assert {j["job_id"] for j in listed} == {running["job_id"], queued["job_id"]}


async def test_bad_job_arguments_are_refused_naming_the_argument(cfg):
    async with _client(cfg) as c:
        for args, name in [
            ({"job_id": "job-" + "x" * 22}, "job_id"),  # well formed, never existed
            ({"job_id": "../../etc/passwd"}, "job_id"),
            ({"job_id": "job-" + "x" * 22, "wait_s": 999}, "wait_s"),
            ({"job_id": "job-" + "x" * 22, "wait_s": -1}, "wait_s"),
        ]:
            res = await c.call_tool("job_status", args)
            assert res.is_error and name in res.content[0].text, (args, res.content[0].text)
        res = await c.call_tool("cancel_job", {"job_id": "job-" + "y" * 22})
        assert res.is_error and "job_id" in res.content[0].text and "no such job" in res.content[0].text
        res = await c.call_tool("train_toy_mlp", {**SMALL, "wait_s": 56})
        assert res.is_error and "wait_s" in res.content[0].text
        res = await c.call_tool("list_jobs", {"status": "done"})
        assert res.is_error and "status" in res.content[0].text
        with pytest.raises(Exception, match="no such job"):
            await c.read_resource("mllab://jobs/job-" + "z" * 22)


async def test_jobs_resources_list_and_read_a_job(cfg):
    async with _client(cfg) as c:
        res = await c.call_tool("train_toy_mlp", {**SMALL, "wait_s": 0})
        job_id = res.structured_content["job_id"]
        await c.call_tool("job_status", {"job_id": job_id, "wait_s": 30})
        listed = json.loads((await c.read_resource("mllab://jobs")).contents[0].text)["jobs"]
        assert [j["job_id"] for j in listed] == [job_id]
        one = json.loads((await c.read_resource(f"mllab://jobs/{job_id}")).contents[0].text)
        assert one["status"] == "completed" and one["result"]["runs"][0]["epochs_run"] == 30
        none = json.loads((await c.read_resource("mllab://jobs?status=running")).contents[0].text)["jobs"]
        assert none == []


async def test_sigkill_mid_job_then_restart_keeps_completed_results_and_marks_the_running_one_interrupted(
    cfg,
):
    import psutil

    def params():
        return StdioServerParameters(
            command=sys.executable,
            args=["-m", "mcp_server", "--output-dir", str(cfg.output_dir)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    async with Client(params(), mode="legacy", read_timeout_seconds=CLIENT_TIMEOUT_S) as c:
        server = next(
            p
            for p in psutil.Process().children(recursive=True)
            if str(cfg.output_dir) in " ".join(p.cmdline())
        )
        done = await c.call_tool("train_toy_mlp", {**SMALL, "wait_s": 0})
        done_view, done_res, _ = await _follow(c, done, [])
        handle = (await c.call_tool("train_toy_mlp", {**LONG, "wait_s": 0})).structured_content
        record = cfg.output_dir / "jobs" / handle["job_id"] / "record.json"
        for _ in range(300):  # until a partial result is on disk
            if record.exists() and json.loads(record.read_text()).get("partial"):
                break
            await anyio.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(5)
    async with Client(params(), mode="legacy", read_timeout_seconds=CLIENT_TIMEOUT_S) as c:
        jobs = {j["job_id"]: j for j in (await c.call_tool("list_jobs", {})).structured_content["jobs"]}
        assert jobs[done_view["job_id"]]["status"] == "completed"
        assert jobs[handle["job_id"]]["status"] == "interrupted"
        again = await c.call_tool("job_status", {"job_id": done_view["job_id"], "wait_s": 0})
        assert again.structured_content["result"] == done_view["result"]
        assert [b.type for b in again.content] == [b.type for b in done_res.content]  # picture included
        lost = (await c.call_tool("job_status", {"job_id": handle["job_id"], "wait_s": 0})).structured_content
        assert lost["partial"]["current_run"]["history"]["epochs"][0] == 0
        assert "server stopped" in lost["error"] and "run train_toy_mlp again" in lost["next_step"]
    for path in (cfg.output_dir / "jobs").rglob("*.json"):
        json.loads(path.read_text())  # nothing torn


def test_two_first_calls_at_once_share_one_job_runner(tmp_path, monkeypatch):
    """Two clients' first long calls on a fresh server reach runner_of from two worker threads at once. Before the
    lock each made its own runner; the second one's start-up cleared the first one's half-written record (the
    FileNotFoundError CI saw over HTTP) and took its place, so the first job was lost to job_status."""
    import threading

    import mcp_server.jobs as server_jobs

    made: list[JobRunner] = []

    def slow_make_runner(folder, settings=None):
        time.sleep(0.2)  # a runner's start-up reads the jobs folder: the window the two threads race in
        runner = JobRunner(folder, settings)
        made.append(runner)
        return runner

    monkeypatch.setattr(server_jobs, "make_runner", slow_make_runner)
    cfg = LabConfig.create(tmp_path / "out", [tmp_path])
    mcp = build_server(cfg)
    barrier = threading.Barrier(4)
    got: list[JobRunner] = []

    def first_call() -> None:
        barrier.wait()
        got.append(server_jobs.runner_of(mcp, cfg))

    threads = [threading.Thread(target=first_call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(made) == 1 and len(got) == 4
    assert all(r is made[0] for r in got)
    assert server_jobs.runner_of(mcp, cfg) is made[0]  # and every later call too

"""The job runner (tools layer): lifecycle, ids and owners, bounded concurrency, cancellation, persistence
across a SIGKILL, and the bounded history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from tools.common import InlineImage, InvalidArgument, NullReporter, Reporter, ToolOutput, report_partial
from tools.config import JobSettings
from tools.jobs import JobRunner
from tools.jobs.records import JOB_ID_RE, JobStore, write_atomic


class Out(BaseModel):
    value: int


def quick(value: int = 1, png: bytes = b"\x89PNG fake"):
    def fn(reporter: Reporter) -> ToolOutput:
        reporter.progress(1, 2, "half")
        report_partial(reporter, {"so_far": value - 1})
        reporter.progress(2, 2, "done")
        return ToolOutput(Out(value=value), [InlineImage(png, "pic")], summary=f"value {value}")

    return fn


def blocking(release: threading.Event, started: threading.Event | None = None, calls: list | None = None):
    """A job that reports progress every 20 ms (each report is a cancellation point) until `release` is set."""

    def fn(reporter: Reporter) -> ToolOutput:
        if calls is not None:
            calls.append(time.monotonic())
        if started is not None:
            started.set()
        step = 0
        while not release.is_set():
            step += 1
            reporter.progress(step, None, f"step {step}")
            report_partial(reporter, Out(value=step))
            time.sleep(0.02)
        return ToolOutput(Out(value=step))

    return fn


@pytest.fixture
def runner(tmp_path):
    r = JobRunner(tmp_path / "jobs", JobSettings(), save_interval_s=0.05)
    yield r
    r.shutdown()


# ---- lifecycle


def test_job_completes_with_progress_partial_and_result_saved_next_to_its_record(runner, tmp_path):
    job = runner.submit("t", {"a": 1}, quick(7))
    assert job.wait_finished(5)
    rec = job.snapshot()
    assert rec.status == "completed" and rec.error is None
    assert rec.progress.done == 2 and rec.progress.total == 2 and rec.progress.message == "done"
    assert rec.partial == {"so_far": 6}
    assert rec.started_at is not None and rec.finished_at is not None and rec.finished_at >= rec.started_at
    saved = json.loads((tmp_path / "jobs" / job.job_id / "record.json").read_text())
    assert saved["status"] == "completed" and saved["arguments"] == {"a": 1}
    result = runner.result(job)
    assert result is not None and result.data == {"value": 7} and result.summary == "value 7"
    assert result.images[0].png == b"\x89PNG fake"


def test_job_ids_are_unguessable_and_jobs_are_scoped_to_their_owner(runner):
    jobs = [runner.submit("t", {}, quick(), owner="alice") for _ in range(20)]
    ids = {j.job_id for j in jobs}
    assert len(ids) == 20 and all(JOB_ID_RE.match(i) for i in ids)
    assert runner.get(jobs[0].job_id, "alice") is jobs[0]
    with pytest.raises(InvalidArgument) as other:
        runner.get(jobs[0].job_id, "bob")
    with pytest.raises(InvalidArgument) as unknown:
        runner.get("job-" + "A" * 22, "alice")
    # Another owner's job reads exactly like one that never existed: nothing leaks.
    assert other.value.argument == unknown.value.argument == "job_id"
    assert str(other.value).replace(jobs[0].job_id, "X") == str(unknown.value).replace("job-" + "A" * 22, "X")
    with pytest.raises(InvalidArgument, match="is not a job id"):
        runner.get("../../etc/passwd", "alice")
    for j in jobs:
        j.wait_finished(5)
    assert len(runner.list("alice")) == 20 and runner.list("bob") == []


def test_list_filters_by_status_and_tool_newest_first(runner):
    release, started = threading.Event(), threading.Event()
    a = runner.submit("train", {}, quick())
    a.wait_finished(5)
    b = runner.submit("gen", {}, blocking(release, started))
    assert started.wait(5)
    c = runner.submit("train", {}, quick())  # queued behind b (one heavy slot)
    assert [r.job_id for r in runner.list("local")] == [c.job_id, b.job_id, a.job_id]
    assert [r.job_id for r in runner.list("local", tool="train")] == [c.job_id, a.job_id]
    assert [r.job_id for r in runner.list("local", status="queued")] == [c.job_id]
    release.set()


def test_failures_are_recorded_with_the_tools_message(runner):
    def bad_arg(reporter):
        raise InvalidArgument("epochs", 0, "must be at least 1")

    def crash(reporter):
        raise ZeroDivisionError("boom")

    a, b = runner.submit("t", {}, bad_arg), runner.submit("t", {}, crash)
    assert a.wait_finished(5) and b.wait_finished(5)
    assert a.record.status == "failed" and a.record.error == "Invalid `epochs` = 0: must be at least 1"
    assert b.record.status == "failed" and b.record.error == "Internal error in t: ZeroDivisionError: boom"
    assert runner.result(a) is None


def test_wait_change_wakes_on_progress_not_only_at_the_end(runner):
    release = threading.Event()
    job = runner.submit("t", {}, blocking(release))
    v0 = job.version
    t0 = time.monotonic()
    v1 = job.wait_change(v0, 5)
    assert v1 > v0 and time.monotonic() - t0 < 1.0 and not job.finished
    release.set()
    assert job.wait_finished(5)


def test_null_reporter_and_old_reporters_accept_partial_results():
    NullReporter().partial({"x": 1})

    class OldReporter:  # written before partial results existed
        def progress(self, done, total=None, message=None):
            pass

        def check_cancelled(self):
            pass

    report_partial(OldReporter(), {"x": 1})  # silently nothing, as before


# ---- concurrency


def test_one_heavy_job_at_a_time_while_light_jobs_never_wait(runner):
    release = threading.Event()
    started, calls = threading.Event(), []
    first = runner.submit("train", {}, blocking(release, started, calls))
    assert started.wait(5)
    second = runner.submit("train", {}, blocking(release, calls=calls))
    light = runner.submit("list", {}, quick(), heavy=False)
    assert light.wait_finished(2) and light.record.status == "completed"
    time.sleep(0.2)
    assert first.record.status == "running" and second.record.status == "queued" and len(calls) == 1
    release.set()
    assert first.wait_finished(5) and second.wait_finished(5)
    assert second.record.status == "completed" and calls[1] >= calls[0]


def test_max_heavy_two_runs_two_heavy_jobs_together(tmp_path):
    r = JobRunner(tmp_path / "jobs", JobSettings(max_heavy=2))
    release = threading.Event()
    s1, s2 = threading.Event(), threading.Event()
    a = r.submit("t", {}, blocking(release, s1))
    b = r.submit("t", {}, blocking(release, s2))
    c = r.submit("t", {}, blocking(release))
    assert s1.wait(5) and s2.wait(5)
    assert c.record.status == "queued"
    release.set()
    assert all(j.wait_finished(5) for j in (a, b, c))


# ---- cancellation


def test_cancel_a_queued_job_ends_it_at_once_and_it_never_runs(runner):
    release, started, calls = threading.Event(), threading.Event(), []
    running = runner.submit("t", {}, blocking(release, started))
    assert started.wait(5)
    queued = runner.submit("t", {}, blocking(release, calls=calls))
    t0 = time.monotonic()
    rec = runner.cancel(queued)
    assert time.monotonic() - t0 < 0.1
    assert rec.status == "cancelled" and rec.started_at is None
    release.set()
    assert running.wait_finished(5)
    time.sleep(0.1)
    assert calls == []  # its slot went to nobody; the cancelled job never started


def test_cancel_a_running_job_stops_it_within_a_second_and_keeps_its_partial(runner):
    release, started = threading.Event(), threading.Event()
    job = runner.submit("t", {}, blocking(release, started))
    assert started.wait(5)
    time.sleep(0.2)
    t0 = time.monotonic()
    rec = runner.cancel(job)
    latency = time.monotonic() - t0
    assert latency < 1.0, latency
    assert job.ended.is_set()  # its thread really stopped, not just the label
    assert rec.status == "cancelled" and rec.partial is not None and rec.partial["value"] >= 1
    saved = json.loads((runner.store.folder / job.job_id / "record.json").read_text())
    assert saved["status"] == "cancelled" and saved["partial"] == rec.partial
    # The heavy slot is free again: the next job starts at once.
    nxt = runner.submit("t", {}, quick())
    assert nxt.wait_finished(2)


def test_a_job_that_ignores_cancel_is_still_reported_cancelled_after_a_second_and_cannot_complete(runner):
    gate = threading.Event()

    def deaf(reporter):
        gate.wait(5)  # no check for a while (a long single step)
        return ToolOutput(Out(value=1))

    job = runner.submit("t", {}, deaf)
    time.sleep(0.05)
    t0 = time.monotonic()
    rec = runner.cancel(job, wait_s=0.3)
    assert 0.25 < time.monotonic() - t0 < 1.0 and rec.status == "cancelled"
    gate.set()
    assert job.ended.wait(5)
    assert job.record.status == "cancelled" and runner.result(job) is None


# ---- persistence

KILL_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from pydantic import BaseModel
    from tools.common import ToolOutput, report_partial
    from tools.config import JobSettings
    from tools.jobs import JobRunner

    class Out(BaseModel):
        value: int

    def done(reporter):
        return ToolOutput(Out(value=42), summary="forty-two")

    def forever(reporter):
        for step in range(1, 10**9):
            reporter.progress(step, None, f"step {step}")
            report_partial(reporter, {"loss_curve": list(range(step))[-50:], "step": step})
            time.sleep(0.01)

    r = JobRunner(__import__("pathlib").Path(sys.argv[1]), JobSettings(), save_interval_s=0.02)
    a = r.submit("t", {"k": 1}, done)
    a.wait_finished(10)
    b = r.submit("t", {"k": 2}, forever)
    print(a.job_id, b.job_id, flush=True)
    time.sleep(60)
    """
)


def test_sigkill_mid_job_then_restart_lists_completed_results_and_the_running_job_as_interrupted(tmp_path):
    folder = tmp_path / "jobs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        done_id, running_id = proc.stdout.readline().split()
        record = folder / running_id / "record.json"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if record.exists() and (json.loads(record.read_text()).get("partial") or {}).get("step", 0) >= 20:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-write or not: records are replaced atomically
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    r = JobRunner(folder, JobSettings())
    done = r.get(done_id, "local")
    assert done.record.status == "completed"
    result = r.result(done)
    assert result is not None and result.data == {"value": 42} and result.summary == "forty-two"
    lost = r.get(running_id, "local").snapshot()
    assert lost.status == "interrupted" and lost.arguments == {"k": 2}
    assert lost.partial is not None and lost.partial["step"] >= 20
    assert lost.partial["loss_curve"] == list(range(lost.partial["step"]))[-50:]  # whole, not torn
    assert "server stopped while this job was running" in (lost.error or "")
    assert not list(folder.glob("*/.*.tmp"))
    # The recovery was written back: a second restart sees the same.
    assert JobRunner(folder, JobSettings()).get(running_id, "local").record.status == "interrupted"


def test_a_second_server_on_the_same_folder_leaves_the_first_servers_running_job_alone(tmp_path):
    """Claude Desktop and Cursor each start a server on the per-user default folder: the second one's start-up
    must not mark the first one's running job interrupted, nor delete the file it is writing."""
    folder = tmp_path / "jobs"
    first = JobRunner(folder, JobSettings(), save_interval_s=0.02)
    release, started = threading.Event(), threading.Event()
    job = first.submit("t", {"k": 1}, blocking(release, started))
    assert started.wait(5)
    assert job.snapshot().server == first.lease.id
    in_flight = folder / job.job_id / ".record.json.in-flight.tmp"  # as if caught between write and rename
    in_flight.write_text("{}")
    newborn = folder / ("job-" + "N" * 22)  # another job whose first record is still a temporary file
    newborn.mkdir()
    (newborn / ".record.json.x.tmp").write_text("{}")

    second = JobRunner(folder, JobSettings())

    assert in_flight.exists() and (newborn / ".record.json.x.tmp").exists()
    on_disk = JobStore(folder).load_record(job.job_id)
    assert on_disk is not None and on_disk.status == "running"
    assert job.job_id not in {r.job_id for r in second.list("local")}  # not the second server's to report
    release.set()
    assert job.wait_finished(5) and first.get(job.job_id, "local").record.status == "completed"
    assert JobStore(folder).load_record(job.job_id).status == "completed"
    second.shutdown()
    first.shutdown()


def test_a_job_whose_server_is_gone_is_interrupted_by_the_next_start_up(tmp_path):
    folder = tmp_path / "jobs"
    first = JobRunner(folder, JobSettings())
    release = threading.Event()
    job = first.submit("t", {}, blocking(release))
    time.sleep(0.1)
    first.lease.release()  # what the kernel does when the first server's process ends, however it ends
    assert not (folder / ".servers" / f"{first.lease.id}.lock").exists()
    later = JobRunner(folder, JobSettings())
    assert later.get(job.job_id, "local").record.status == "interrupted"
    release.set()
    first.shutdown()
    later.shutdown()


def test_lease_files_of_stopped_servers_are_swept_and_live_ones_kept(tmp_path):
    folder = tmp_path / "jobs"
    live = JobRunner(folder, JobSettings())
    leases = folder / ".servers"
    stale = leases / "gone-server.lock"
    stale.write_text("12345\n")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))  # an hour old, and nobody holds its lock
    young = leases / "just-started.lock"
    young.write_text("")  # a server between creating its file and locking it
    JobRunner(folder, JobSettings())
    assert not stale.exists() and young.exists()
    assert (leases / f"{live.lease.id}.lock").exists() and live.lease.alive(live.lease.id) is False  # itself
    other = JobRunner(folder, JobSettings())
    assert other.lease.alive(live.lease.id) and not other.lease.alive("gone-server")
    assert not other.lease.alive("../../etc/passwd")


def test_a_corrupt_or_foreign_folder_is_skipped_not_fatal(tmp_path):
    folder = tmp_path / "jobs"
    r = JobRunner(folder, JobSettings())
    ok = r.submit("t", {}, quick())
    ok.wait_finished(5)
    bad = folder / ("job-" + "B" * 22)
    bad.mkdir()
    (bad / "record.json").write_text("{not json")
    (folder / "notes").mkdir()
    again = JobRunner(folder, JobSettings())
    assert [rec.job_id for rec in again.list("local")] == [ok.job_id]


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.json"
    write_atomic(path, b"old")
    write_atomic(path, b"new" * 1000)
    assert path.read_bytes() == b"new" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_store_refuses_anything_but_a_job_id_as_a_folder_name(tmp_path):
    with pytest.raises(ValueError):
        JobStore(tmp_path).delete("../outside")


# ---- bounded history


def test_history_keeps_the_newest_finished_jobs_by_count(tmp_path):
    r = JobRunner(tmp_path / "jobs", JobSettings(max_history=3))
    release = threading.Event()
    active = r.submit("t", {}, blocking(release))
    done = []
    for i in range(5):
        job = r.submit("t", {}, quick(i), heavy=False)
        job.wait_finished(5)
        done.append(job.job_id)
    time.sleep(0.1)
    kept = {rec.job_id for rec in r.list("local")}
    assert kept == {active.job_id, *done[-3:]}  # the running job is never pruned
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir() if p.name.startswith("job-")) == sorted(kept)
    release.set()
    active.wait_finished(5)


def test_history_disk_cap_deletes_the_oldest_finished_first(tmp_path):
    big = b"\x89PNG" + b"x" * 300_000  # ~0.3 MB per job result
    r = JobRunner(tmp_path / "jobs", JobSettings(max_history_mb=1.0))
    ids = []
    for i in range(6):
        job = r.submit("t", {}, quick(i, png=big), heavy=False)
        job.wait_finished(5)
        ids.append(job.job_id)
    time.sleep(0.1)
    kept = [rec.job_id for rec in r.list("local")]
    assert kept == ids[::-1][: len(kept)] and 2 <= len(kept) <= 3  # newest ones, under 1 MB together
    used = sum(f.stat().st_size for f in (tmp_path / "jobs").rglob("*") if f.is_file())
    assert used <= 1024 * 1024


def test_history_cap_also_applies_at_start_up(tmp_path):
    r = JobRunner(tmp_path / "jobs", JobSettings(max_history=10))
    for i in range(4):
        r.submit("t", {}, quick(i), heavy=False).wait_finished(5)
    time.sleep(0.1)
    assert len(JobRunner(tmp_path / "jobs", JobSettings(max_history=2)).list("local")) == 2
    assert len(list((tmp_path / "jobs").glob("job-*"))) == 2


def test_only_the_newest_completed_outputs_stay_in_memory_older_results_come_from_disk(tmp_path):
    """Each kept job holding its PNGs and result grew the server by a long call's result size per call."""
    r = JobRunner(tmp_path / "jobs", JobSettings(max_history=50))
    jobs = []
    for i in range(JobRunner.KEEP_OUTPUTS + 6):
        job = r.submit("t", {"i": i}, quick(i, png=bytes([i]) * 1000))
        assert job.ended.wait(5)
        jobs.append(job)
    held = [j for j in jobs if j.output is not None]
    assert held == jobs[-JobRunner.KEEP_OUTPUTS :]
    assert all(j.fn is None for j in jobs)  # the closures (the call's arguments) are released too
    for i, job in enumerate(jobs):  # every kept job's result is still there, the same, from disk or memory
        result = r.result(job)
        assert result is not None and result.data == {"value": i} and result.summary == f"value {i}"
        assert result.images[0].png == bytes([i]) * 1000 and result.images[0].caption == "pic"
    r.shutdown()

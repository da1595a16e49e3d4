"""The job runner: a tool's `run` as a job that outlives the call that started it.

A job runs `fn(reporter)` in its own thread. CPU-heavy jobs take one of `max_heavy` slots (default 1: two trainings
at once would only halve each other's speed) and wait in a FIFO queue for one; light jobs start at once. Tools
that are not jobs at all (tensorize_image, explain_concept) never touch the runner, so they never wait.

The tool talks to its job through `JobReporter`: progress, the partial result, and cancellation (checked at every
progress report). Status changes are written at once; progress and partial results at most every
`save_interval_s`. At start-up, jobs that were queued or running when their server stopped become `interrupted`,
keeping their last partial result; jobs of another live server on the same folder are left to it (ServerLease).
Finished jobs beyond `max_history` or `max_history_mb` are deleted, oldest finished first.

Memory: a finished job keeps its record in memory (small); its output (result and PNGs, 50 KB to MBs) stays in
memory only for the `KEEP_OUTPUTS` most recent completed jobs, for the call that waits on it. Older results are
read back from disk. Keeping every kept job's output made the server grow by the size of each long call's
result (300 KB per train_tiny_gpt call) until `max_history` (100) jobs.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.common import Cancelled, InvalidArgument, Reporter, ToolFailure, ToolOutput
from tools.config import JobSettings
from tools.jobs.records import (
    ACTIVE,
    FINISHED,
    JOB_ID_RE,
    JobRecord,
    JobResult,
    JobStatus,
    JobStore,
    Progress,
    ServerLease,
    new_job_id,
    now,
)

log = logging.getLogger("ml_lab_mcp.jobs")

JobFn = Callable[[Reporter], ToolOutput]


class BackendUnavailable(RuntimeError):
    """The chosen job backend cannot run here (Ray missing, unreachable, or no shared storage); says why."""


CANCELLED_RUNNING = "cancelled while running; the last partial result is kept"


def ended_by(exc: BaseException, job_id: str, tool: str) -> tuple[JobStatus, str]:
    """How a job that raised `exc` ends, and why in words (the same text as a direct call's error)."""
    if isinstance(exc, Cancelled | KeyboardInterrupt):  # KeyboardInterrupt: how ray.cancel stops a task
        return "cancelled", CANCELLED_RUNNING
    if isinstance(exc, InvalidArgument | ToolFailure):
        return "failed", str(exc)
    if isinstance(exc, MemoryError):
        log.exception("job %s (%s) ran out of memory", job_id, tool)
        return "failed", f"{tool} ran out of memory; try smaller inputs"
    log.exception("job %s (%s) failed", job_id, tool)
    return "failed", f"Internal error in {tool}: {type(exc).__name__}: {exc}"


class Job:
    """One job: its record (guarded by a condition variable), its final output, and its cancel flag."""

    def __init__(self, record: JobRecord, fn: JobFn | None = None):
        self.record = record
        self.fn = fn
        self.output: ToolOutput | None = None  # the final output, when it finished in this process
        self.cancel_requested = threading.Event()
        self.ended = threading.Event()  # the job's thread has returned (or there never was one)
        self.cond = threading.Condition(threading.RLock())
        self.version = 0  # bumped on every change; waiters compare it
        self.size_bytes = 0
        self.last_save = 0.0
        self.holds_slot = False  # one of the runner's heavy slots is this job's until its thread ends
        if fn is None:
            self.ended.set()

    @property
    def job_id(self) -> str:
        return self.record.job_id

    def snapshot(self) -> JobRecord:
        with self.cond:
            return self.record.model_copy(deep=True)

    @property
    def finished(self) -> bool:
        return self.record.status in FINISHED

    def wait_change(self, since_version: int, timeout: float) -> int:
        """Block until the job changes after `since_version`, or finishes, or `timeout` s pass; the new version."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.version == since_version and not self.finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.version

    def wait_finished(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True


class JobReporter:
    """The reporter a job's tool receives: progress and partial results go to the job; cancel stops it."""

    def __init__(self, runner: JobRunner, job: Job):
        self._runner = runner
        self._job = job

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        self.check_cancelled()
        self._runner._update(self._job, progress=Progress(done=float(done), total=total, message=message))

    def check_cancelled(self) -> None:
        if self._job.cancel_requested.is_set():
            raise Cancelled()

    def partial(self, result: BaseModel | dict[str, Any]) -> None:
        data = result.model_dump(mode="json") if isinstance(result, BaseModel) else dict(result)
        self._runner._update(self._job, partial=data)


class JobRunner:
    """Jobs of one server: submit, look up (scoped to an owner), list, cancel; persisted under `folder`."""

    KEEP_OUTPUTS = 4  # the newest completed jobs keep their output in memory; the others read it from disk
    GC_INTERVAL_S = 5.0  # at most one full garbage collection per this many seconds, after jobs (see below)

    def __init__(self, folder: Path, settings: JobSettings | None = None, *, save_interval_s: float = 1.0):
        self.settings = settings or JobSettings()
        self.store = JobStore(folder)
        self.save_interval_s = save_interval_s
        self._lock = threading.Lock()  # guards _jobs, _queue, _heavy_running
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._heavy_running = 0
        self._with_output: deque[Job] = deque()  # completed jobs holding their output, oldest first
        self._last_collection = float("-inf")
        self.lease = ServerLease(self.store.folder)
        self._recover()
        self._prune()

    # ---- start-up

    def _recover(self) -> None:
        """Load the saved jobs; those that were queued or running when their server stopped become interrupted.

        Jobs that another live server (one sharing this output folder) is running are left to it, unread.
        """
        alive: dict[str | None, bool] = {}

        def ours(record: JobRecord) -> bool:
            if record.status not in ACTIVE:
                return True
            if record.server not in alive:
                alive[record.server] = self.lease.alive(record.server)
            return not alive[record.server]

        for record in self.store.load_all(keep=ours):
            job = Job(record)
            if record.status in ACTIVE:
                was = record.status
                record.status = "interrupted"
                record.finished_at = now()
                record.error = (
                    f"the server stopped while this job was {was}; "
                    + ("its last partial result is kept" if record.partial else "no partial result was saved")
                    + f". Run {record.tool} again to redo it."
                )
                self.store.save_record(record)
            job.size_bytes = self.store.size(record.job_id)
            self._jobs[record.job_id] = job

    # ---- the public surface

    def submit(
        self, tool: str, arguments: dict[str, Any], fn: JobFn, *, owner: str = "local", heavy: bool = True
    ) -> Job:
        """Queue `fn(reporter)` as a job of `tool`; it starts at once unless heavy and all heavy slots are busy."""
        record = JobRecord(
            job_id=new_job_id(),
            tool=tool,
            owner=owner,
            arguments=arguments,
            heavy=heavy,
            created_at=now(),
            server=self.lease.id,
        )
        job = Job(record, fn)
        self.store.save_record(record)
        with self._lock:
            self._jobs[record.job_id] = job
            if heavy and self._heavy_running >= self.settings.max_heavy:
                self._queue.append(job)
                return job
            if heavy:
                self._heavy_running += 1
                job.holds_slot = True
        self._start(job)
        return job

    def get(self, job_id: str, owner: str) -> Job:
        """The job `job_id` if `owner` may see it; otherwise the same error as for an id that never existed."""
        if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
            raise InvalidArgument("job_id", job_id, "is not a job id (they look like 'job-' + 22 characters)")
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.record.owner != owner:
            raise InvalidArgument(
                "job_id",
                job_id,
                "no such job for this client (finished jobs may have been pruned); see list_jobs",
            )
        return job

    def list(self, owner: str, status: JobStatus | None = None, tool: str | None = None) -> list[JobRecord]:
        """This owner's jobs, newest first, optionally of one status or tool."""
        with self._lock:
            jobs = list(self._jobs.values())
        records = [j.snapshot() for j in jobs if j.record.owner == owner]
        records = [
            r for r in records if (status is None or r.status == status) and (tool is None or r.tool == tool)
        ]
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def cancel(self, job: Job, wait_s: float = 1.0) -> JobRecord:
        """Stop `job`: a queued one at once, a running one at its next check (waits up to `wait_s` for it).

        Either way its status is `cancelled` when this returns (a running job that has not reached its next
        check by then stops there; it can no longer complete). A finished job is left as it is.
        """
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                job.ended.set()
        job.cancel_requested.set()
        if job.record.status == "queued":
            self._finish(job, "cancelled", error="cancelled before it started")
        elif job.record.status == "running":
            job.ended.wait(wait_s)
            if not job.finished:
                self._finish(job, "cancelled", error=CANCELLED_RUNNING)
        return job.snapshot()

    def result(self, job: Job) -> JobResult | None:
        """A completed job's result: from memory if it finished in this process, else from disk."""
        if job.output is not None:
            return JobResult.from_output(job.output)
        if job.record.status != "completed":
            return None
        return self.store.load_result(job.job_id)

    def shutdown(self, wait_s: float = 2.0) -> None:
        """Cancel every job (tests and orderly exits); queued ones end at once, running ones at their next check."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if not j.finished]
        for job in jobs:
            self.cancel(job, wait_s=0)
        deadline = time.monotonic() + wait_s
        for job in jobs:
            job.ended.wait(max(0.0, deadline - time.monotonic()))

    # ---- running

    def _start(self, job: Job) -> None:
        threading.Thread(target=self._run, args=(job,), name=f"job {job.job_id[:10]}", daemon=True).start()

    def _run(self, job: Job) -> None:
        try:
            with job.cond:
                if job.finished:  # cancelled between being dequeued and starting
                    return
                job.record.status = "running"
                job.record.started_at = now()
                self._changed(job)
            self._save(job)
            self._execute(job)
        finally:
            job.fn = None  # its closure holds the call's arguments
            job.ended.set()
            self._release(job)

    def _execute(self, job: Job) -> None:
        assert job.fn is not None
        tool = job.record.tool
        ended = None
        try:
            output = job.fn(JobReporter(self, job))
        except Exception as exc:  # a job's thread is a boundary too: record the failure, keep serving
            ended = ended_by(exc, job.job_id, tool)
        self._collect_garbage()
        if ended is not None:
            self._finish(job, *ended)
        else:
            if job.cancel_requested.is_set():  # it finished, but the caller had already been told `cancelled`
                self._finish(job, "cancelled", error=CANCELLED_RUNNING)
                return
            result = JobResult.from_output(output)
            self.store.save_result(job.job_id, result)  # before the record says completed
            job.output = output
            self._finish(job, "completed")
            self._keep_output(job)

    def _collect_garbage(self) -> None:
        """A full garbage collection after a job, at most once per GC_INTERVAL_S, before the caller hears it ended.

        A job's tensors can outlive it in reference cycles that only a full collection frees: matplotlib's
        mathtext parser (log-scale tick labels) keeps exceptions whose tracebacks hold the drawing frames and,
        through them, every caller's locals; figures and peft/diffusers wrappers are cyclic too. Python starts a
        full collection only after a quarter as many new objects as the ~500,000 long-lived ones (torch,
        transformers), so, measured over stdio, RSS swung 20-50 MB from call to call until one ran. A full
        collection costs ~0.3 s here: rate-limited, that is at most a few percent of a busy server's time. The
        server returns the freed pages after the call (mcp_server/memory.py).
        """
        now_s = time.monotonic()
        if now_s - self._last_collection >= self.GC_INTERVAL_S:
            self._last_collection = now_s
            gc.collect()

    def _keep_output(self, job: Job) -> None:
        """Hold `job`'s output in memory, dropping the oldest held beyond KEEP_OUTPUTS (they stay on disk)."""
        with self._lock:
            self._with_output.append(job)
            while len(self._with_output) > self.KEEP_OUTPUTS:
                self._with_output.popleft().output = None

    def _release(self, job: Job) -> None:
        """Free the job's heavy slot and start the next queued job, then prune the history."""
        nxt = None
        with self._lock:
            if job.holds_slot:
                job.holds_slot = False
                self._heavy_running -= 1
            while self._queue and self._heavy_running < self.settings.max_heavy:
                candidate = self._queue.popleft()
                if not candidate.finished:
                    self._heavy_running += 1
                    candidate.holds_slot = True
                    nxt = candidate
                    break
        if nxt is not None:
            self._start(nxt)
        self._prune()

    # ---- state changes

    def _changed(self, job: Job) -> None:
        """Call with job.cond held: wake every waiter."""
        job.version += 1
        job.cond.notify_all()

    def _update(
        self, job: Job, *, progress: Progress | None = None, partial: dict[str, Any] | None = None
    ) -> None:
        with job.cond:
            if job.finished:
                return
            if progress is not None:
                job.record.progress = progress
            if partial is not None:
                job.record.partial = partial
            self._changed(job)
        if time.monotonic() - job.last_save >= self.save_interval_s:
            self._save(job)

    def _finish(self, job: Job, status: JobStatus, error: str | None = None) -> None:
        with job.cond:  # saved before waiters wake: whoever sees `finished` can rely on the file
            if job.finished:
                return
            job.record.status = status
            job.record.error = error
            job.record.finished_at = now()
            self._save(job)
            self._changed(job)
        job.size_bytes = self.store.size(job.job_id)

    def _save(self, job: Job) -> None:
        """Write the record; under the job's (re-entrant) lock, so an older snapshot never overwrites a newer."""
        try:
            with job.cond:
                job.last_save = time.monotonic()
                self.store.save_record(job.record)
        except OSError as exc:  # a full disk must not kill the job; the record in memory stays right
            log.warning("could not save job %s: %s", job.job_id, exc)

    def _prune(self) -> None:
        """Delete finished jobs beyond the count and disk caps, the oldest finished first."""
        cap_bytes = self.settings.max_history_mb * 1024 * 1024
        with self._lock:
            done = sorted(
                (j for j in self._jobs.values() if j.finished and j.ended.is_set()),
                key=lambda j: j.record.finished_at or j.record.created_at,
            )
            total = sum(j.size_bytes for j in done)
            doomed = []
            while done and (len(done) > self.settings.max_history or total > cap_bytes):
                job = done.pop(0)
                total -= job.size_bytes
                doomed.append(job)
                del self._jobs[job.job_id]
        for job in doomed:
            self.store.delete(job.job_id)


def make_runner(folder: Path, settings: JobSettings | None = None) -> JobRunner:
    """The runner for `settings.backend`: this process's threads (local) or a Ray cluster (ray_backend.py)."""
    settings = settings or JobSettings()
    if settings.backend == "local":
        return JobRunner(folder, settings)
    try:
        from tools.jobs.ray_backend import RayJobRunner
    except ImportError as exc:
        if exc.name != "ray" and not str(exc.name or "").startswith("ray."):
            raise
        raise BackendUnavailable(
            '--jobs ray needs Ray, which is not installed: pip install "ml-lab-mcp[ray]"'
        ) from None
    return RayJobRunner(folder, settings)

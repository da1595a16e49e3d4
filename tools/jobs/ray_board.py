"""The cluster's side of the Ray backend: the JobBoard, one named, detached actor per cluster, and the job tasks it
submits and so owns (`run_job`, reporting through `RayReporter`).

The board, not a replica, owns the tasks: Ray ends a task whose owner dies, and a replica is allowed to die. It
holds the live progress, the ObjectRefs that `ray.cancel` needs, and writes the final record of a task whose
worker died. A replica (ray_backend.py) finds it by name (`job_board()`) and only asks it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel
from ray import cloudpickle

from tools.common import Cancelled
from tools.jobs.records import FINISHED, JobRecord, JobResult, JobStatus, JobStore, Progress, now
from tools.jobs.runner import CANCELLED_RUNNING, JobFn, ended_by

NAMESPACE = "ml-lab-mcp"
BOARD_NAME = "ml-lab-mcp-job-board"
PUSH_S = 0.2  # the task sends its progress to the board at most this often
# a running task the interrupt has not ended by then has its worker killed (see _force_cancel)
FORCE_CANCEL_S = 1.5


# ---- the task


class RayReporter:
    """The reporter a job's tool gets inside its Ray task: progress and partial results to the board and the
    record; a cancel arrives as KeyboardInterrupt from `ray.cancel` in this thread, so there is no flag to check."""

    def __init__(self, record: JobRecord, store: JobStore, board: Any, save_interval_s: float):
        self.record, self.store, self.board, self.save_interval_s = record, store, board, save_interval_s
        self._last_push = self._last_save = 0.0

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        self.record.progress = Progress(done=float(done), total=total, message=message)
        self._publish()

    def check_cancelled(self) -> None:
        pass

    def partial(self, result: BaseModel | dict[str, Any]) -> None:
        self.record.partial = (
            result.model_dump(mode="json") if isinstance(result, BaseModel) else dict(result)
        )
        self._publish()

    def _publish(self) -> None:
        t = time.monotonic()
        if t - self._last_push >= PUSH_S:  # fire and forget: the tool never waits for the board
            self._last_push = t
            self.board.report.remote(
                self.record.job_id, self.record.progress.model_dump(), self.record.partial
            )
        if t - self._last_save >= self.save_interval_s:
            self._last_save = t
            self.store.save_record(self.record)


def run_job(folder: str, job_id: str, fn_bytes: bytes, board: Any, save_interval_s: float) -> JobStatus:
    """The body of a job's Ray task: run the tool, write its result and final record to the shared folder."""
    store = JobStore(Path(folder))
    record = store.load_record(job_id)
    if record is None or record.status in FINISHED:  # pruned, or cancelled while it waited for a CPU
        return record.status if record else "cancelled"
    record.status, record.started_at = "running", now()
    store.save_record(record)
    try:
        fn: JobFn = cloudpickle.loads(fn_bytes)
        output = fn(RayReporter(record, store, board, save_interval_s))
        if ray.get(
            board.is_cancelled.remote(job_id)
        ):  # finished just as it was cancelled: the caller was told so
            raise Cancelled()
        store.save_result(job_id, JobResult.from_output(output))  # before the record says completed
        status: JobStatus = "completed"
        error: str | None = None
    except (Exception, KeyboardInterrupt) as exc:
        status, error = ended_by(exc, job_id, record.tool)
        if isinstance(exc, KeyboardInterrupt):  # ray.cancel: record it, then end this worker process
            finish(store, record, status, error)
            # The interrupt lands at any Python line, e.g. halfway through the tool's `import torch`, which leaves
            # a half-initialised module behind (seen in the tests: the next job on this worker failed with
            # "partially initialized module 'torch'"). Ray reuses workers, so this one goes instead.
            os._exit(1)
    finish(store, record, status, error)
    return status


def finish(store: JobStore, record: JobRecord, status: JobStatus, error: str | None) -> None:
    """Write a job's final record (the task does, the board for a task that died, a replica for a lost job)."""
    record.status, record.error, record.finished_at = status, error, now()
    store.save_record(record)


# ---- the board


class JobBoard:
    """The cluster's one live view of its jobs (a named, detached actor): owns their tasks, their latest
    progress and partial result, and their cancellation; writes the final record of a task whose worker died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, Any] = {}  # job_id -> ObjectRef of its running or waiting task
        self._jobs: dict[Any, tuple[str, str]] = {}  # ObjectRef -> (job_id, folder)
        self._live: dict[str, dict[str, Any]] = {}  # job_id -> latest {"progress", "partial"}
        self._known: set[str] = set()  # every job this board was given (ids only)
        self._cancelled: set[str] = set()
        threading.Thread(target=self._watch, name="job watcher", daemon=True).start()

    def submit(
        self, job_id: str, folder: str, fn_bytes: bytes, num_cpus: float, num_gpus: float, save_s: float
    ) -> None:
        task = ray.remote(run_job).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0, name=f"job {job_id}"
        )
        me = ray.get_runtime_context().current_actor
        ref = task.remote(folder, job_id, fn_bytes, me, save_s)
        with self._lock:
            self._refs[job_id] = ref
            self._jobs[ref] = (job_id, folder)
            self._known.add(job_id)

    def report(self, job_id: str, progress: dict[str, Any], partial: dict[str, Any] | None) -> None:
        with self._lock:
            if job_id in self._refs:
                self._live[job_id] = {"progress": progress, "partial": partial}

    def live(self, job_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """For each id: None if this board never heard of it, else its latest report ({} before the first)."""
        with self._lock:
            return {j: dict(self._live.get(j, {})) if j in self._known else None for j in job_ids}

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            ref = self._refs.get(job_id)
            if job_id in self._known:
                self._cancelled.add(job_id)
        if ref is not None:
            ray.cancel(ref)  # a waiting task is dropped; a running one gets KeyboardInterrupt
            threading.Thread(target=self._force_cancel, args=(ref,), name="force cancel", daemon=True).start()
        return ref is not None

    def _force_cancel(self, ref: Any) -> None:
        """Kill the task's worker if the interrupt did not end it within FORCE_CANCEL_S: a KeyboardInterrupt that
        lands inside Ray's own code (e.g. while the task reports progress to this board) can be swallowed there
        (seen once on a cold CI machine: the job stayed `running`). The watcher then records it `cancelled`."""
        ready, _ = ray.wait([ref], timeout=FORCE_CANCEL_S)
        if not ready:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)

    def is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def _watch(self) -> None:
        while True:
            with self._lock:
                refs = list(self._jobs)
            if not refs:
                time.sleep(0.2)
                continue
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.5)
            for ref in ready:
                with self._lock:
                    job_id, folder = self._jobs.pop(ref)
                    self._refs.pop(job_id, None)
                    self._live.pop(job_id, None)
                try:
                    ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    self._settle(folder, job_id, "cancelled", None)
                except Exception as exc:  # noqa: BLE001 - the worker died, its node was lost, or Ray failed
                    # a worker killed by a forced cancel (or dying after a cancel) ends the job `cancelled`
                    self._settle(folder, job_id, "cancelled" if self.is_cancelled(job_id) else "failed", exc)

    def _settle(self, folder: str, job_id: str, status: JobStatus, exc: BaseException | None) -> None:
        """Write the final record of a task that ended without writing one itself."""
        store = JobStore(Path(folder))
        record = store.load_record(job_id)
        if record is None or record.status in FINISHED:
            return
        if status == "cancelled":
            error = "cancelled before it started" if record.status == "queued" else CANCELLED_RUNNING
        else:
            error = (
                f"the Ray worker running this job died ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}). "
                f"Jobs are not retried: run {record.tool} again to redo it (same seed, same result)."
            )
        with contextlib.suppress(OSError):
            finish(store, record, status, error)


def job_board() -> Any:
    """The cluster's JobBoard, created by the first replica that asks; detached, so no replica owns it, and
    placed on the head node, which lives as long as the cluster (a replica may be a zero-CPU node that dies)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and "node:__internal_head__" in n["Resources"]]
    return (
        ray.remote(JobBoard)
        .options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(head[0], soft=True) if head else "DEFAULT",
            name=BOARD_NAME,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=64,
            max_restarts=-1,
        )
        .remote()
    )

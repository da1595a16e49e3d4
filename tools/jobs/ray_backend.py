"""The Ray backend of the job runner: jobs as Ray tasks, records on the shared output folder (`--jobs ray`).

Who holds what, so that any server replica can answer for any job and a replica can die mid-job:

- **The record and result** live where the local backend keeps them, `<output>/jobs/<job_id>/`, which must be
  storage shared by every node and replica. The replica that starts a job writes it `queued`; the Ray task writes
  `running`, its progress and partial result (at most every `save_interval_s`), then its result and final status.
- **The JobBoard** (ray_board.py), one named, detached Ray actor per cluster, submits the tasks, so it (not the replica) owns
  them: Ray ends a task whose owner dies, and a replica is allowed to die. It holds the live progress (the task
  reports to it five times a second, fresher than the file), the ObjectRefs that `ray.cancel` needs, and it
  watches the tasks: a worker that dies mid-job leaves no final record, so the board writes `failed` with Ray's
  reason.
- **A replica** keeps nothing: `get`, `list`, `job_status` and `cancel_job` read the folder and ask the board.

A job is not retried when its worker dies (`max_retries=0`): the tools are deterministic, so a rerun would only
repeat the same minutes of work, and the usual cause, running out of memory, would repeat with it. The job ends
`failed` with the reason; running the tool again (same seed) gives the same result.
"""

from __future__ import annotations

import builtins
import logging
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray import cloudpickle

from tools.common import InvalidArgument
from tools.config import JobSettings
from tools.jobs.ray_board import NAMESPACE, finish, job_board
from tools.jobs.records import (
    ACTIVE,
    FINISHED,
    JOB_ID_RE,
    JobRecord,
    JobResult,
    JobStatus,
    JobStore,
    Progress,
    new_job_id,
    now,
)
from tools.jobs.runner import BackendUnavailable, Job, JobFn, JobRunner

log = logging.getLogger("ml_lab_mcp.jobs")

POLL_S = 0.2  # a replica waiting on a job looks at it this often
LOST_AFTER_S = (
    10.0  # an active record that the board has never heard of for this long was lost with the board
)
CANCEL_WAIT_S = 5.0  # how long cancel waits for the task to write `cancelled` (it stops at its next bytecode)
CONNECT_TIMEOUT_S = 30.0
# Tools whose core moves to CUDA when the node has it (tools/diffusion_models.py picks the device): on a cluster
# with GPUs their tasks ask Ray for one, so two of them never share a GPU and none lands on a CPU-only node.
CUDA_TOOLS = frozenset({"generate_image"})


# ---- connecting


def connect(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Join the Ray cluster at `address` (None: start one on this machine); a clear error, never a hang."""
    if ray.is_initialized():  # this process already joined (tests run several replicas in one process)
        return
    if address and address not in ("auto", "local") and "://" not in address:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
                pass
        except (OSError, ValueError) as exc:
            raise BackendUnavailable(
                f"--jobs ray: no Ray cluster answers at {address!r} ({exc}). Start one with `ray start --head` "
                "and pass its address (host:6379), or leave --ray-address out to start Ray on this machine."
            ) from None
    failure: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                log_to_driver=False,  # a worker's prints must never reach this server's stdout (the protocol)
                configure_logging=False,
                include_dashboard=None if address else False,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    # Ray retries an unreachable cluster for minutes; the thread bounds it (a stuck one dies with the process).
    thread = threading.Thread(target=init, name="ray connect", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise BackendUnavailable(
            f"--jobs ray: the Ray cluster at {address!r} did not answer within {timeout_s:g} s "
            "(is it the head's GCS port, 6379 by default, and does this machine's Ray version match?)"
        )
    if failure:
        raise BackendUnavailable(f"--jobs ray: could not join Ray at {address!r}: {failure[0]}") from None


def check_shared_storage(
    folder: Path, nodes: list[dict[str, Any]] | None = None, timeout_s: float = 60
) -> None:
    """With more than one node, prove that every node reads and writes `folder`, or refuse to start.

    This process writes a marker with a random token; a task pinned to each node reads it and writes its own
    answer next to it; this process reads the answers back. A node that cannot (another disk at that path, a
    read-only mount, a node that cannot run the task) makes the server refuse, naming the node.
    """
    nodes = nodes if nodes is not None else [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1:
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = secrets.token_hex(8)
    marker = folder / f".shared-check-{token}"
    marker.write_text(token)
    answers = [folder / f".shared-check-{token}-{i}" for i in range(len(nodes))]
    probe = ray.remote(num_cpus=0, max_retries=0)(_answer_marker)
    deadline = time.monotonic() + timeout_s
    bad = []
    try:
        refs = [
            probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(str(marker), str(answer))
            for node, answer in zip(nodes, answers, strict=True)
        ]
        for node, ref, answer in zip(nodes, refs, answers, strict=True):
            try:
                read = ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
                wrote = answer.read_text() if answer.exists() else None
            except Exception as exc:  # noqa: BLE001 - any failure means: not verified
                read = wrote = f"({type(exc).__name__})"
                ray.cancel(ref, force=True)
            if read != token or wrote != token:
                bad.append(f"{node.get('NodeManagerAddress', '?')} (node {str(node['NodeID'])[:8]})")
    finally:
        for path in (marker, *answers):
            path.unlink(missing_ok=True)
    if bad:
        raise BackendUnavailable(
            f"--jobs ray: the output folder {folder} is not shared storage: {', '.join(bad)} could not read and "
            "write a file this server wrote there. Jobs write their results on whichever node runs them, so "
            "mount one shared volume (NFS, a ReadWriteMany volume) at the same path on every node and every "
            "server replica (docs/scale-out.md)."
        )


def _answer_marker(marker: str, answer: str) -> str | None:
    try:
        token = Path(marker).read_text()
        Path(answer).write_text(token)
        return token
    except OSError:
        return None


# ---- the replica's side


class RayJob(Job):
    """A job as one replica sees it: the record on the shared folder, with the board's live progress on top."""

    def __init__(self, record: JobRecord, runner: RayJobRunner):
        super().__init__(record)
        self._runner = runner

    def refresh(self) -> None:
        rec = self._runner.store.load_record(self.job_id) or self.record  # pruned: keep what we had
        if rec.status in ACTIVE:
            rec = self._runner.with_live([rec])[0]
        with self.cond:
            if rec != self.record:
                self.record = rec
                self._runner._changed(self)

    def wait_change(self, since_version: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            left = deadline - time.monotonic()
            if self.version != since_version or self.finished or left <= 0:
                return self.version
            time.sleep(min(POLL_S, left))

    def wait_finished(self, timeout: float) -> bool:
        self.wait_change(-2, 0)
        deadline = time.monotonic() + timeout
        while not self.finished and time.monotonic() < deadline:
            self.wait_change(self.version, deadline - time.monotonic())
        return self.finished


class RayJobRunner(JobRunner):
    """The job runner of one stateless replica: jobs run as Ray tasks; nothing about them lives in this process."""

    def __init__(self, folder: Path, settings: JobSettings | None = None, *, save_interval_s: float = 1.0):
        self.settings = settings or JobSettings(backend="ray")
        self.store = JobStore(folder)
        self.save_interval_s = save_interval_s
        connect(self.settings.ray_address)
        check_shared_storage(folder)
        self._board = job_board()
        ray.get(self._board.live.remote([]), timeout=CONNECT_TIMEOUT_S)  # the board answers before we serve
        self._gpus = float(ray.cluster_resources().get("GPU", 0))

    def submit(
        self, tool: str, arguments: dict[str, Any], fn: JobFn, *, owner: str = "local", heavy: bool = True
    ) -> Job:
        record = JobRecord(
            job_id=new_job_id(), tool=tool, owner=owner, arguments=arguments, heavy=heavy, created_at=now()
        )
        self.store.save_record(record)
        gpus = 1 if tool in CUDA_TOOLS and self._gpus >= 1 else 0
        try:
            call = self._board.submit.remote(
                record.job_id,
                str(self.store.folder),
                cloudpickle.dumps(fn),
                1 if heavy else 0,
                gpus,
                self.save_interval_s,
            )
            ray.get(call, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the job cannot start: say why on the job
            log.exception("could not hand job %s to Ray", record.job_id)
            finish(
                self.store, record, "failed", f"could not hand the job to Ray: {type(exc).__name__}: {exc}"
            )
        self._prune()
        return RayJob(record, self)

    def get(self, job_id: str, owner: str) -> Job:
        if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
            raise InvalidArgument("job_id", job_id, "is not a job id (they look like 'job-' + 22 characters)")
        record = self.store.load_record(job_id)
        if record is None or record.owner != owner:
            raise InvalidArgument(
                "job_id",
                job_id,
                "no such job for this client (finished jobs may have been pruned); see list_jobs",
            )
        job = RayJob(record, self)
        job.refresh()
        return job

    def list(self, owner: str, status: JobStatus | None = None, tool: str | None = None) -> list[JobRecord]:
        records = [r for r in self.store.load_all(clean_tmp=False) if r.owner == owner]
        records = self.with_live(records)
        records = [
            r for r in records if (status is None or r.status == status) and (tool is None or r.tool == tool)
        ]
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def cancel(self, job: Job, wait_s: float = 1.0) -> JobRecord:
        """Ask the board to `ray.cancel` the task, then wait (up to CANCEL_WAIT_S) for its `cancelled` record."""
        if job.finished:
            return job.snapshot()
        held = ray.get(self._board.cancel.remote(job.job_id), timeout=CONNECT_TIMEOUT_S)
        job.wait_finished(max(wait_s, CANCEL_WAIT_S) if held else 0)
        if (
            not job.finished and not held
        ):  # the board no longer has it (lost, or it just ended): settle it here
            record = self.store.load_record(job.job_id)
            if record is not None and record.status in ACTIVE:
                finish(self.store, record, "cancelled", "cancelled; the last partial result is kept")
            job.wait_finished(0)
        return job.snapshot()

    def result(self, job: Job) -> JobResult | None:
        return self.store.load_result(job.job_id) if job.record.status == "completed" else None

    def shutdown(self, wait_s: float = 2.0) -> None:
        """Nothing to stop: the jobs belong to the cluster and go on when this replica ends."""

    # ---- helpers

    def with_live(self, records: builtins.list[JobRecord]) -> builtins.list[JobRecord]:
        """The records with the board's live progress on the active ones; those the board lost, `interrupted`."""
        active = [r.job_id for r in records if r.status in ACTIVE]
        if not active:
            return records
        live = ray.get(self._board.live.remote(active), timeout=CONNECT_TIMEOUT_S)
        out = []
        for r in records:
            state = live.get(r.job_id, {})
            if r.job_id in live and state is None and now() - r.created_at > LOST_AFTER_S:
                r = r.model_copy()
                finish(
                    self.store,
                    r,
                    "interrupted",
                    f"the Ray cluster lost this job (its job board restarted) while it was {r.status}. "
                    f"Run {r.tool} again to redo it.",
                )
            elif state:
                r = r.model_copy(
                    update={
                        "progress": Progress.model_validate(state["progress"]),
                        "partial": state.get("partial") or r.partial,
                    }
                )
            out.append(r)
        return out

    def _prune(self) -> None:
        """Delete finished jobs beyond the count and disk caps, the oldest finished first (any replica may)."""
        done = sorted(
            (r for r in self.store.load_all(clean_tmp=False) if r.status in FINISHED),
            key=lambda r: r.finished_at or r.created_at,
        )
        sizes = {r.job_id: self.store.size(r.job_id) for r in done}
        total, cap = sum(sizes.values()), self.settings.max_history_mb * 1024 * 1024
        while done and (len(done) > self.settings.max_history or total > cap):
            r = done.pop(0)
            total -= sizes[r.job_id]
            self.store.delete(r.job_id)

"""A job's record and final result on disk, under `<output>/jobs/<job_id>/`.

Every file is written atomically (a temporary file in the same folder, then `os.replace`), so a server killed at
any instant leaves either the old file or the new one, never half of one. The record is small JSON and rewritten
as the job changes; the final result (structured data, summary, pictures) is written once, before the record says
`completed`, so a completed record always has its result next to it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.common import InlineImage, ToolOutput

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("ml_lab_mcp.jobs")

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running")
FINISHED: tuple[JobStatus, ...] = ("completed", "failed", "cancelled", "interrupted")
JOB_STATUSES: tuple[JobStatus, ...] = ACTIVE + FINISHED

# 16 random bytes (128 bits) from `secrets`: an id cannot be guessed, so knowing one is a capability.
JOB_ID_RE = re.compile(r"^job-[A-Za-z0-9_-]{22}$")


def new_job_id() -> str:
    return "job-" + secrets.token_urlsafe(16)


class Progress(BaseModel):
    done: float = Field(
        0.0, description="Work done so far, in the tool's own unit (epochs, denoising steps)."
    )
    total: float | None = Field(None, description="Work in all, when known.")
    message: str | None = Field(
        None, description="What the tool is doing now, e.g. 'epoch 120/300, loss 0.21'."
    )


class JobRecord(BaseModel):
    """Everything known about a job except its final result (stored next to it)."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    tool: str
    owner: str = Field(
        description="Who may see the job: 'local', or a digest of the HTTP token that started it."
    )
    arguments: dict[str, Any]
    status: JobStatus = "queued"
    heavy: bool = True
    progress: Progress = Field(default_factory=Progress)
    partial: dict[str, Any] | None = None
    error: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    server: str | None = Field(
        None,
        description="The lease of the server process that runs the job (see ServerLease); None: unknown.",
    )


@dataclass
class JobResult:
    """A finished job's output as stored: the result model's JSON, the summary, and the inline pictures."""

    data: dict[str, Any]
    summary: str | None = None
    images: list[InlineImage] = field(default_factory=list)

    @classmethod
    def from_output(cls, output: ToolOutput) -> JobResult:
        return cls(output.result.model_dump(mode="json"), output.summary, list(output.images))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: readers (and a restart after a kill) see old or new, never half."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class JobStore:
    """The jobs folder: one sub-folder per job with record.json, result.json and result PNGs."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _dir(self, job_id: str) -> Path:
        if not JOB_ID_RE.match(job_id):  # ids are generated here; anything else never names a path
            raise ValueError(f"not a job id: {job_id!r}")
        return self.folder / job_id

    def save_record(self, record: JobRecord) -> None:
        d = self._dir(record.job_id)
        d.mkdir(exist_ok=True)
        write_atomic(d / "record.json", record.model_dump_json(indent=1).encode("utf-8"))

    def save_result(self, job_id: str, result: JobResult) -> None:
        d = self._dir(job_id)
        d.mkdir(exist_ok=True)
        images = []
        for i, img in enumerate(result.images):
            name = f"image{i}.png" if img.mime_type == "image/png" else f"image{i}.jpg"
            write_atomic(d / name, img.png)
            images.append({"file": name, "caption": img.caption, "mime_type": img.mime_type})
        body = {"result": result.data, "summary": result.summary, "images": images}
        write_atomic(d / "result.json", json.dumps(body, ensure_ascii=False).encode("utf-8"))

    def load_result(self, job_id: str) -> JobResult | None:
        d = self._dir(job_id)
        try:
            body = json.loads((d / "result.json").read_text(encoding="utf-8"))
            images = [
                InlineImage(
                    (d / im["file"]).read_bytes(), im.get("caption", ""), im.get("mime_type", "image/png")
                )
                for im in body.get("images", [])
                if re.fullmatch(r"image\d+\.(png|jpg)", str(im.get("file")))
            ]
            return JobResult(body["result"], body.get("summary"), images)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load_record(self, job_id: str) -> JobRecord | None:
        """The job's record as last saved, or None (no such job, pruned, or unreadable)."""
        try:
            return JobRecord.model_validate_json((self._dir(job_id) / "record.json").read_bytes())
        except (OSError, ValidationError):
            return None

    def load_all(
        self, *, clean_tmp: bool = True, keep: Callable[[JobRecord], bool] | None = None
    ) -> list[JobRecord]:
        """Every readable record, oldest first. A folder without a valid record is skipped (and logged).

        `clean_tmp` deletes temporary files left by a kill mid-write, in the folders of the records `keep`
        accepts (all, without `keep`); records it refuses are left out. A folder with no record yet is left
        alone: it may be a job another server is creating right now (its first record is still a temporary file).
        Ray replicas pass clean_tmp=False: a task in another process may be writing one in any folder.
        """
        records = []
        for d in self.folder.iterdir():
            if not d.is_dir() or not JOB_ID_RE.match(d.name):
                continue
            try:
                record = JobRecord.model_validate_json((d / "record.json").read_bytes())
            except (OSError, ValidationError) as exc:
                log.warning("skipping job folder %s: no valid record (%s)", d, type(exc).__name__)
                continue
            if keep is not None and not keep(record):
                continue
            records.append(record)
            for tmp in d.glob(".*.tmp") if clean_tmp else ():  # left by a kill mid-write
                tmp.unlink(missing_ok=True)
        return sorted(records, key=lambda r: r.created_at)

    def size(self, job_id: str) -> int:
        d = self._dir(job_id)
        try:
            return sum(f.stat().st_size for f in d.iterdir() if f.is_file())
        except OSError:
            return 0

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self._dir(job_id), ignore_errors=True)


def now() -> float:
    return time.time()


class ServerLease:
    """This server process's claim on the jobs it runs: `<jobs>/.servers/<id>.lock`, held with an exclusive
    `flock` for the process's life. The kernel drops the lock when the process ends, however it ends.

    Two servers may share one output folder (Claude Desktop and Cursor each start one, both on the per-user
    default). A server starting up turns the queued and running jobs it finds into `interrupted`, because a
    stopped server cannot finish them; the lease tells it which of them another live server is still running,
    and those it leaves alone (their records, their temporary files). Where `fcntl` does not exist (Windows)
    every other server counts as stopped, as before leases.
    """

    DIR = ".servers"

    def __init__(self, folder: Path):
        self.dir = folder / self.DIR
        self.id = secrets.token_urlsafe(12)
        self._fd: int | None = None
        if fcntl is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{self.id}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._sweep()

    def _sweep(self, min_age_s: float = 60.0) -> None:
        """Delete the lease files of servers that stopped (nobody holds their lock) and are older than a minute
        (a younger one may belong to a server between creating its file and locking it)."""
        for path in self.dir.glob("*.lock"):
            try:
                if time.time() - path.stat().st_mtime < min_age_s:
                    continue
            except OSError:
                continue
            self.alive(path.stem)

    def alive(self, server: str | None) -> bool:
        """Whether another server process holding lease `server` is running now. Stale lease files are deleted."""
        if (
            fcntl is None
            or not server
            or server == self.id
            or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", server)
        ):
            return False
        path = self.dir / f"{server}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False  # no lease file: that server stopped and cleaned up
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # its process holds the lock
        except OSError:
            return False
        else:
            path.unlink(missing_ok=True)  # a killed server's file: nobody holds it
            return False
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            (self.dir / f"{self.id}.lock").unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

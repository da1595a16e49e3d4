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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.common import InlineImage, ToolOutput

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

    def load_all(self, *, clean_tmp: bool = True) -> list[JobRecord]:
        """Every readable record, oldest first. A folder without a valid record is skipped (and logged).

        `clean_tmp` deletes temporary files left by a kill mid-write: only for the folder's one writer (the local
        backend at start-up); with Ray, another process may be writing one right now.
        """
        records = []
        for d in self.folder.iterdir():
            if not d.is_dir() or not JOB_ID_RE.match(d.name):
                continue
            try:
                records.append(JobRecord.model_validate_json((d / "record.json").read_bytes()))
            except (OSError, ValidationError) as exc:
                log.warning("skipping job folder %s: no valid record (%s)", d, type(exc).__name__)
        for tmp in self.folder.glob("*/.*.tmp") if clean_tmp else ():  # left by a kill mid-write
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

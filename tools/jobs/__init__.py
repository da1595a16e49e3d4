"""Jobs: long tool calls that outlive the MCP call that started them (no mcp import; see runner.py)."""

from __future__ import annotations

from tools.jobs.records import ACTIVE, FINISHED, JOB_STATUSES, JobRecord, JobResult, JobStatus, Progress
from tools.jobs.runner import BackendUnavailable, Job, JobReporter, JobRunner, make_runner

__all__ = [
    "ACTIVE",
    "BackendUnavailable",
    "FINISHED",
    "JOB_STATUSES",
    "Job",
    "JobRecord",
    "JobReporter",
    "JobResult",
    "JobRunner",
    "JobStatus",
    "Progress",
    "make_runner",
]

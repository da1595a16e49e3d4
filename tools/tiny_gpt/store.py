"""Where train_tiny_gpt runs live: <output>/gpt_runs/<run_id>/ (a save_pretrained folder + metrics.json)."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from tools.common import InvalidArgument
from tools.config import LabConfig

FOLDER = "gpt_runs"
RUN_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{10}$")


def new_run_dir(cfg: LabConfig) -> Path:
    """A fresh run folder with a generated name (never the caller's)."""
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:10]
    path = cfg.output_dir / FOLDER / run_id
    path.mkdir(parents=True)
    return path


def run_dir(cfg: LabConfig, run_id: str, argument: str = "run_id") -> Path:
    """The folder of a saved run, or an error naming the argument and where to list runs."""
    path = cfg.output_dir / FOLDER / run_id
    if not RUN_ID_RE.match(run_id) or not (path / "config.json").is_file():
        raise InvalidArgument(
            argument, run_id, "no such train_tiny_gpt run; list saved runs at mllab://gpt-runs"
        )
    return path


def write_metrics(path: Path, args: Any, result: Any) -> None:
    doc = {"arguments": args.model_dump(mode="json"), "result": result.model_dump(mode="json")}
    (path / "metrics.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def list_runs(cfg: LabConfig, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent runs, newest first: id, corpus, size, final losses, baselines and picture URIs."""
    folder = cfg.output_dir / FOLDER
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*/metrics.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    out = []
    for path in files:
        try:
            res = json.loads(path.read_text(encoding="utf-8"))["result"]
            out.append({k: res[k] for k in SUMMARY_KEYS})
        except (OSError, ValueError, KeyError):
            continue
    return out


SUMMARY_KEYS = (
    "run_id",
    "corpus",
    "tokenizer",
    "vocab_size",
    "parameters",
    "steps_run",
    "final_train_loss",
    "final_val_loss",
    "baselines",
    "run_path",
    "picture_uri",
)


def read_run(cfg: LabConfig, run_id: str) -> str | None:
    """The metrics JSON of one run, or None."""
    if not RUN_ID_RE.match(run_id):
        return None
    path = cfg.output_dir / FOLDER / run_id / "metrics.json"
    return path.read_text(encoding="utf-8") if path.is_file() else None

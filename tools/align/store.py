"""Stage folders: where finetune_gpt saves each stage, and how a run id, 'builtin' or a folder is found.

A stage is <output>/gpt_runs/<run_id>/: a standard transformers folder (config.json, model.safetensors,
tokenizer files) plus run.json (the arguments and result of the call that made it). train_tiny_gpt keeps its
runs in the same folder with the same kind of id, so sample_text and tokenize_text find every stage by run id,
and finetune_gpt starts from a train_tiny_gpt run the same way.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.align.schema import BUILTIN_BASE
from tools.common import InvalidArgument
from tools.config import LabConfig
from tools.paths import resolve_readable

CATEGORY = "gpt_runs"
RUN_URI_PREFIX = "mllab://gpt-stages/"
BUILTIN_FOLDER = Path(__file__).resolve().parents[1] / "assets" / "align_base"
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Stage:
    name: str  # what the caller wrote: 'builtin', a run id, or a folder
    folder: Path
    method: str  # base, sft, dpo, grpo (from run.json; 'base' for anything else)
    parent: str | None  # the run it was trained from, if recorded


def runs_dir(cfg: LabConfig) -> Path:
    return cfg.output_dir / CATEGORY


def new_run_folder(cfg: LabConfig) -> tuple[str, Path]:
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:10]}"  # train_tiny_gpt's id format
    folder = runs_dir(cfg) / run_id
    folder.mkdir(parents=True)
    return run_id, folder


def resolve_stage(cfg: LabConfig, value: str, argument: str) -> Stage:
    """'builtin', a saved run id, or a model folder under the allowed folders; else InvalidArgument."""
    if value == BUILTIN_BASE:
        return Stage(value, BUILTIN_FOLDER, "base", None)
    if RUN_ID_RE.match(value) and (runs_dir(cfg) / value / "config.json").is_file():
        folder = runs_dir(cfg) / value
        record = _record(folder)
        return Stage(value, folder, record.get("method", "base"), record.get("base_run"))
    if "/" not in value and "\\" not in value:
        raise InvalidArgument(
            argument,
            value,
            f"no saved run with this id; give 'builtin', a run id listed at {RUN_URI_PREFIX[:-1]}, "
            "or a model folder under the allowed folders",
        )
    try:
        config = resolve_readable(str(Path(value) / "config.json"), cfg, argument, max_bytes=1_000_000)
    except InvalidArgument as exc:
        raise InvalidArgument(argument, value, f"a model folder's config.json: {exc.allowed}") from None
    return Stage(value, config.parent, "base", None)


def _record(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "run.json").read_text(encoding="utf-8"))["result"]
    except (OSError, ValueError, KeyError):
        return {}


def write_record(folder: Path, args: Any, result: Any) -> None:
    doc = {
        "tool": "finetune_gpt",
        "arguments": args.model_dump(mode="json"),
        "result": result.model_dump(mode="json"),
    }
    (folder / "run.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def list_stages(cfg: LabConfig, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent finetune_gpt stages, newest first, with their before/after figures."""
    folder = runs_dir(cfg)
    if not folder.is_dir():
        return []
    records = sorted(folder.glob("*/run.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    out = []
    for path in records:
        res = _record(path.parent)
        if res:
            out.append(
                {k: res.get(k) for k in ("run_id", "method", "base_run", "task", "before", "after", "folder")}
            )
    return out


def read_stage(cfg: LabConfig, run_id: str) -> str | None:
    if not RUN_ID_RE.match(run_id):
        return None
    path = runs_dir(cfg) / run_id / "run.json"
    return path.read_text(encoding="utf-8") if path.is_file() else None

"""Where taught words live: <output>/image_loras/<lora_id>/ with the LoRA (diffusers format), the word's
embedding and adapter.json (the word, the base model, the arguments and the result). No torch here."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from tools.common import InvalidArgument
from tools.config import LabConfig

FOLDER = "image_loras"
ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{10}$")
INFO_FILE = "adapter.json"


def new_dir(cfg: LabConfig) -> Path:
    """A fresh adapter folder with a generated name (never the caller's)."""
    path = cfg.output_dir / FOLDER / (time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:10])
    path.mkdir(parents=True)
    return path


def write_info(path: Path, info: dict[str, Any]) -> None:
    (path / INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")


def find(cfg: LabConfig, lora_id: str, argument: str = "lora") -> tuple[Path, dict[str, Any]]:
    """The folder and adapter.json of a saved adapter, or an error naming the argument and where to list them."""
    path = cfg.output_dir / FOLDER / lora_id
    if not ID_RE.match(lora_id) or not (path / INFO_FILE).is_file():
        raise InvalidArgument(
            argument, lora_id, "no such teach_image_model adapter; list them at mllab://image-loras"
        )
    return path, json.loads((path / INFO_FILE).read_text(encoding="utf-8"))


SUMMARY_KEYS = (
    "lora_id",
    "word",
    "token_id",
    "rank",
    "lora_parameters",
    "adapter_bytes",
    "steps_run",
    "usage",
)


def list_adapters(cfg: LabConfig, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent adapters, newest first: id, word, rank, size and how to use it."""
    folder = cfg.output_dir / FOLDER
    if not folder.is_dir():
        return []
    files = sorted(folder.glob(f"*/{INFO_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    out = []
    for path in files:
        try:
            res = json.loads(path.read_text(encoding="utf-8"))["result"]
            out.append({k: res[k] for k in SUMMARY_KEYS} | {"grid_uri": res["grid"]["uri"]})
        except (OSError, ValueError, KeyError):
            continue
    return out


def read(cfg: LabConfig, lora_id: str) -> str | None:
    """adapter.json of one adapter, or None."""
    if not ID_RE.match(lora_id):
        return None
    path = cfg.output_dir / FOLDER / lora_id / INFO_FILE
    return path.read_text(encoding="utf-8") if path.is_file() else None

"""generate_image(lora=..., lora_scale=...): a taught word loaded by diffusers' own loaders onto the base model.

The cached base pipeline is never changed: a taught word gets its own copy of the tokenizer, text encoder and
UNet (a few MB for the built-in model), kept for the last few adapters used.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.common import InvalidArgument
from tools.config import LabConfig
from tools.teach_image import store

MAX_CACHED = 2
_CACHE: dict[tuple[int, str], Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Adapter:
    lora_id: str
    folder: Path
    word: str


def check(args: Any, cfg: LabConfig, model_path: str) -> Adapter | None:
    """The adapter generate_image's `lora` names (None without one); errors name `lora` / `lora_scale`."""
    if args.lora is None:
        if "lora_scale" in args.model_fields_set:
            raise InvalidArgument(
                "lora_scale", args.lora_scale, "only used with `lora`; leave it out otherwise"
            )
        return None
    folder, info = store.find(cfg, args.lora, "lora")
    if info.get("base_model") != model_path:
        raise InvalidArgument(
            "lora",
            args.lora,
            f"was taught to the model at {info.get('base_model')}; use that model (builtin)",
        )
    return Adapter(args.lora, folder, info["word"])


def pipeline(cached, adapter: Adapter):
    """The base pipeline with the adapter loaded (load_lora_weights + load_textual_inversion), cached."""
    from tools.teach_image import lora

    key = (id(cached), adapter.lora_id)
    with _LOCK:
        if key not in _CACHE:
            while len(_CACHE) >= MAX_CACHED:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = lora.load(cached, adapter.folder, adapter.word)
        return _CACHE[key]

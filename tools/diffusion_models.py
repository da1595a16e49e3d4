"""Which diffusion models exist, what each supports, and one process-wide cache of loaded pipelines.

Models are diffusers Stable Diffusion folders: the built-in one shipped in tools/assets/builtin/ and any
folder the user names with --model-dir. Describing a model reads only its JSON configs (cheap, no torch);
loading is strictly offline (local_files_only, HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tools.common import InvalidArgument, ToolFailure, ToolInput
from tools.config import LabConfig

BUILTIN_NAME = "builtin"
BUILTIN_DIR = Path(__file__).resolve().parent / "assets" / "builtin"
SUPPORTED_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
TRAINED_WORDS_FILE = "tokenizer/trained_words.json"
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
}


class ModelInfo(BaseModel):
    """One model generate_image can use, described from its config files."""

    name: str = Field(description="The value to pass as generate_image's `model`.")
    kind: str = Field(
        description="'builtin' (shipped, trained by this project) or 'user' (a --model-dir folder)."
    )
    path: str = Field(description="The diffusers folder on disk.")
    pipeline: str = Field(description="diffusers pipeline class from model_index.json.")
    native_size: int = Field(description="Width and height (pixels) the model was trained at.")
    size_multiple: int = Field(description="width and height must be multiples of this.")
    max_side: int = Field(
        description="Largest width or height accepted (also capped by max_generate_pixels)."
    )
    latent_channels: int = Field(description="Channels of the latent the UNet denoises.")
    latent_downscale: int = Field(
        description="Image pixels per latent pixel along a side (VAE scale factor)."
    )
    prediction_type: str = Field(
        description="What the UNet predicts: epsilon (noise), v_prediction or sample."
    )
    default_scheduler: str = Field(description="Scheduler class saved with the model (scheduler='default').")
    schedulers: list[str] = Field(description="Values accepted for generate_image's `scheduler`.")
    max_prompt_tokens: int = Field(description="Tokenizer length limit, start and end tokens included.")
    img2img: bool = Field(description="Whether init_image (image-to-image) works with this model.")
    loaded: bool = Field(description="Whether the pipeline is already in memory (first call pays the load).")
    vocabulary: list[str] | None = Field(
        None, description="Built-in model only: the words it was trained on."
    )
    notes: str = Field("", description="What the model is good for.")


class ListModelsInput(ToolInput):
    """list_models takes no arguments."""


class ListModelsResult(BaseModel):
    models: list[ModelInfo] = Field(
        description="Every usable model; pass its name as generate_image's `model`."
    )
    problems: list[str] = Field(description="--model-dir folders that are not usable, and why.")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    path: Path


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def model_entries(cfg: LabConfig) -> list[ModelEntry]:
    """The built-in model, then each --model-dir folder under its folder name (made unique)."""
    entries = [ModelEntry(BUILTIN_NAME, "builtin", BUILTIN_DIR)]
    taken = {BUILTIN_NAME}
    for folder in cfg.model_dirs:
        name, k = folder.name or "model", 2
        while name in taken:
            name, k = f"{folder.name}-{k}", k + 1
        taken.add(name)
        entries.append(ModelEntry(name, "user", folder))
    return entries


def check_folder(path: Path) -> str | None:
    """Why `path` is not a usable Stable Diffusion diffusers folder, or None if it is."""
    index = path / "model_index.json"
    if not path.is_dir():
        return f"{path} is not a folder"
    if not index.is_file():
        return f"{path} has no model_index.json (not a diffusers pipeline folder)"
    try:
        data = _read_json(index)
    except (OSError, ValueError) as exc:
        return f"{index} cannot be read as JSON ({exc})"
    cls = data.get("_class_name")
    if cls not in SUPPORTED_PIPELINES:
        return f"{path} holds a {cls!r} pipeline; supported: {', '.join(SUPPORTED_PIPELINES)} (SD 1.x / 2.x)"
    missing = [c for c in REQUIRED_COMPONENTS if not (path / c).is_dir()]
    if missing:
        return f"{path} lacks component folder(s) {missing}"
    return None


def describe(entry: ModelEntry) -> ModelInfo:
    p = entry.path
    index = _read_json(p / "model_index.json")
    unet = _read_json(p / "unet" / "config.json")
    vae = _read_json(p / "vae" / "config.json")
    sched = _read_json(p / "scheduler" / "scheduler_config.json")
    down = 2 ** (len(vae.get("block_out_channels", [1, 1, 1, 1])) - 1)
    multiple = down * 2 ** (len(unet.get("block_out_channels", [1, 1, 1, 1])) - 1)
    sample = unet.get("sample_size", 64)
    native = (sample[0] if isinstance(sample, list) else sample) * down
    tok_max = 77
    for name in ("tokenizer_config.json",):
        f = p / "tokenizer" / name
        if f.is_file():
            tok_max = int(_read_json(f).get("model_max_length", 77))
    tok_max = min(tok_max, 4096)
    is_builtin = entry.kind == "builtin"
    vocabulary = None
    notes = "A Stable Diffusion folder from the user's disk."
    if is_builtin:
        vocabulary = trained_words(p)
        notes = (
            "Tiny latent diffusion model trained from scratch by this project on 64x64 procedural scenes: one "
            "shape (circle, square, triangle) of a colour, a size and a position, on a coloured background, e.g. "
            "'a small red circle in the top left on a blue background'. Best at 64x64, 20 steps, guidance 3."
        )
    return ModelInfo(
        name=entry.name,
        kind=entry.kind,
        path=str(p),
        pipeline=index.get("_class_name", "?"),
        native_size=native,
        size_multiple=multiple,
        max_side=max(native * 2, multiple),
        latent_channels=unet.get("in_channels", 4),
        latent_downscale=down,
        prediction_type=sched.get("prediction_type", "epsilon"),
        default_scheduler=sched.get("_class_name", "?"),
        schedulers=["default", *SCHEDULERS],
        max_prompt_tokens=tok_max,
        img2img=True,
        loaded=any(k[0] == str(p) for k in _CACHE),
        vocabulary=vocabulary,
        notes=notes,
    )


def trained_words(path: Path) -> list[str]:
    """The words a built-in model folder was trained on.

    tokenizer/trained_words.json, written with every export of the training script's phrasing stage; the first
    shipped model predates that file and was trained on tools.scenes.VOCABULARY alone.
    """
    f = path / TRAINED_WORDS_FILE
    if f.is_file():
        return [str(w) for w in json.loads(f.read_text(encoding="utf-8"))]
    from tools.scenes import VOCABULARY

    return list(VOCABULARY)


def unknown_words(prompt: str, vocabulary: list[str]) -> list[str]:
    """The prompt's words outside `vocabulary`, in order, each once.

    Words are runs of letters in lower case, as CLIP's tokenizer splits text before its BPE; digits and
    punctuation are not words.
    """
    known = set(vocabulary)
    return list(dict.fromkeys(w for w in re.findall(r"[^\W\d_]+", prompt.lower()) if w not in known))


def close_words(word: str, vocabulary: list[str]) -> list[str]:
    """Up to two trained words spelt like `word` (a typo or a plural: 'trangle' -> 'triangle'), best first."""
    import difflib

    return difflib.get_close_matches(word, vocabulary, n=2, cutoff=0.75)


def list_models(cfg: LabConfig) -> ListModelsResult:
    models, problems = [], []
    for entry in model_entries(cfg):
        problem = check_folder(entry.path)
        if problem:
            if entry.kind == "user":
                problems.append(f"{entry.name}: {problem}")
            else:
                problems.append(f"builtin: the built-in model is missing ({problem}); reinstall the package")
            continue
        try:
            models.append(describe(entry))
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{entry.name}: config files unreadable ({type(exc).__name__}: {exc})")
    return ListModelsResult(models=models, problems=problems)


def find_model(cfg: LabConfig, name: str) -> ModelInfo:
    """The named model's description, or InvalidArgument('model', ...) listing what exists."""
    entries = {e.name: e for e in model_entries(cfg)}
    if name not in entries:
        raise InvalidArgument(
            "model", name, f"unknown model; available: {', '.join(entries)} (see list_models)"
        )
    entry = entries[name]
    problem = check_folder(entry.path)
    if problem:
        raise InvalidArgument("model", name, problem)
    try:
        return describe(entry)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidArgument(
            "model", name, f"config files unreadable ({type(exc).__name__}: {exc})"
        ) from None


# ------------------------------------------------------------------ loading and the cache


def pick_device() -> tuple[str, Any]:
    """(device, dtype): CUDA or MPS in fp16, else CPU in fp32 (fp16 matmuls on CPU are several times slower)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.float16
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps", torch.float16
    return "cpu", torch.float32


_CACHE: dict[tuple[str, str, str], Any] = {}
_CACHE_LOCK = threading.Lock()
# One denoising loop at a time per process: a pipeline (its scheduler above all) is not re-entrant, and
# two loops on a small machine run slower together than one after the other.
GENERATE_LOCK = threading.Lock()
MAX_CACHED = 2


def load_pipeline(info: ModelInfo):
    """The StableDiffusionPipeline for `info`, loaded once per process (offline only) and cached."""
    device, dtype = pick_device()
    key = (info.path, device, str(dtype))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key], True
        os.environ["HF_HUB_OFFLINE"] = "1"
        import warnings

        from transformers.utils import logging as tlogging

        tlogging.disable_progress_bar()  # bars and notices (e.g. "requires torchvision") clutter stderr
        tlogging.set_verbosity_error()
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import logging as dlogging

        dlogging.disable_progress_bar()
        dlogging.set_verbosity_error()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipe = StableDiffusionPipeline.from_pretrained(
                    info.path,
                    local_files_only=True,
                    dtype=dtype,
                    safety_checker=None,
                    feature_extractor=None,
                    requires_safety_checker=False,
                )
        except Exception as exc:  # a broken user folder: report it, the server keeps serving
            raise ToolFailure(
                f"could not load model {info.name!r} from {info.path}: {type(exc).__name__}: {exc}"
            ) from None
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        while len(_CACHE) >= MAX_CACHED:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = pipe
        return pipe, False


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()

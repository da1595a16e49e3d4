"""Configuration in one place: folders and every cap a tool enforces.

The CLI (and env variables) fill a `LabConfig`; tools read it. Each limit is documented in the
README and overridable with `--limit NAME=VALUE`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    """Caps that keep a call bounded in memory and time. All overridable at start-up."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_pixels: int = Field(
        40_000_000, ge=1, description="Largest image (width x height) decoded from any input."
    )
    max_base64_bytes: int = Field(
        30 * 1024 * 1024, ge=1, description="Largest base64 / data: URI image argument, in characters."
    )
    max_file_bytes: int = Field(200 * 1024 * 1024, ge=1, description="Largest image file read from disk.")
    max_samples: int = Field(
        5000, ge=10, description="train_toy_mlp: most data points (n_samples or custom points)."
    )
    max_train_work: int = Field(
        40_000_000,
        ge=1,
        description="train_toy_mlp: cap on epochs x training samples x runs (variants); about 10 minutes of work.",
    )
    max_variants: int = Field(6, ge=1, description="train_toy_mlp: most variants compared in one call.")
    default_time_budget_s: float = Field(
        20.0, gt=0, description="Default wall-clock budget of a training call."
    )
    max_time_budget_s: float = Field(
        600.0,
        gt=0,
        description="Largest time budget a caller may ask for (past wait_s the call becomes a job).",
    )
    max_steps: int = Field(100, ge=1, description="generate_image: most denoising steps.")
    max_images: int = Field(4, ge=1, description="generate_image: most images per call.")
    max_generate_pixels: int = Field(1024 * 1024, ge=1, description="generate_image: largest width x height.")
    gpt_max_corpus_chars: int = Field(
        5_000_000, ge=1, description="train_tiny_gpt / tokenize_text: most characters of training text."
    )
    gpt_max_parameters: int = Field(
        30_000_000, ge=1, description="train_tiny_gpt / sample_text: largest model, in parameters."
    )
    gpt_max_vocab: int = Field(16_384, ge=2, description="train_tiny_gpt: largest vocabulary (tokens).")
    gpt_max_time_s: float = Field(
        3600.0, gt=0, description="train_tiny_gpt: longest training, seconds (long runs go through jobs)."
    )


class JobSettings(BaseModel):
    """How the job runner behaves: concurrency and how much finished history it keeps (CLI: --jobs-*)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backend: Literal["local", "ray"] = Field(
        "local",
        description="Where jobs run: 'local' (threads of this process) or 'ray' (tasks on a Ray cluster, "
        "records on the shared output folder; see docs/scale-out.md). CLI: --jobs local | --jobs ray.",
    )
    ray_address: str | None = Field(
        None,
        max_length=500,
        description="--jobs ray: the cluster's address (host:port of the head, or 'auto'); none starts a Ray "
        "instance on this machine. CLI: --ray-address (env RAY_ADDRESS).",
    )
    max_heavy: int = Field(
        1,
        ge=1,
        le=64,
        description="CPU-heavy jobs that run at once; more wait in a queue (fast tools never do).",
    )
    max_history: int = Field(
        100, ge=1, le=100_000, description="Finished jobs kept; the oldest finished ones are deleted first."
    )
    max_history_mb: float = Field(
        200.0,
        gt=0,
        description="Disk cap of the kept job records and results, MB; oldest finished deleted first.",
    )
    default_wait_s: float = Field(
        40.0, ge=0, description="How long a long tool call waits for its job before returning a job handle."
    )
    max_wait_s: float = Field(
        55.0, ge=0, description="Largest wait_s a caller may ask for (clients cut calls at about 60 s)."
    )


class LabConfig(BaseModel):
    """Where tools may read, where they write, which user models exist, and the limits."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    output_dir: Path
    allowed_dirs: list[Path]
    model_dirs: list[Path] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    jobs: JobSettings = Field(default_factory=JobSettings)

    @classmethod
    def create(
        cls,
        output_dir: Path | str,
        allowed_dirs: Sequence[Path | str] | None = None,
        model_dirs: Sequence[Path | str] | None = None,
        limits: Limits | None = None,
        jobs: JobSettings | None = None,
    ) -> LabConfig:
        """Resolve folders (symlinks included) and make the output dir. The output dir is always readable."""
        out = Path(output_dir).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        allowed = [Path(p).expanduser().resolve() for p in (allowed_dirs or [])]
        if out not in allowed:
            allowed.append(out)
        models = [Path(p).expanduser().resolve() for p in (model_dirs or [])]
        return cls(
            output_dir=out,
            allowed_dirs=allowed,
            model_dirs=models,
            limits=limits or Limits(),
            jobs=jobs or JobSettings(),
        )


def default_output_dir() -> Path:
    """The per-user data folder (e.g. ~/.local/share/ml-lab-mcp/outputs), or $ML_LAB_OUTPUT_DIR."""
    env = os.environ.get("ML_LAB_OUTPUT_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_path

    return user_data_path("ml-lab-mcp", appauthor=False) / "outputs"

"""Where tools may read and where they write.

Reads: only regular files under an allowed folder, after resolving symlinks and `..`.
Writes: only under the output folder, with names this module generates (never the caller's).
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path

from tools.common import InvalidArgument
from tools.config import LabConfig

OUTPUT_URI_PREFIX = "mllab://outputs/"
OUTPUT_CATEGORIES = ("tensors", "images", "runs", "generated", "plots")


def _allowed_text(cfg: LabConfig) -> str:
    return "allowed folders are " + ", ".join(str(p) for p in cfg.allowed_dirs)


def resolve_readable(value: str, cfg: LabConfig, argument: str, max_bytes: int | None = None) -> Path:
    """Resolve a caller's path to a regular file inside an allowed folder, or raise InvalidArgument."""
    if not value or "\x00" in value:
        raise InvalidArgument(argument, value, "must be a non-empty file path without NUL bytes")
    if "\\" in value and os.sep != "\\":
        raise InvalidArgument(
            argument,
            value,
            f"looks like a Windows path; give a POSIX path on this machine ({_allowed_text(cfg)})",
        )
    try:
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise InvalidArgument(argument, value, f"no such file ({_allowed_text(cfg)})") from None
    except (OSError, RuntimeError) as exc:  # symlink loops, permission errors, names too long
        raise InvalidArgument(argument, value, f"cannot be resolved ({type(exc).__name__})") from None
    if not any(resolved.is_relative_to(root) for root in cfg.allowed_dirs):
        raise InvalidArgument(
            argument, value, f"resolves to {resolved}, outside the allowed folders; {_allowed_text(cfg)}"
        )
    try:
        st = os.stat(resolved)
    except OSError as exc:
        raise InvalidArgument(argument, value, f"cannot be read ({type(exc).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgument(
            argument, value, "is not a regular file (directories, FIFOs and devices are refused)"
        )
    limit = cfg.limits.max_file_bytes if max_bytes is None else max_bytes
    if st.st_size > limit:
        raise InvalidArgument(argument, value, f"file is {st.st_size} bytes; the limit is {limit} bytes")
    return resolved


def new_output_path(cfg: LabConfig, category: str, suffix: str) -> Path:
    """A fresh, generated file path under the output folder: <output>/<category>/<time>-<id><suffix>."""
    if category not in OUTPUT_CATEGORIES:
        raise ValueError(f"unknown output category {category!r}")
    if not suffix.startswith(".") or "/" in suffix or len(suffix) > 16:
        raise ValueError(f"bad suffix {suffix!r}")
    folder = cfg.output_dir / category
    folder.mkdir(parents=True, exist_ok=True)
    name = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:10] + suffix
    return folder / name


def output_uri(cfg: LabConfig, path: Path) -> str:
    """The resource URI of a file this server wrote, e.g. mllab://outputs/images/2026...png."""
    rel = path.resolve().relative_to(cfg.output_dir)
    return OUTPUT_URI_PREFIX + rel.as_posix()


def resolve_output_uri(value: str, cfg: LabConfig, argument: str) -> Path:
    """Map mllab://outputs/<category>/<name> back to a file this server wrote."""
    if not value.startswith(OUTPUT_URI_PREFIX):
        raise InvalidArgument(argument, value, f"an output resource URI starts with {OUTPUT_URI_PREFIX}")
    rel = value[len(OUTPUT_URI_PREFIX) :]
    parts = rel.split("/")
    if len(parts) != 2 or parts[0] not in OUTPUT_CATEGORIES or parts[1] in ("", ".", "..") or "\\" in rel:
        raise InvalidArgument(
            argument,
            value,
            f"expected {OUTPUT_URI_PREFIX}<category>/<file> with category in {OUTPUT_CATEGORIES}",
        )
    path = cfg.output_dir / parts[0] / parts[1]
    return resolve_readable(str(path), cfg, argument)


# The other URI schemes this server answers (spelled here once).
RUNS_URI = "mllab://runs"  # saved train_toy_mlp runs; one run is RUNS_URI + "/{run_id}"
CONCEPT_URI = "concept://"  # one concept: CONCEPT_URI + id
CONCEPT_INDEX_URI = "concepts://index"  # its own scheme, so it can never be read as a concept id

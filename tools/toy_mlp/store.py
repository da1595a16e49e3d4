"""Saving a run (metrics JSON, picture, weights) under the output folder, and listing saved runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.config import LabConfig
from tools.paths import new_output_path, output_uri

CATEGORY = "runs"


@dataclass
class RunFiles:
    run_id: str
    picture: Path
    metrics: Path
    weights: Path
    cfg: LabConfig

    def fields(self) -> dict[str, str]:
        out = {}
        for key, path in (("picture", self.picture), ("metrics", self.metrics), ("weights", self.weights)):
            out[f"{key}_path"] = str(path)
            out[f"{key}_uri"] = output_uri(self.cfg, path)
        return out


def save_run(cfg: LabConfig, png: bytes, nets: list, args, runs: list) -> RunFiles:
    """Write the picture and the weights; the metrics JSON follows once the result exists (write_metrics)."""
    from safetensors.torch import save_file

    picture = new_output_path(cfg, CATEGORY, ".png")
    picture.write_bytes(png)
    stem = picture.with_suffix("")
    weights = stem.with_suffix(".safetensors")
    tensors = {}
    for k, net in enumerate(nets):
        for i, (W, b) in enumerate(zip(net.W, net.b, strict=True)):
            tensors[f"run{k}.fc{i}.weight"] = W.clone().contiguous()
            tensors[f"run{k}.fc{i}.bias"] = b.clone().contiguous()
    meta = {
        "tool": "train_toy_mlp",
        "runs": json.dumps(
            [
                {"name": rp.name, "settings": _jsonable(rp.args.model_dump(exclude={"points", "variants"}))}
                for rp in runs
            ]
        ),
    }
    save_file(tensors, str(weights), metadata=meta)
    return RunFiles(stem.name, picture, stem.with_suffix(".json"), weights, cfg)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def write_metrics(files: RunFiles, result, args) -> None:
    doc = {"arguments": args.model_dump(mode="json"), "result": result.model_dump(mode="json")}
    files.metrics.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def list_runs(cfg: LabConfig, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent saved runs, newest first: id, dataset, each run's test metric, and the resource URIs."""
    folder = cfg.output_dir / CATEGORY
    if not folder.is_dir():
        return []
    metrics = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    out = []
    for path in metrics:
        try:
            res = json.loads(path.read_text(encoding="utf-8"))["result"]
        except (OSError, ValueError, KeyError):
            continue
        out.append(
            {
                "run_id": res["run_id"],
                "dataset": res["dataset"],
                "task": res["task"],
                "best_run": res["best_run"],
                "runs": [
                    {
                        "name": r["name"],
                        "test_accuracy": r["test_accuracy"],
                        "test_r2": r["test_r2"],
                        "test_loss": r["test_loss"],
                    }
                    for r in res["runs"]
                ],
                "metrics_uri": res["metrics_uri"],
                "picture_uri": res["picture_uri"],
                "weights_uri": res["weights_uri"],
            }
        )
    return out


def read_run(cfg: LabConfig, run_id: str) -> str | None:
    """The metrics JSON of one saved run, or None if there is no such run."""
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        return None
    path = cfg.output_dir / CATEGORY / f"{run_id}.json"
    return path.read_text(encoding="utf-8") if path.is_file() else None

"""MCP registration of train_toy_mlp, plus the mllab://runs resources (saved runs: index and one run's metrics)."""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from mcp_server.adapter import WRITES_NEW_FILES, register_tool
from tools import toy_mlp
from tools.config import LabConfig
from tools.paths import RUNS_URI

DESCRIPTION = """\
Train a small neural network (MLP) on 2-D toy data, TensorFlow-Playground style, with real PyTorch, and
compare variants side by side. Returns final train/test loss and accuracy (or R^2), loss curves, per-layer
gradient norms at the start and end of training (vanishing gradients show as numbers), speed, and a picture of
the decision boundary (or regression surface) with the loss curves. Datasets: circle, xor, gauss, spiral,
moons (classification); plane, gauss_bump, sine (regression); or your own points (dataset='custom').
`variants` trains several settings on the same data and seed, e.g. [{"activation": "sigmoid"},
{"activation": "relu"}]. Defaults are the playground's spiral: 250 train points, [8, 8] tanh, batch 10,
300 epochs (about a second). The run is saved (metrics JSON, picture, weights) and listed at mllab://runs."""


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="train_toy_mlp",
        title="Train a toy neural network (playground)",
        description=DESCRIPTION,
        input_model=toy_mlp.TrainToyMlpInput,
        result_model=toy_mlp.TrainToyMlpResult,
        run=toy_mlp.run,
        annotations=WRITES_NEW_FILES,  # each call saves a run
        progress_interval_s=0.2,
        long_running=True,
    )

    @mcp.resource(
        RUNS_URI,
        name="toy_mlp_runs",
        title="Recent train_toy_mlp runs",
        description="The 20 most recent saved training runs, newest first, with their test metrics and file URIs.",
        mime_type="application/json",
    )
    def list_runs() -> str:
        from tools.toy_mlp.store import list_runs

        return json.dumps(list_runs(cfg), ensure_ascii=False, indent=1)

    @mcp.resource(
        RUNS_URI + "/{run_id}",
        name="toy_mlp_run",
        title="One train_toy_mlp run",
        description="The arguments and full result (metrics, histories, file URIs) of a saved run, by run_id.",
        mime_type="application/json",
    )
    def read_run(run_id: str) -> str:
        from tools.toy_mlp.store import read_run

        text = read_run(cfg, run_id)
        if text is None:
            raise ResourceError(f"no saved run {run_id!r}; list them at {RUNS_URI}")
        return text

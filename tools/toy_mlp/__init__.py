"""train_toy_mlp: a TensorFlow-Playground-style lab. Train a small MLP on 2-D toy data and compare variants.

Importing this package loads only the argument and result models; torch and matplotlib load on the first call.
"""

from __future__ import annotations

from tools.common import Reporter, ToolOutput
from tools.config import LabConfig
from tools.toy_mlp.schema import VARIANT_FIELDS, TrainToyMlpInput, TrainToyMlpResult

__all__ = ["VARIANT_FIELDS", "TrainToyMlpInput", "TrainToyMlpResult", "run"]


def run(args: TrainToyMlpInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    """Validate, generate the data, train every run, draw the picture, save the run. See `lab.train_toy_mlp`."""
    from tools.toy_mlp.lab import train_toy_mlp

    return train_toy_mlp(args, cfg, reporter)

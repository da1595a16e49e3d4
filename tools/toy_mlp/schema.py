"""Arguments and results of train_toy_mlp (pydantic only: importing this module loads no torch)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from tools.common import ToolInput

Dataset = Literal["circle", "xor", "gauss", "spiral", "moons", "plane", "gauss_bump", "sine", "custom"]
Feature = Literal["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin x1", "sin x2"]
Activation = Literal["relu", "tanh", "sigmoid", "linear", "gelu", "leaky_relu", "silu"]
Task = Literal["classification", "regression"]
LossName = Literal["bce", "mse"]
StopReason = Literal["completed", "time_budget", "diverged"]
Width = Annotated[int, Field(ge=1, le=64)]
Point = Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=3, max_length=3)]

# What a variant may override: the network and its training, never the data (variants share data and seed).
VARIANT_FIELDS = (
    "features",
    "hidden_layers",
    "activation",
    "residual",
    "init",
    "init_std",
    "dropout",
    "optimizer",
    "learning_rate",
    "batch_size",
    "epochs",
    "regularization",
    "regularization_rate",
    "loss",
)


class TrainToyMlpInput(ToolInput):
    """Train a small neural network on 2-D toy data, TensorFlow-Playground style, and compare variants."""

    dataset: Dataset = Field(
        "spiral",
        description="Classification: circle, xor, gauss, spiral, moons. Regression: plane, gauss_bump, sine. "
        "'custom': your own `points`.",
    )
    points: list[Point] | None = Field(
        None,
        max_length=100_000,
        description="Only with dataset='custom': [[x1, x2, label_or_target], ...]. Labels 0/1 for classification, "
        "any number for regression. At most the server's max_samples points (5000 by default).",
    )
    task: Literal["classification", "regression"] | None = Field(
        None,
        description="Only with dataset='custom' (default classification); built-in datasets set it themselves.",
    )
    n_samples: int = Field(
        500,
        ge=10,
        le=100_000,
        description="Points generated (train + test); at most max_samples (5000 by default).",
    )
    noise: float = Field(
        0.0, ge=0.0, le=0.5, allow_inf_nan=False, description="Label/position noise, as in the playground."
    )
    train_ratio: float = Field(
        0.5,
        ge=0.1,
        le=0.9,
        allow_inf_nan=False,
        description="Share of the points used for training; the rest test.",
    )
    seed: int = Field(
        0, ge=0, le=2**31 - 1, description="Seeds data, split, initial weights, shuffling and dropout."
    )
    features: list[Feature] = Field(
        ["x1", "x2"],
        min_length=1,
        max_length=7,
        description="Network inputs computed from the point (x1, x2).",
    )
    hidden_layers: list[Width] = Field(
        [8, 8],
        max_length=8,
        description="Width of each hidden layer (0 to 8 layers, 1 to 64 units); [] = linear model.",
    )
    activation: Activation = Field("tanh", description="Hidden-layer activation.")
    residual: bool = Field(
        False,
        description="Skip connections: each hidden layer after the first adds its input. Needs equal widths.",
    )
    init: Literal["default", "zeros", "normal", "uniform"] = Field(
        "default",
        description="Weights: default = PyTorch nn.Linear's U(+-1/sqrt(fan_in)); zeros; normal(0, init_std); "
        "uniform with standard deviation init_std. Biases start at 0 except with default.",
    )
    init_std: float = Field(
        0.5,
        gt=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="Standard deviation for init='normal' or 'uniform'.",
    )
    dropout: float = Field(
        0.0, ge=0.0, le=0.9, allow_inf_nan=False, description="Dropout on hidden layers while training."
    )
    optimizer: Literal["sgd", "momentum", "adam"] = Field(
        "adam", description="sgd; momentum (SGD with momentum 0.9); adam (betas 0.9, 0.999), as torch.optim."
    )
    learning_rate: float = Field(0.01, gt=0.0, le=10.0, allow_inf_nan=False, description="Step size.")
    batch_size: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Mini-batch size; at least the number of training points = full-batch gradient descent.",
    )
    epochs: int = Field(
        300, ge=1, le=100_000, description="Passes over the training set (epochs x train points is capped)."
    )
    regularization: Literal["none", "l1", "l2"] = Field(
        "none", description="Penalty on the weights (not biases)."
    )
    regularization_rate: float = Field(
        0.001,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="Penalty strength when regularization is l1 or l2.",
    )
    loss: Literal["auto", "bce", "mse"] = Field(
        "auto", description="auto: bce (binary cross-entropy) for classification, mse for regression."
    )
    variants: list[dict[str, Any]] | None = Field(
        None,
        max_length=32,
        description="Compare runs on the same data and seed: each dict overrides some of "
        + ", ".join(VARIANT_FIELDS)
        + " (plus an optional 'name'). One run per variant; without variants, one run of the arguments above. "
        "At most max_variants (6 by default).",
    )
    time_budget_s: float | None = Field(
        None,
        gt=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="Wall-clock budget for training all runs (default 20 s, at most 600 s: a call that outlives "
        "its wait_s returns a job to follow with job_status); training stops there "
        "and the result says so.",
    )

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"features must not repeat (got {v})")
        return v


class History(BaseModel):
    epochs: list[int] = Field(
        description="Epoch of each point (0 = before training); at most about 200 points."
    )
    train_loss: list[float | None] = Field(
        description="Loss on the training set at each epoch (null if not finite)."
    )
    test_loss: list[float | None] = Field(
        description="Loss on the test set at each epoch (null if not finite)."
    )
    step_epochs: list[float] = Field(
        [],
        description="Only when training diverged: where each step of the diverging epoch ends, as a fractional "
        "epoch (e.g. 0.04 = the first of 25 steps of epoch 1).",
    )
    step_train_loss: list[float | None] = Field(
        [],
        description="Only when training diverged: the training loss after each of those steps, up to the first "
        "non-finite one (null).",
    )


DiagnosisCode = Literal[
    "diverged",
    "dead_relu",
    "learning_rate_too_high",
    "vanishing_gradient",
    "not_linearly_separable",
    "underfitting",
    "overfitting",
    "healthy",
]


class Diagnosis(BaseModel):
    code: DiagnosisCode = Field(
        description="What the numbers say, most serious first: diverged, dead_relu, learning_rate_too_high, "
        "vanishing_gradient, not_linearly_separable, underfitting, overfitting; healthy when none applies."
    )
    warning: bool = Field(description="False only for 'healthy'.")
    message: str = Field(description="One or two sentences: what happened, from which numbers, and why.")
    next_call: dict[str, Any] = Field(
        description="Arguments to change in the same call to see the remedy (empty when nothing to change)."
    )
    concept: str = Field(description="explain_concept id that teaches the idea, e.g. 'learning_rate'.")
    evidence: dict[str, float | int | str | None] = Field(
        description="The numbers the diagnosis was drawn from."
    )


class LayerGradient(BaseModel):
    layer: str = Field(description="Layer, e.g. 'hidden 1 (2->8)' (inputs -> units).")
    start: float | None = Field(
        description="Norm of d loss / d weights before training (whole training set)."
    )
    end: float | None = Field(description="The same after training (null if training diverged).")


class BoundarySnapshot(BaseModel):
    epoch: int = Field(ge=0, description="Epoch of this snapshot (0 = before training).")
    values_b64: str = Field(
        description="The network's output on the view grid (see TrainToyMlpResult.view), base64 of grid x grid "
        "uint8, rows from y_min up, value = v_min + (v_max - v_min) * byte / 255."
    )


class RunResult(BaseModel):
    name: str = Field(description="The variant's name (its overrides unless it gave 'name').")
    overrides: dict[str, Any] = Field(description="The arguments this run changed from the base call.")
    settings: dict[str, Any] = Field(description="The effective network and training settings of this run.")
    loss_function: Literal["bce", "mse"] = Field(
        description="The loss minimised (weights penalty not included)."
    )
    train_loss: float | None = Field(description="Final loss on the training set.")
    test_loss: float | None = Field(description="Final loss on the test set.")
    train_accuracy: float | None = Field(
        description="Classification: share of training points classified right."
    )
    test_accuracy: float | None = Field(description="Classification: share of test points classified right.")
    train_r2: float | None = Field(description="Regression: R^2 on the training set (1 = perfect).")
    test_r2: float | None = Field(description="Regression: R^2 on the test set.")
    history: History = Field(description="Loss curves, downsampled.")
    gradient_norms: list[LayerGradient] = Field(
        description="Per-layer weight-gradient norms: vanishing shows here."
    )
    parameter_count: int = Field(description="Trainable weights and biases.")
    epochs_requested: int = Field(description="Epochs asked for.")
    epochs_run: int = Field(description="Epochs completed.")
    wall_time_s: float = Field(description="Training time of this run, seconds.")
    epochs_per_s: float = Field(description="Training speed.")
    stopped_early: bool = Field(description="True if training ended before epochs_requested.")
    stop_reason: Literal["completed", "time_budget", "diverged"] = Field(description="Why training ended.")
    stop_detail: str = Field(description="A sentence on why it stopped, with what to try.")
    weights_prefix: str = Field(
        description="Key prefix of this run's tensors in the weights file, e.g. 'run0.'."
    )
    boundary: list[BoundarySnapshot] = Field(
        description="The decision boundary / surface at a few epochs (for the interactive view), oldest first."
    )
    diagnosis: Diagnosis = Field(description="The most serious finding about this run (or 'healthy').")
    other_findings: list[Diagnosis] = Field(
        [], description="Further findings about this run, most serious first."
    )


class ViewGrid(BaseModel):
    extent: list[float] = Field(description="[x_min, x_max, y_min, y_max] of the snapshot grid.")
    grid: int = Field(ge=2, description="Snapshot grid points per side.")
    v_min: float = Field(description="Output value of byte 0 (0 = class 0 for classification).")
    v_max: float = Field(description="Output value of byte 255 (1 = class 1 for classification).")
    points: list[list[float]] = Field(
        description="A sample of the data, [x1, x2, label_or_target, 1 if test else 0], at most 200 points."
    )


class TrainToyMlpResult(BaseModel):
    run_id: str = Field(description="Name of this call's saved files (metrics JSON, picture, weights).")
    dataset: str = Field(description="The dataset trained on.")
    task: Literal["classification", "regression"] = Field(description="What the network predicts.")
    n_train: int = Field(description="Training points.")
    n_test: int = Field(description="Test points.")
    noise: float = Field(description="Noise of the generated data.")
    seed: int = Field(description="The seed used.")
    runs: list[RunResult] = Field(description="One entry per run (variant), in the order given.")
    best_run: str = Field(description="The run with the best test accuracy (classification) or test loss.")
    time_budget_s: float = Field(description="The training budget that applied.")
    picture_path: str = Field(
        description="Saved picture: decision boundary / surface and loss curves per run."
    )
    picture_uri: str = Field(description="The picture as an mllab://outputs/ resource.")
    metrics_path: str = Field(description="Saved JSON of this result and the arguments.")
    metrics_uri: str = Field(description="The metrics as a resource.")
    weights_path: str = Field(
        description="Saved safetensors: 'run{k}.fc{i}.weight' / '.bias' in nn.Linear layout."
    )
    weights_uri: str = Field(description="The weights as a resource.")
    view: ViewGrid = Field(description="Grid and data sample that the runs' boundary snapshots refer to.")

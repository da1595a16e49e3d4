"""What a teacher would say about a training run, read from its numbers: the loss curve, the final accuracy,
the gradient norms, the predictions and the hidden units, not from the arguments alone.

Every finding is a `Diagnosis`: a code, a sentence with the numbers, the arguments to change to see the remedy
(`next_call`) and the explain_concept id that teaches the idea. The thresholds are set from runs of the
playground's datasets (tests/tools/test_toy_mlp_diagnose.py builds each situation); they are a teacher's
rules of thumb, said with their numbers so that the learner can check them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tools.toy_mlp.model import MLP
from tools.toy_mlp.schema import Diagnosis, TrainToyMlpInput
from tools.toy_mlp.train import FitResult, Split

# learning rate too high: the loss ends above where it started, or in the second half of training it still
# swings back up: well above its start, or to half its start and 1.5 times its low point of that half. (A healthy
# mini-batch run has spikes too, but well below half the untrained loss: xor with momentum 0.03 peaks at 0.055
# against a start of 0.71; circle with SGD lr=2 swings between 0.15 and 0.58.)
# A model that learns nothing (a line on circle) wobbles around its start by 10-20 %: that is no verdict on the
# learning rate, hence the margins.
ABOVE_START, SPIKE_OVER_START = 1.1, 1.5
SWING_OF_START, SWING_RATIO = 0.5, 1.5
# dead ReLUs / one class: the network's output is (nearly) the same class for every training point
ONE_CLASS = 0.98
# vanishing gradients: before training, the first layer's weight gradient is this much below the output's
VANISHING_RATIO = 1e-2
# fitting: classification accuracy, regression R^2
GOOD_TRAIN_ACCURACY, GOOD_TRAIN_R2 = 0.9, 0.8
LINEAR_SEPARABLE_ACCURACY = 0.9
OVERFIT_GAP_ACCURACY, OVERFIT_GAP_R2 = 0.15, 0.2
STILL_LEARNING = 0.01  # the training loss fell by more than 1 % over the last fifth of the curve
BARELY_MOVED = 0.3  # ... yet by less than 30 % of its start over the whole run: the steps are too small

ORDER = (
    "diverged",
    "dead_relu",
    "learning_rate_too_high",
    "vanishing_gradient",
    "not_linearly_separable",
    "underfitting",
    "overfitting",
)


@dataclass
class Numbers:
    """What the rules read, computed once per run."""

    task: str
    start_loss: float
    end_loss: float  # nan if diverged
    late_low: float  # lowest and highest training loss of the second half of the recorded curve
    late_high: float
    recent_drop: float  # relative fall of the training loss over the last fifth of the curve
    train_metric: float | None  # accuracy or R^2
    test_metric: float | None
    class1_share: float | None  # share of training points predicted as class 1
    dead_units: list[int]  # per hidden layer: ReLU units that output 0 for every training point
    widths: list[int]
    grad_ratio: float | None  # first-layer / output-layer weight-gradient norm before training
    grad_first_end: float | None
    grad_last_end: float | None


def _nice(x: float) -> float:
    """One significant digit: 0.5, 0.03, 1e-4."""
    if x <= 0:
        return x
    return float(f"{x:.0e}")


def measure(args: TrainToyMlpInput, net: MLP, data: Split, fr: FitResult) -> Numbers:
    losses = [v for v in fr.train_loss if math.isfinite(v)]
    start = fr.train_loss[0]
    end = fr.train.loss if fr.train is not None else math.nan
    late = losses[len(losses) // 2 :] or [start]
    tail = losses[-max(2, len(losses) // 5) :]
    recent_drop = (tail[0] - tail[-1]) / tail[0] if len(tail) >= 2 and tail[0] > 0 else 0.0
    out, cache = net.forward(data.x_train)
    share = None
    if data.task == "classification" and bool(torch.isfinite(out).all()):
        share = float((out > 0).float().mean())
    dead = []
    if args.activation == "relu":
        dead = [int((h <= 0).all(0).sum()) for h in cache.post]
    g0, gl = fr.grad_start[0], fr.grad_start[-1]
    ratio = g0 / gl if len(fr.grad_start) >= 3 and gl > 0 and math.isfinite(g0) else None
    metric = (lambda e: e.accuracy) if data.task == "classification" else (lambda e: e.r2)
    return Numbers(
        task=data.task,
        start_loss=start,
        end_loss=end,
        late_low=min(late),
        late_high=max(late),
        recent_drop=recent_drop,
        train_metric=metric(fr.train) if fr.train else None,
        test_metric=metric(fr.test) if fr.test else None,
        class1_share=share,
        dead_units=dead,
        widths=list(args.hidden_layers),
        grad_ratio=ratio,
        grad_first_end=fr.grad_end[0] if fr.grad_end else None,
        grad_last_end=fr.grad_end[-1] if fr.grad_end else None,
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _metric_text(n: Numbers, which: str) -> str:
    value = n.train_metric if which == "train" else n.test_metric
    if n.task == "classification":
        return f"{which} accuracy {_pct(value)}"
    return f"{which} R^2 " + ("n/a" if value is None else f"{value:.3f}")


def _good_fit(n: Numbers) -> bool:
    if n.train_metric is None:
        return False
    return n.train_metric >= (GOOD_TRAIN_ACCURACY if n.task == "classification" else GOOD_TRAIN_R2)


def findings(args: TrainToyMlpInput, n: Numbers, fr: FitResult) -> list[Diagnosis]:
    """Every rule that fires, most serious first; ['healthy'] when none does."""
    lr = args.learning_rate
    out: list[Diagnosis] = []
    remedy: dict[str, Any]

    def add(code: str, message: str, next_call: dict[str, Any], concept: str, **evidence: Any) -> None:
        out.append(
            Diagnosis(
                code=code,  # type: ignore[arg-type]
                warning=True,
                message=message,
                next_call=next_call,
                concept=concept,
                evidence=evidence,
            )
        )

    linear = not args.hidden_layers or args.activation == "linear"
    # 1. diverged: a loss or a weight became NaN / infinite
    if fr.stop_reason == "diverged":
        steps = [v for v in fr.step_train_loss if math.isfinite(v)]
        peak = max(steps) if steps else n.start_loss
        add(
            "diverged",
            f"Training diverged: the loss went from {n.start_loss:.3g} to {peak:.3g} and then to NaN/infinity in "
            f"epoch {fr.epochs_run} (step {len(fr.step_train_loss)} of that epoch). Each update overshot the "
            f"minimum by more than the last, so the weights grew without bound: learning_rate={lr:g} is far too "
            "large for this network.",
            {"learning_rate": _nice(lr / 10)},
            "learning_rate",
            start_loss=n.start_loss,
            last_finite_loss=peak,
            epoch=fr.epochs_run,
            step=len(fr.step_train_loss),
        )
    # 2. dead ReLUs: a whole hidden layer outputs 0 everywhere, or the net says one class with zero gradients
    if n.dead_units:
        dead_layer = any(d == w for d, w in zip(n.dead_units, n.widths, strict=True))
        one_class = n.class1_share is not None and max(n.class1_share, 1 - n.class1_share) >= ONE_CLASS
        zero_grad = n.grad_first_end == 0.0
        if dead_layer or (one_class and zero_grad):
            total = sum(n.dead_units)
            predicted = (
                ""
                if n.class1_share is None
                else f"; the network predicts class {int(n.class1_share >= 0.5)} for "
                f"{max(n.class1_share, 1 - n.class1_share):.0%} of the training points"
            )
            add(
                "dead_relu",
                f"Dead ReLUs: {total} of {sum(n.widths)} hidden units output 0 for every training point (per layer "
                f"{n.dead_units} of {n.widths}){predicted}. A dead unit's gradient is exactly 0 "
                f"(first-layer gradient now {n.grad_first_end:.3g}), so it can never come back: "
                + (
                    f"a step of learning_rate={lr:g} pushed their inputs below 0 for good."
                    if lr > 0.1
                    else "their inputs went below 0 for good."
                ),
                {"learning_rate": _nice(lr / 10)} if lr > 0.1 else {"activation": "leaky_relu"},
                "relu",
                dead_units=total,
                hidden_units=sum(n.widths),
                class1_share=n.class1_share,
                first_layer_gradient_end=n.grad_first_end,
            )
    # 3. learning rate too high: the loss ends above its start, or keeps jumping back up
    if fr.stop_reason != "diverged" and math.isfinite(n.end_loss):
        above = n.end_loss > ABOVE_START * n.start_loss
        jumpy = n.late_high > SPIKE_OVER_START * n.start_loss or (
            n.late_high >= SWING_OF_START * n.start_loss and n.late_high >= SWING_RATIO * n.late_low
        )
        if above or jumpy:
            why = (
                f"the training loss ended at {n.end_loss:.3g}, above its start {n.start_loss:.3g}"
                if above
                else "the training loss still jumps around"
            ) + (f" (in the second half of training it swung between {n.late_low:.3g} and {n.late_high:.3g})")
            add(
                "learning_rate_too_high",
                f"Learning rate too high: {why}. The steps overshoot the minimum and bounce around it instead "
                f"of settling; try a learning rate about ten times smaller than {lr:g}.",
                {"learning_rate": _nice(lr / 10)},
                "learning_rate",
                start_loss=n.start_loss,
                end_loss=n.end_loss,
                late_low=n.late_low,
                late_high=n.late_high,
            )
    # 4. vanishing gradients: the first layer hears orders of magnitude less than the last
    if n.grad_ratio is not None and n.grad_ratio < VANISHING_RATIO:
        width = max(args.hidden_layers)
        kaiming = {"init": "normal", "init_std": round(math.sqrt(2 / width), 3)}
        if args.activation in ("sigmoid", "tanh"):
            remedy = {"activation": "relu", **kaiming}
            why = (
                f"each {args.activation} layer multiplies the gradient by its derivative (at most "
                f"{'1/4' if args.activation == 'sigmoid' else '1'}) and by weights of PyTorch's default scale"
            )
        else:
            remedy = kaiming
            why = "with PyTorch's default initialisation each layer shrinks the gradient (weights too small)"
        add(
            "vanishing_gradient",
            f"Vanishing gradients: before training, the first layer's weight gradient was {n.grad_ratio:.1e} "
            f"times the output layer's, over {len(args.hidden_layers)} hidden layers: {why}, so the first "
            f"layers barely learn. Kaiming initialisation (std sqrt(2/fan_in) = {kaiming['init_std']}) with "
            "ReLU keeps the size of the gradient from layer to layer; residual=true adds a path around each layer.",
            remedy,
            "vanishing_gradient",
            first_to_last_gradient_ratio=n.grad_ratio,
            hidden_layers=len(args.hidden_layers),
        )
    if any(d.code in ("diverged", "dead_relu", "learning_rate_too_high") for d in out):
        return _ordered(out)  # the fit is the symptom; the cause above is the lesson
    # 5. a linear model on classes that a line cannot separate
    if (
        n.task == "classification"
        and linear
        and n.train_metric is not None
        and n.train_metric < LINEAR_SEPARABLE_ACCURACY
    ):
        add(
            "not_linearly_separable",
            "A linear model cannot separate these classes: with "
            + ("no hidden layer" if not args.hidden_layers else "activation='linear' (still one linear map)")
            + f" the boundary is a straight line, and the best line gets only {_pct(n.train_metric)} of the "
            "training points right. Add a hidden layer with a non-linear activation, or a feature that makes "
            "the classes separable (x1*x2 for xor, x1^2 and x2^2 for circle).",
            {"hidden_layers": [8], "activation": "tanh"}
            if not args.hidden_layers
            else {"activation": "tanh"},
            "activation_function",
            train_accuracy=n.train_metric,
        )
    elif not _good_fit(n) and fr.stop_reason != "diverged":
        # 6. under-fitting: not even the training set is learned
        still = n.recent_drop > STILL_LEARNING
        moved = (n.start_loss - n.end_loss) / n.start_loss if n.start_loss > 0 else 0.0
        if still and moved < BARELY_MOVED:
            remedy = {"learning_rate": _nice(lr * 10)}
            why = (
                f"the loss has barely moved ({n.start_loss:.3g} to {n.end_loss:.3g}) and is still falling "
                f"slowly: the steps are too small, try learning_rate={_nice(lr * 10):g}"
            )
        elif still or fr.stop_reason == "time_budget":
            remedy = {"epochs": args.epochs * 3}
            why = f"the loss was still falling ({n.recent_drop:.0%} over the last fifth of training): train longer"
        elif linear:
            remedy = {"hidden_layers": [8, 8], "activation": "tanh"}
            why = "a linear model cannot follow this curve: add hidden layers"
        else:
            remedy = {"hidden_layers": [min(64, 2 * w) for w in args.hidden_layers]}
            why = "the loss has flattened: give the network more units (or try another learning rate)"
        noisy = (
            f" With noise={args.noise:g} some labels are flipped, so 100% is out of reach."
            if args.noise
            else ""
        )
        add(
            "underfitting",
            f"Under-fitting: {_metric_text(n, 'train')}, {_metric_text(n, 'test')}; the network has not learned "
            f"even the training points; {why}.{noisy}",
            remedy,
            "underfitting",
            train_metric=n.train_metric,
            test_metric=n.test_metric,
            recent_loss_drop=round(n.recent_drop, 4),
            start_loss=n.start_loss,
            end_loss=n.end_loss,
        )
    # 7. over-fitting: the training set is learned, and far better than new points
    if _good_fit(n) and n.train_metric is not None and n.test_metric is not None:
        gap = n.train_metric - n.test_metric
        limit = OVERFIT_GAP_ACCURACY if n.task == "classification" else OVERFIT_GAP_R2
        if gap >= limit:
            add(
                "overfitting",
                f"Over-fitting: {_metric_text(n, 'train')} but {_metric_text(n, 'test')}; the network learned "
                "the training points (and their noise) rather than the pattern. More data, a smaller network, "
                "L2 regularization or dropout narrow the gap.",
                {"regularization": "l2", "regularization_rate": 0.01},
                "overfitting",
                train_metric=n.train_metric,
                test_metric=n.test_metric,
                gap=round(gap, 4),
            )
    return _ordered(out)


def _ordered(out: list[Diagnosis]) -> list[Diagnosis]:
    return sorted(out, key=lambda d: ORDER.index(d.code))


def healthy(n: Numbers) -> Diagnosis:
    return Diagnosis(
        code="healthy",
        warning=False,
        message=f"Looks healthy: the training loss fell from {n.start_loss:.3g} to {n.end_loss:.3g}; "
        f"{_metric_text(n, 'train')}, {_metric_text(n, 'test')}.",
        next_call={},
        concept="convergence",
        evidence={"start_loss": n.start_loss, "end_loss": n.end_loss, "train_metric": n.train_metric,
                  "test_metric": n.test_metric},
    )  # fmt: skip


def diagnose(args: TrainToyMlpInput, net: MLP, data: Split, fr: FitResult) -> list[Diagnosis]:
    """The findings about one run, most serious first; exactly one 'healthy' entry when nothing is wrong."""
    n = measure(args, net, data, fr)
    return findings(args, n, fr) or [healthy(n)]

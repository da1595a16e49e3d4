"""The training loop: shuffled mini-batches, a fused optimizer step, a time budget, progress and cancellation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import torch

from tools.common import Reporter, report_partial
from tools.toy_mlp.model import MLP, loss_grad, loss_value
from tools.toy_mlp.schema import StopReason

MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
SQRT_BLOCK = 2048
MAX_HISTORY = 200  # points kept per loss curve (plus epoch 0)
POLL_S = 0.05  # cancellation is checked at least this often while training
PROGRESS_S = 0.25  # at most four progress notifications a second


class Stream(IntEnum):
    """The random streams of a run: each purpose draws from its own generator, so changing one (say, dropout)
    leaves the others (the data, the initial weights) exactly as they were."""

    DATA = 0  # the points of a generated dataset
    SPLIT = 1  # which points train and which test
    BATCHES = 2  # the order of the training points in each epoch
    DROPOUT = 3  # the dropout masks
    INIT = 4  # the initial weights


def generator(seed: int, stream: Stream) -> torch.Generator:
    """The reproducible generator of one stream of a run with this seed."""

    return torch.Generator().manual_seed(seed * 1000 + stream)


class Optimizer:
    """sgd | momentum | adam over the flat parameter tensor, with torch.optim's update rules.

    Regularization adds rate * sign(w) (l1) or rate * w (l2) to the gradient of the weights (not biases).
    """

    def __init__(self, net: MLP, kind: str, lr: float, regularization: str = "none", rate: float = 0.0):
        self.p, self.g, self.mask = net.params, net.grads, net.decay_mask
        self.kind, self.lr, self.regularization, self.rate = kind, lr, regularization, rate
        self.m = self.p.new_zeros(self.p.shape)  # momentum buffer / Adam's first moment
        self.v = self.p.new_zeros(self.p.shape)  # Adam's second moment
        self.denom = self.p.new_zeros(self.p.shape)
        # sqrt in blocks of SQRT_BLOCK: ATen's sqrt threads above 2048 elements, and on a busy machine that cost
        # 0.35 ms a step for a 2241-parameter net (median 3 us)
        self.sqrt_blocks = list(zip(self.v.split(SQRT_BLOCK), self.denom.split(SQRT_BLOCK), strict=True))
        self.t = 0

    def step(self) -> None:
        p, g = self.p, self.g
        if self.regularization == "l2":
            g.addcmul_(p, self.mask, value=self.rate)
        elif self.regularization == "l1":
            g.addcmul_(p.sign(), self.mask, value=self.rate)
        if self.kind == "sgd":
            p.add_(g, alpha=-self.lr)
        elif self.kind == "momentum":
            self.m.mul_(MOMENTUM).add_(g)
            p.add_(self.m, alpha=-self.lr)
        else:
            self.t += 1
            b1, b2 = ADAM_BETAS
            self.m.lerp_(g, 1 - b1)
            self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
            step_size = self.lr / (1 - b1**self.t)
            for v, d in self.sqrt_blocks:
                torch.sqrt(v, out=d)
            denom = self.denom.div_(math.sqrt(1 - b2**self.t)).add_(ADAM_EPS)
            p.addcdiv_(self.m, denom, value=-step_size)


@dataclass
class Split:
    """Feature matrices (N, F) and targets (N,) of the training and test sets."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str


@dataclass
class Evaluation:
    loss: float
    accuracy: float | None = None
    r2: float | None = None


@dataclass
class FitResult:
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    epochs_run: int = 0
    wall_time_s: float = 0.0
    stop_reason: StopReason = "completed"
    stop_detail: str = ""
    grad_start: list[float] = field(default_factory=list)
    grad_end: list[float] = field(default_factory=list)
    # only when training diverged: the training loss after each step of the epoch that diverged, at fractional
    # epochs, up to and including the first non-finite value (the epoch-level history holds little else then)
    step_epochs: list[float] = field(default_factory=list)
    step_train_loss: list[float] = field(default_factory=list)
    train: Evaluation | None = None
    test: Evaluation | None = None


def evaluate(net: MLP, x: torch.Tensor, y: torch.Tensor, task: str, loss: str) -> Evaluation:
    out = net.predict(x)
    value = float(loss_value(out, y, task, loss))
    if task == "classification":
        return Evaluation(value, accuracy=float(((out > 0) == (y > 0.5)).float().mean()))
    ss_res = float(((out - y) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return Evaluation(value, r2=1.0 - ss_res / ss_tot if ss_tot > 0 else None)


def gradient_norms(net: MLP, x: torch.Tensor, y: torch.Tensor, task: str, loss: str) -> list[float]:
    """Frobenius norm of d loss / d W for each layer, on the whole training set, dropout off."""
    out, cache = net.forward(x)
    net.backward(cache, loss_grad(out, y, task, loss))
    return [float(gW.norm()) for gW in net.gW]


class Pacer:
    """Checks cancellation every POLL_S seconds; sends progress and the partial result (the loss curves so far,
    which a job keeps) at most every PROGRESS_S seconds."""

    def __init__(self, reporter: Reporter, total_epochs: int):
        self.reporter = reporter
        self.total = total_epochs
        self.done_before = 0  # epochs of earlier runs in this call
        self.next_poll = 0.0
        self.next_progress = 0.0
        self.finished_runs: list[dict] = []  # name and final losses of the runs already trained

    def poll(self, now: float, epoch: int, message: Callable[[], str], partial: Callable[[], dict]) -> None:
        self.reporter.check_cancelled()
        self.next_poll = now + POLL_S
        if now >= self.next_progress:
            self.next_progress = now + PROGRESS_S
            self.reporter.progress(self.done_before + epoch, self.total, message())
            report_partial(self.reporter, {"finished_runs": self.finished_runs, "current_run": partial()})


def _history_epochs(epochs: int) -> set[int]:
    stride = max(1, math.ceil(epochs / MAX_HISTORY))
    return {e for e in range(0, epochs + 1, stride)} | {epochs}


class _Snapshot:
    """The weights and optimizer state at the start of an epoch, so that a diverging epoch can be replayed
    step by step. Copies into buffers made once: a few microseconds per epoch, nothing per step."""

    def __init__(self, opt: Optimizer):
        self.opt = opt
        self.p, self.m, self.v = opt.p.clone(), opt.m.clone(), opt.v.clone()
        self.t = 0
        self.dropout_state: torch.Tensor | None = None

    def take(self, drop: torch.Generator | None) -> None:
        self.p.copy_(self.opt.p)
        self.m.copy_(self.opt.m)
        self.v.copy_(self.opt.v)
        self.t = self.opt.t
        if drop is not None:
            self.dropout_state = drop.get_state()

    def restore(self, drop: torch.Generator | None) -> None:
        self.opt.p.copy_(self.p)
        self.opt.m.copy_(self.m)
        self.opt.v.copy_(self.v)
        self.opt.t = self.t
        if drop is not None and self.dropout_state is not None:
            drop.set_state(self.dropout_state)


def _replay_epoch(
    net: MLP,
    opt: Optimizer,
    data: Split,
    loss: str,
    perm: torch.Tensor,
    batch_size: int,
    drop: torch.Generator | None,
) -> tuple[list[float], list[float]]:
    """Redo one epoch (same order, same dropout) recording the training loss after every step, until it is
    not finite. Returns (fraction of the epoch done, loss) per step."""

    task, x, y = data.task, data.x_train, data.y_train
    n = x.shape[0]
    xs, ys = x[perm], y[perm]
    steps = math.ceil(n / batch_size)
    at, losses = [], []
    for i, start in enumerate(range(0, n, batch_size)):
        out, cache = net.forward(xs[start : start + batch_size], drop)
        net.backward(cache, loss_grad(out, ys[start : start + batch_size], task, loss))
        opt.step()
        value = float(loss_value(net.predict(x), y, task, loss))
        at.append((i + 1) / steps)
        losses.append(value)
        if not (math.isfinite(value) and bool(torch.isfinite(net.params).all())):
            break
    return at, losses


def fit(
    net: MLP,
    opt: Optimizer,
    data: Split,
    *,
    loss: str,
    epochs: int,
    batch_size: int,
    seed: int,
    deadline: float,
    pacer: Pacer,
    label: str = "",
    on_epoch: Callable[[int], None] | None = None,
) -> FitResult:
    """Train `net` in place. Stops at `epochs`, at `deadline` (time.perf_counter()), or on a non-finite loss.

    `on_epoch(e)` is called before training (e = 0) and after each completed epoch with finite weights.
    """

    task, x, y = data.task, data.x_train, data.y_train
    shuffle_gen, dropout_gen = generator(seed, Stream.BATCHES), generator(seed, Stream.DROPOUT)
    res = FitResult()
    t0 = time.perf_counter()
    res.grad_start = gradient_norms(net, x, y, task, loss)
    keep = _history_epochs(epochs)

    def record(epoch: int) -> bool:
        train = float(loss_value(net.predict(x), y, task, loss))
        test = float(loss_value(net.predict(data.x_test), data.y_test, task, loss))
        res.epochs.append(epoch)
        res.train_loss.append(train)
        res.test_loss.append(test)
        return math.isfinite(train) and math.isfinite(test)

    def message() -> str:
        last = res.train_loss[-1] if res.train_loss else float("nan")
        return f"{label}epoch {res.epochs_run}/{epochs}, train loss {last:.4f}"

    def partial() -> dict:
        def finite(v: list[float]) -> list[float | None]:
            return [x if math.isfinite(x) else None for x in v]

        return {
            "name": label.rstrip(": ") or "run 1/1",
            "epochs_run": res.epochs_run,
            "epochs_requested": epochs,
            "history": {
                "epochs": res.epochs,
                "train_loss": finite(res.train_loss),
                "test_loss": finite(res.test_loss),
            },
        }

    record(0)
    if on_epoch is not None:
        on_epoch(0)
    n = x.shape[0]
    drop = dropout_gen if net.dropout > 0 else None
    snapshot = _Snapshot(opt)
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=shuffle_gen)
        snapshot.take(drop)
        xs, ys = x[perm], y[perm]
        for start in range(0, n, batch_size):
            out, cache = net.forward(xs[start : start + batch_size], drop)
            net.backward(cache, loss_grad(out, ys[start : start + batch_size], task, loss))
            opt.step()
            now = time.perf_counter()
            if now >= pacer.next_poll:
                pacer.poll(now, epoch - 1, message, partial)
                if now >= deadline:
                    res.stop_reason = "time_budget"
                    res.stop_detail = f"time budget reached during epoch {epoch} of {epochs}"
                    break
        if res.stop_reason == "time_budget":
            break
        res.epochs_run = epoch
        finite = bool(torch.isfinite(net.params).all())
        if finite and epoch in keep:
            finite = record(epoch)
        if finite and on_epoch is not None:
            on_epoch(epoch)
        if not finite:
            snapshot.restore(drop)
            res.step_epochs, res.step_train_loss = _replay_epoch(net, opt, data, loss, perm, batch_size, drop)
            res.step_epochs = [epoch - 1 + s for s in res.step_epochs]
            res.stop_reason = "diverged"
            res.stop_detail = (
                f"the loss or the weights became NaN or infinite at epoch {epoch}; "
                "try a smaller learning_rate (or another init/activation)"
            )
            break
    if res.stop_reason == "time_budget" and (not res.epochs or res.epochs[-1] != res.epochs_run):
        record(res.epochs_run)
    if res.stop_reason != "diverged":
        res.grad_end = gradient_norms(net, x, y, task, loss)
    res.train = evaluate(net, x, y, task, loss)
    res.test = evaluate(net, data.x_test, data.y_test, task, loss)
    res.wall_time_s = time.perf_counter() - t0
    pacer.done_before += epochs
    return res

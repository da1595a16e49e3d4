"""The training loop, nanoGPT style: random windows of the token stream, AdamW, warm-up + cosine, clipping.

Our own loop rather than transformers' Trainer, so every step is on the page. The loss is computed here from
the logits (not `labels=`): the targets are the inputs shifted by one, sampled together with them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class TrainConfig:
    batch_size: int
    block_size: int
    max_steps: int
    learning_rate: float
    warmup_steps: int
    eval_interval: int
    eval_iters: int
    time_budget_s: float
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)  # nanoGPT's for small data: beta2 0.99
    grad_clip: float = 1.0
    min_lr_ratio: float = 0.1  # cosine decays to learning_rate / 10 (nanoGPT's min_lr)


@dataclass
class Log:
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    steps_run: int = 0
    stop_reason: str = "completed"
    wall_time_s: float = 0.0


def get_batch(data: torch.Tensor, batch_size: int, block_size: int, gen: torch.Generator):
    """Random windows of the token stream: x = tokens [i, i + T), y = tokens [i + 1, i + T + 1)."""

    ix = torch.randint(len(data) - block_size, (batch_size,), generator=gen)
    x = torch.stack([data[i : i + block_size] for i in ix])  # (B, T)
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix])  # (B, T)
    return x, y


def lr_at(step: int, c: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from learning_rate to learning_rate * min_lr_ratio at max_steps."""
    if step < c.warmup_steps:
        return c.learning_rate * (step + 1) / (c.warmup_steps + 1)
    progress = (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return c.learning_rate * (c.min_lr_ratio + (1 - c.min_lr_ratio) * cosine)


def make_optimizer(model, c: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, LayerNorms), as GPT-2 and nanoGPT do."""

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": c.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=c.learning_rate, betas=c.betas)


def loss_of(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=x).logits  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def mean_loss(model, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = sum(float(loss_of(model, x, y)) for x, y in batches) / len(batches)
    model.train(was_training)
    return loss


@contextmanager
def torch_threads(n: int):
    """Use n intra-op threads for the block (restored after). See `choose_threads`."""

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def choose_threads(batch_size: int, block_size: int, n_embd: int) -> int:
    """One thread for tiny matrices: their products are too small to split, and on a busy CPU the threads spin
    waiting for each other (measured here, 2 busy cores: one forward of a 2 x 64 GPT took 8.5 ms on 1 thread,
    460 ms on 2). Bigger models get torch's default."""

    return 1 if batch_size * block_size * n_embd <= 16 * 64 * 128 * 2 else torch.get_num_threads()


def train(
    model,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    c: TrainConfig,
    gen: torch.Generator,
    on_eval: Callable[[int, Log], None],
    check_cancelled: Callable[[], None],
) -> Log:
    """Train in place. on_eval(step, log) runs after each evaluation (samples, progress, partial results)."""

    eval_gen = torch.Generator().manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
    val_batches = [get_batch(val_data, c.batch_size, c.block_size, eval_gen) for _ in range(c.eval_iters)]
    train_batches = [get_batch(train_data, c.batch_size, c.block_size, eval_gen) for _ in range(c.eval_iters)]
    opt = make_optimizer(model, c)
    log = Log()
    model.train()
    start = last_check = time.perf_counter()
    running, n_running = 0.0, 0

    def evaluate(step: int) -> None:
        train_loss = running / n_running if n_running else mean_loss(model, train_batches)
        log.step.append(step)
        log.train_loss.append(train_loss)
        log.val_loss.append(mean_loss(model, val_batches))
        log.learning_rate.append(lr_at(step, c))
        log.wall_time_s = time.perf_counter() - start
        on_eval(step, log)

    evaluate(0)
    for step in range(c.max_steps):
        lr = lr_at(step, c)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, c.batch_size, c.block_size, gen)
        loss = loss_of(model, x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        running, n_running = running + loss.item(), n_running + 1
        log.steps_run = step + 1

        now = time.perf_counter()
        if now - last_check > 0.25:  # a cancel is seen within a second
            check_cancelled()
            last_check = now
        out_of_time = now - start > c.time_budget_s
        if log.steps_run % c.eval_interval == 0 or log.steps_run == c.max_steps or out_of_time:
            evaluate(log.steps_run)
            running, n_running = 0.0, 0
        if out_of_time and log.steps_run < c.max_steps:
            log.stop_reason = "time_budget"
            break
    log.wall_time_s = time.perf_counter() - start
    return log

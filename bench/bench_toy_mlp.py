"""Benchmark: train_toy_mlp's trainer against a minimal hand-written torch loop, measured in the same run.

The reference is the textbook loop: nn.Sequential, torch.optim, zero_grad / backward / step per mini-batch,
with the same data, the same initial weights, the same batch order and batch size. Both are timed several
times, alternating, and the best of each is kept (the machine is shared). Ours also records the loss
history (up to 200 evaluations of train and test loss) and gradient norms; the reference records nothing.
Then the whole tool call (data, training, picture, files) on the playground default, warm.

    python bench/bench_toy_mlp.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from tools.common import NullReporter
from tools.config import LabConfig
from tools.toy_mlp import TrainToyMlpInput, run
from tools.toy_mlp import data as D
from tools.toy_mlp.model import MLP, loss_value
from tools.toy_mlp.train import Optimizer, Pacer, fit, generator

ACTS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid}


def make_data(n_samples: int, seed: int):
    xy, y = D.make_points("spiral", n_samples, 0.0, seed)
    return D.make_split(*D.split(xy, y, 0.5, seed), ["x1", "x2"], "classification")


def ours(split, hidden, act, opt_kind, lr, batch, epochs, seed):
    with torch.inference_mode():
        net = MLP(split.x_train.shape[1], hidden, act)
        net.init("default", 0.0, generator(seed, 4))
        opt = Optimizer(net, opt_kind, lr)
        t = time.perf_counter()
        fit(net, opt, split, loss="bce", epochs=epochs, batch_size=batch, seed=seed, deadline=float("inf"),
            pacer=Pacer(NullReporter(), epochs))  # fmt: skip
        return time.perf_counter() - t, net


def reference(split, hidden, act, opt_kind, lr, batch, epochs, seed, init_from: MLP):
    sizes = [split.x_train.shape[1], *hidden, 1]
    layers: list[torch.nn.Module] = []
    for i, o in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(i, o), ACTS[act]()]
    model = torch.nn.Sequential(*layers[:-1])
    with torch.no_grad():  # the same initial weights as ours
        for lin, W, b in zip(
            [m for m in model if isinstance(m, torch.nn.Linear)], init_from.W, init_from.b, strict=True
        ):
            lin.weight.copy_(W)
            lin.bias.copy_(b)
    if opt_kind == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    elif opt_kind == "momentum":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = split.x_train, split.y_train
    shuffle = generator(seed, 2)  # the same batch order as ours
    t = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=shuffle)
        for s in range(0, x.shape[0], batch):
            idx = perm[s : s + batch]
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]).squeeze(1), y[idx])
            loss.backward()
            opt.step()
    return time.perf_counter() - t, model


def compare(name, repeats, **kw):
    split = make_data(kw.pop("n_samples"), kw["seed"])
    t_ours, t_ref = [], []
    for _ in range(repeats):
        dt, net = ours(split, **kw)
        t_ours.append(dt)
        init = MLP(split.x_train.shape[1], kw["hidden"], kw["act"])
        init.init("default", 0.0, generator(kw["seed"], 4))
        dt, model = reference(split, **kw, init_from=init)
        t_ref.append(dt)
    with torch.no_grad():
        ref_out = model(split.x_train).squeeze(1)
        ref_loss = float(loss_value(ref_out, split.y_train, "classification", "bce"))
        our_loss = float(loss_value(net.predict(split.x_train), split.y_train, "classification", "bce"))
        ref_w = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        dw = float((ref_w - net.params).abs().max())
    e = kw["epochs"]
    print(
        f"{name:34s} ours {min(t_ours):6.3f} s ({e / min(t_ours):7.1f} epochs/s)   reference {min(t_ref):6.3f} s "
        f"({e / min(t_ref):7.1f} epochs/s)   speed-up {min(t_ref) / min(t_ours):5.2f}x   "
        f"final train loss {our_loss:.6f} vs {ref_loss:.6f}, max |dw| {dw:.1e}"
    )


def tool_call(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = LabConfig.create(tmp)
        args = TrainToyMlpInput(
            dataset="spiral", hidden_layers=[8, 8], activation="tanh", batch_size=10, epochs=300
        )
        run(args, cfg, NullReporter())  # warm: imports, matplotlib fonts
        calls = []  # (whole call, training alone)
        for _ in range(repeats):
            t = time.perf_counter()
            out = run(args, cfg, NullReporter())
            calls.append((time.perf_counter() - t, out.result.runs[0].wall_time_s))
        best = min(calls)
        print(
            f"whole call, playground default (spiral, 250 train, [8, 8] tanh, batch 10, 300 epochs, picture, files): "
            f"best {best[0]:.3f} s (training {best[1]:.3f} s of it), median {statistics.median(c[0] for c in calls):.3f} s; "
            f"inline picture {len(out.images[0].png) / 1024:.0f} KiB"
        )
        variants = args.model_copy(
            update={"variants": [{"activation": a} for a in ("tanh", "relu", "sigmoid")]}
        )
        t = time.perf_counter()
        out = run(variants, cfg, NullReporter())
        print(f"whole call, 3 variants (tanh / relu / sigmoid): {time.perf_counter() - t:.3f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads for both (0: leave the default)"
    )
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {a.repeats}")
    common = {"n_samples": 500, "seed": 0, "batch": 10, "epochs": 300}
    compare(
        "playground default, sgd lr 0.03",
        a.repeats,
        hidden=[8, 8],
        act="tanh",
        opt_kind="sgd",
        lr=0.03,
        **common,
    )
    compare(
        "playground default, adam lr 0.01",
        a.repeats,
        hidden=[8, 8],
        act="tanh",
        opt_kind="adam",
        lr=0.01,
        **common,
    )
    compare(
        "relu [32, 32, 32], momentum",
        a.repeats,
        hidden=[32, 32, 32],
        act="relu",
        opt_kind="momentum",
        lr=0.01,
        **common,
    )
    tool_call(a.repeats)


if __name__ == "__main__":
    main()

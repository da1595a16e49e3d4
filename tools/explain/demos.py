"""Live demos for explain_concept: tiny computations done with torch at call time, numbers plus a picture.

Each demo takes the caller's demo parameters (already bounds-checked by the input model), checks what
only it can check (lengths, ranges), computes with torch, and returns a `DemoResult` and, where a
picture helps, PNG bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from tools.common import InvalidArgument
from tools.explain.schema import DemoParams, DemoResult, DemoText


def _t(en: str, zh: str) -> DemoText:
    return DemoText(en=en, zh=zh)


def _lab(p: DemoParams, en: str, zh: str) -> str:
    """A picture label in the answer's language (English when both were asked for: one line stays readable)."""
    return zh if p.language == "zh" else en


def _r(x: Any) -> Any:
    """Round a tensor / float / nested list to 6 decimals, as plain Python numbers."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, list):
        return [_r(v) for v in x]
    if isinstance(x, float):
        return round(x, 6)
    return x


def _fig(nrows: int = 1, ncols: int = 1, figsize=(6, 3.2), **kwargs):
    """A matplotlib Figure outside pyplot: tool calls run in worker threads, pyplot's global state is not safe there."""

    from tools.fonts import use_cjk_in_matplotlib

    use_cjk_in_matplotlib()  # Chinese titles and labels (must precede the texts)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def _heatmap(ax, a, title: str) -> None:
    import numpy as np

    a = np.asarray(a, dtype=float)
    ax.imshow(a, cmap="viridis")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    mid = (a.max() + a.min()) / 2
    for (i, j), v in np.ndenumerate(a):
        ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7, color="black" if v > mid else "white")


# --- activations -------------------------------------------------------------------------------------

_ACT_NOTES = {
    "relu": _t(
        "ReLU passes positive inputs unchanged (derivative 1) and zeroes negative ones (derivative 0; torch uses 0 at "
        "x=0). A neuron whose inputs stay negative gets no gradient at all: a 'dead ReLU'.",
        "ReLU 让正输入原样通过（导数为 1），把负输入变成 0（导数为 0；torch 在 x=0 处取 0）。"
        "如果一个神经元的输入一直是负的，它就完全收不到梯度，这就是“死亡 ReLU”。",
    ),
    "sigmoid": _t(
        "Sigmoid squashes any input into (0, 1). Its derivative is at most 0.25 (at x=0) and almost 0 for |x| > 5: "
        "multiplying many such factors across layers makes gradients vanish.",
        "Sigmoid 把任何输入压到 (0, 1) 之间。它的导数最大只有 0.25（在 x=0 处），|x| > 5 时几乎为 0："
        "很多层连乘这样的小因子，梯度就会消失。",
    ),
    "tanh": _t(
        "Tanh squashes into (-1, 1) and is centred at 0. Its derivative peaks at 1 (x=0) but saturates to 0 for |x| > 3.",
        "Tanh 把输入压到 (-1, 1)，以 0 为中心。导数在 x=0 处最大为 1，但 |x| > 3 时趋于饱和、接近 0。",
    ),
    "gelu": _t(
        "GELU is a smooth ReLU: about x for large x, about 0 for very negative x, and slightly negative in between "
        "(minimum about -0.17 near x=-0.75). Transformers (BERT, GPT) use it.",
        "GELU 是平滑版的 ReLU：x 很大时约等于 x，x 很负时约等于 0，中间略小于 0（在 x≈-0.75 处最小约 -0.17）。"
        "Transformer（BERT、GPT）常用它。",
    ),
}
_ACT_CODE = {
    "relu": "torch.relu(x)",
    "sigmoid": "torch.sigmoid(x)",
    "tanh": "torch.tanh(x)",
    "gelu": "torch.nn.functional.gelu(x)",
}


def _act_fn(kind: str) -> Callable:
    return {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu}[kind]


def _value_and_grad(kind: str, xs):
    """f(x) and df/dx by autograd, elementwise."""

    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = _act_fn(kind)(x)
    y.sum().backward()
    return y.detach(), x.grad


def _activation_demo(kinds: list[str], p: DemoParams) -> tuple[DemoResult, bytes | None]:
    xs = p.demo_input if p.demo_input is not None else [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]
    grid = torch.linspace(-5, 5, 201, dtype=torch.float64)
    values: dict[str, Any] = {"x": _r(xs)}
    for kind in kinds:
        y, dy = _value_and_grad(kind, xs)
        gy, gdy = _value_and_grad(kind, grid.tolist())
        i = int(torch.argmax(gdy))
        values[kind] = {
            "value": _r(y),
            "derivative": _r(dy),
            "max_derivative_on_-5..5": _r(float(gdy[i])),
            "at_x": _r(float(grid[i])),
        }
    png = None
    if p.plot:
        fig, axes = _fig(1, 2, figsize=(8, 3.2))
        for kind in kinds:
            gy, gdy = _value_and_grad(kind, grid.tolist())
            axes[0].plot(grid, gy, label=kind)
            axes[1].plot(grid, gdy, label=kind)
        for ax, title in zip(axes, ("f(x)", _lab(p, "f'(x) (autograd)", "f'(x)（自动求导）")), strict=True):
            ax.axhline(0, color="grey", lw=0.5)
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=8)
        png = _png(fig)
    name = kinds[0] if len(kinds) == 1 else "activations"
    code = "\n".join(
        [
            "import torch",
            f"x = torch.tensor({list(xs)}, dtype=torch.float64, requires_grad=True)",
            *[
                f"y = {_ACT_CODE[k]}; (g,) = torch.autograd.grad(y.sum(), x); print('{k}', y, g)"
                for k in kinds
            ],
        ]
    )
    return (
        DemoResult(
            name=name,
            title=_t(
                f"{', '.join(kinds)}: value and derivative (autograd) at each x",
                f"{'、'.join(kinds)}：每个 x 处的函数值和导数（自动求导）",
            ),
            parameters={"demo_input": _r(xs)},
            values=values,
            code=code,
            notes=[_ACT_NOTES[k] for k in kinds],
            has_plot=png is not None,
        ),
        png,
    )


# --- softmax and losses --------------------------------------------------------------------------------


def _softmax_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    logits = p.demo_input if p.demo_input is not None else [2.0, 1.0, 0.1]
    if len(logits) < 2:
        raise InvalidArgument("demo_input", logits, "softmax needs at least 2 logits (one per class)")
    z = torch.tensor(logits, dtype=torch.float64)
    probs = torch.softmax(z / p.temperature, dim=0)
    temps = sorted({0.5, 1.0, 2.0, p.temperature})
    by_t = {str(t): _r(torch.softmax(z / t, dim=0)) for t in temps}
    entropy = float(-(probs * torch.log(probs.clamp_min(1e-300))).sum())
    png = None
    if p.plot:
        import numpy as np

        fig, ax = _fig(figsize=(6, 3.2))
        width = 0.8 / len(temps)
        idx = np.arange(len(logits))
        for k, t in enumerate(temps):
            ax.bar(idx + k * width, by_t[str(t)], width, label=f"T={t:g}")
        ax.set_xticks(idx + 0.4 - width / 2)
        ax.set_xticklabels([f"z={v:g}" for v in logits], fontsize=8)
        ax.set_ylabel(_lab(p, "probability", "概率"))
        ax.set_title(_lab(p, "softmax(z / T)", "softmax(z / T)，T 是温度"), fontsize=10)
        ax.legend(fontsize=8)
        png = _png(fig)
    return (
        DemoResult(
            name="softmax",
            title=_t("softmax of the logits at a temperature", "在给定温度下对 logits 做 softmax"),
            parameters={"demo_input": _r(logits), "temperature": p.temperature},
            values={
                "probabilities": _r(probs),
                "sum": _r(float(probs.sum())),
                "entropy_nats": _r(entropy),
                "by_temperature": by_t,
            },
            code=(
                "import torch\n"
                f"z = torch.tensor({list(logits)})\n"
                f"p = torch.softmax(z / {p.temperature}, dim=0)\n"
                "print(p, p.sum())"
            ),
            notes=[
                _t(
                    "Probabilities are positive and sum to 1; the largest logit gets the largest share.",
                    "概率都是正数、加起来等于 1；logit 最大的类别分到的概率最大。",
                ),
                _t(
                    "A low temperature (T<1) sharpens the distribution towards the top class; a high one (T>1) "
                    "flattens it towards uniform. Adding the same constant to every logit changes nothing.",
                    "低温度（T<1）让分布更尖锐、更偏向最大的类别；高温度（T>1）让分布更平、更接近均匀。"
                    "给所有 logit 加同一个常数，结果不变。",
                ),
            ],
            has_plot=png is not None,
        ),
        png,
    )


def _mse_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    pred = p.demo_input if p.demo_input is not None else [2.5, 0.0, 2.0, 8.0]
    target = p.demo_target if p.demo_target is not None else [3.0, -0.5, 2.0, 7.0][: len(pred)]
    if len(target) != len(pred):
        raise InvalidArgument(
            "demo_target", target, f"needs one target per prediction: {len(pred)} values, like demo_input"
        )
    yhat = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(target, dtype=torch.float64)
    loss = F.mse_loss(yhat, y)
    loss.backward()
    err = (yhat - y).detach()
    return (
        DemoResult(
            name="mse",
            title=_t("mean squared error between predictions and targets", "预测值与目标值之间的均方误差"),
            parameters={"demo_input": _r(pred), "demo_target": _r(target)},
            values={
                "errors": _r(err),
                "squared_errors": _r(err**2),
                "mse": _r(loss.item()),
                "gradient_wrt_predictions": _r(yhat.grad),
            },
            code=(
                "import torch, torch.nn.functional as F\n"
                f"pred = torch.tensor({list(pred)}, requires_grad=True)\n"
                f"target = torch.tensor({list(target)})\n"
                "loss = F.mse_loss(pred, target); loss.backward()\n"
                "print(loss, pred.grad)  # grad = 2 * (pred - target) / n"
            ),
            notes=[
                _t(
                    "Squaring makes every error positive and punishes big errors much more than small ones: "
                    "one error of 2 costs as much as four errors of 1.",
                    "平方让每个误差都变成正数，并且对大误差惩罚得多得多：一个误差 2 的代价等于四个误差 1。",
                ),
                _t(
                    "The gradient for each prediction is 2*(prediction - target)/n: it points from the target "
                    "towards the prediction, so gradient descent moves predictions toward targets.",
                    "每个预测值的梯度是 2*(预测 - 目标)/n：方向从目标指向预测，所以梯度下降会把预测往目标拉。",
                ),
            ],
        ),
        None,
    )


def _cross_entropy_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    logits = p.demo_input if p.demo_input is not None else [2.0, 1.0, 0.1]
    if len(logits) < 2:
        raise InvalidArgument("demo_input", logits, "cross-entropy needs at least 2 logits (one per class)")
    target = 0 if p.target_class is None else p.target_class
    if target >= len(logits):
        raise InvalidArgument(
            "target_class",
            target,
            f"must be a class index from 0 to {len(logits) - 1} (one per logit in demo_input)",
        )
    z = torch.tensor([logits], dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(z, torch.tensor([target]))
    (z_grad,) = torch.autograd.grad(loss, z)
    probs = torch.softmax(z.detach()[0], dim=0)
    per_class = [_r(float(-torch.log(probs[k]))) for k in range(len(logits))]
    return (
        DemoResult(
            name="cross_entropy",
            title=_t("cross-entropy of logits against the true class", "logits 相对于真实类别的交叉熵"),
            parameters={"demo_input": _r(logits), "target_class": target},
            values={
                "probabilities": _r(probs),
                "loss": _r(loss.item()),
                "loss_by_hand_-log_p_target": _r(float(-torch.log(probs[target]))),
                "loss_if_each_class_were_the_target": per_class,
                "gradient_wrt_logits": _r(z_grad[0]),
            },
            code=(
                "import torch, torch.nn.functional as F\n"
                f"z = torch.tensor([{list(logits)}], requires_grad=True)\n"
                f"loss = F.cross_entropy(z, torch.tensor([{target}])); loss.backward()\n"
                "print(loss, -torch.log_softmax(z, 1)[0, %d], z.grad)  # grad = softmax(z) - one_hot" % target
            ),
            notes=[
                _t(
                    "The loss is -log(probability of the true class): near 0 when the model is confident and right, "
                    "large when it is confident and wrong.",
                    "损失就是 -log(真实类别的概率)：模型又自信又正确时接近 0，自信却错了时会很大。",
                ),
                _t(
                    "The gradient with respect to the logits is softmax(z) - one_hot(target): push the true class "
                    "up, every other class down, in proportion to its probability.",
                    "对 logits 的梯度是 softmax(z) - one_hot(目标)：把真实类别往上推，其他类别按各自概率往下压。",
                ),
            ],
        ),
        None,
    )


# --- optimisation ---------------------------------------------------------------------------------------


def _descend(lr: float, steps: int, x0: float) -> tuple[list[float], str]:
    """Gradient descent on f(x) = x^2 with the gradient from autograd."""

    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    path = [x0]
    for _ in range(steps):
        (g,) = torch.autograd.grad(x**2, x)
        with torch.no_grad():
            x -= lr * g
        path.append(x.item())
        if abs(path[-1]) > 1e12:
            break
    last = abs(path[-1])
    if x0 == 0:
        status = "converged"
    elif last > abs(x0):
        status = "diverged"
    elif last < 1e-3 * abs(x0):
        status = "converged"
    else:
        status = "oscillating, slowly converging" if path[1] * x0 < 0 else "converging slowly"
    return path, status


def _gradient_descent_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    rates = [p.learning_rate] if p.learning_rate is not None else [0.05, 0.4, 0.9, 1.05]
    runs = []
    for lr in rates:
        path, status = _descend(lr, p.steps, p.start_x)
        runs.append(
            {
                "learning_rate": lr,
                "status": status,
                "final_x": _r(path[-1]),
                "final_loss": _r(path[-1] ** 2),
                "x_first_steps": _r(path[:8]),
                "steps_run": len(path) - 1,
            }
        )
    png = None
    if p.plot:
        import numpy as np

        fig, axes = _fig(1, 2, figsize=(8, 3.2))
        span = max(abs(p.start_x) * 1.3, 1.0)
        g = np.linspace(-span, span, 200)
        axes[0].plot(g, g**2, color="grey", lw=1)
        for lr in rates:
            path, _ = _descend(lr, p.steps, p.start_x)
            pts = np.clip(np.array(path[:12]), -span, span)
            axes[0].plot(pts, pts**2, "o-", ms=3, lw=0.8, label=f"lr={lr:g}")
            axes[1].semilogy(np.maximum(np.abs(path), 1e-300), label=f"lr={lr:g}")
        axes[0].set_title(_lab(p, "f(x) = x², first steps", "f(x) = x²，前几步"), fontsize=10)
        axes[1].set_title(_lab(p, "|x| per step (log scale)", "每一步的 |x|（对数刻度）"), fontsize=10)
        axes[1].set_xlabel(_lab(p, "step", "步数"))
        for ax in axes:
            ax.legend(fontsize=8)
        png = _png(fig)
    return (
        DemoResult(
            name="gradient_descent",
            title=_t(
                "gradient descent on f(x) = x² (gradient 2x from autograd)",
                "在 f(x) = x² 上做梯度下降（梯度 2x 由自动求导得到）",
            ),
            parameters={"learning_rate": rates, "steps": p.steps, "start_x": p.start_x},
            values={"runs": runs, "stable_if": "0 < learning_rate < 1 (each step multiplies x by 1 - 2*lr)"},
            code=(
                "import torch\n"
                f"x = torch.tensor({p.start_x}, requires_grad=True)\n"
                f"opt = torch.optim.SGD([x], lr={rates[0]})\n"
                f"for step in range({p.steps}):\n"
                "    opt.zero_grad(); loss = x ** 2; loss.backward(); opt.step()\n"
                "print(x.item())"
            ),
            notes=[
                _t(
                    "Each step is x <- x - lr * 2x = (1 - 2 lr) x. With lr < 0.5 x shrinks steadily; between 0.5 and "
                    "1 it overshoots and flips sign but still shrinks; above 1 every step lands farther away: divergence.",
                    "每一步是 x <- x - lr*2x = (1 - 2lr)x。lr < 0.5 时 x 平稳缩小；0.5 到 1 之间会越过最低点、正负来回跳，"
                    "但仍在缩小；lr 大于 1 时每一步都跳得更远：发散。",
                ),
                _t(
                    "Too small a learning rate is safe but slow; too large and the loss explodes (often to NaN).",
                    "学习率太小虽然安全但很慢；太大则损失会爆炸（常常变成 NaN）。",
                ),
            ],
            has_plot=png is not None,
        ),
        png,
    )


def _chain_rule_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    vals = p.demo_input if p.demo_input is not None else [2.0, 3.0, 0.5, 0.0]
    if len(vals) != 4:
        raise InvalidArgument("demo_input", vals, "the chain-rule demo takes 4 numbers: [x, y, w, b]")
    x, y, w0, b0 = vals
    lr = p.learning_rate if p.learning_rate is not None else 0.1
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    z = w * x + b
    loss = (z - y) ** 2
    w_grad, b_grad = (g.item() for g in torch.autograd.grad(loss, (w, b)))
    e = w0 * x + b0 - y
    new_w, new_b = w0 - lr * w_grad, b0 - lr * b_grad
    new_loss = (new_w * x + new_b - y) ** 2
    return (
        DemoResult(
            name="chain_rule",
            title=_t(
                "backpropagation through z = w*x + b, L = (z - y)²: chain rule by hand vs autograd",
                "对 z = w*x + b、L = (z - y)² 做反向传播：手算链式法则 vs 自动求导",
            ),
            parameters={"demo_input": _r(vals), "learning_rate": lr},
            values={
                "forward": {"z": _r(z.item()), "loss": _r(loss.item())},
                "by_hand": {
                    "dL/dz = 2(z-y)": _r(2 * e),
                    "dL/dw = 2(z-y)*x": _r(2 * e * x),
                    "dL/db = 2(z-y)": _r(2 * e),
                },
                "autograd": {"dL/dw": _r(w_grad), "dL/db": _r(b_grad)},
                "after_one_step": {"w": _r(new_w), "b": _r(new_b), "loss": _r(new_loss)},
            },
            code=(
                "import torch\n"
                f"w = torch.tensor({w0}, requires_grad=True); b = torch.tensor({b0}, requires_grad=True)\n"
                f"loss = (w * {x} + b - {y}) ** 2\n"
                "loss.backward()\n"
                "print(w.grad, b.grad)"
            ),
            notes=[
                _t(
                    "Backpropagation multiplies local derivatives from the loss back to each parameter: "
                    "dL/dw = dL/dz * dz/dw. autograd gets exactly the hand-computed numbers.",
                    "反向传播就是从损失往回、把每一步的局部导数相乘：dL/dw = dL/dz * dz/dw。自动求导得到的数和手算完全一样。",
                ),
                _t(
                    "One gradient-descent step (w -= lr * dL/dw, b -= lr * dL/db) lowers the loss when lr is small enough.",
                    "沿梯度走一步（w -= lr * dL/dw，b -= lr * dL/db），只要学习率不太大，损失就会下降。",
                ),
            ],
        ),
        None,
    )


# --- tensors and layers ---------------------------------------------------------------------------------


def _normalization_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    pixels = p.demo_input if p.demo_input is not None else [0.0, 64.0, 128.0, 191.0, 255.0]
    if any(v < 0 or v > 255 for v in pixels):
        raise InvalidArgument(
            "demo_input", pixels, "normalization demo values are pixel values from 0 to 255"
        )
    if len(pixels) < 2:
        raise InvalidArgument("demo_input", pixels, "give at least 2 pixel values")
    t = torch.tensor(pixels, dtype=torch.float32)
    unit = t / 255
    std = t.std(unbiased=False)
    z = (t - t.mean()) / std if float(std) > 0 else torch.zeros_like(t)
    return (
        DemoResult(
            name="normalization",
            title=_t(
                "the same pixel values under the common normalizations",
                "同一组像素值在几种常见归一化下的结果",
            ),
            parameters={"demo_input": _r(pixels)},
            values={
                "uint8": [int(v) for v in pixels],
                "unit_0_1 (x/255, as ToTensor)": _r(unit),
                "minus_one_one (x/127.5 - 1, diffusion VAE)": _r(t / 127.5 - 1),
                "imagenet_red_channel ((x/255 - 0.485) / 0.229)": _r((unit - 0.485) / 0.229),
                "standardized ((x - mean) / std)": _r(z),
                "mean": _r(float(t.mean())),
                "std": _r(float(std)),
            },
            code=(
                "import torch\n"
                f"t = torch.tensor({list(pixels)})\n"
                "print(t / 255)                      # [0, 1]\n"
                "print(t / 127.5 - 1)                # [-1, 1]\n"
                "print((t / 255 - 0.485) / 0.229)    # ImageNet mean/std, red channel\n"
                "print((t - t.mean()) / t.std(unbiased=False))"
            ),
            notes=[
                _t(
                    "Normalizing does not change which pixel is brighter; it changes the scale so that the numbers "
                    "are small and centred, which keeps training stable.",
                    "归一化不会改变哪个像素更亮，只是改变数值范围，让数变小、居中，训练更稳定。",
                ),
                _t(
                    "Use the same normalization at inference as in training: a model trained on ImageNet statistics "
                    "sees garbage if you feed it 0-255 values.",
                    "推理时要用和训练时相同的归一化：用 ImageNet 统计量训练的模型，喂进 0-255 的原始值就会得到乱七八糟的结果。",
                ),
            ],
        ),
        None,
    )


_CONV_LABELS = [("image", "图像", "5x5"), ("kernel", "卷积核", "3x3"), ("output", "输出", "3x3")]


def _convolution_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    image = torch.tensor([[0, 0, 1, 1, 1]] * 5, dtype=torch.float64)  # a vertical edge
    k = p.demo_input if p.demo_input is not None else [1.0, 0.0, -1.0, 2.0, 0.0, -2.0, 1.0, 0.0, -1.0]
    if len(k) != 9:
        raise InvalidArgument(
            "demo_input", k, "the convolution demo takes a 3x3 kernel: 9 numbers, row by row"
        )
    kernel = torch.tensor(k, dtype=torch.float64).reshape(3, 3)
    out = F.conv2d(image[None, None], kernel[None, None])[0, 0]  # (3, 3): no padding, stride 1
    products = image[:3, :3] * kernel
    png = None
    if p.plot:
        fig, axes = _fig(1, 3, figsize=(8, 2.8))
        for ax, a, title in zip(
            axes,
            (image, kernel, out),
            [_lab(p, f"{en} {n}", f"{zh} {n}") for en, zh, n in _CONV_LABELS],
            strict=True,
        ):
            _heatmap(ax, a.numpy(), title)
        png = _png(fig)
    return (
        DemoResult(
            name="convolution",
            title=_t(
                "a 3x3 kernel slid over a 5x5 image with a vertical edge (torch.nn.functional.conv2d)",
                "用 3x3 卷积核扫过一张带竖直边缘的 5x5 图像（torch.nn.functional.conv2d）",
            ),
            parameters={"image": _r(image), "kernel": _r(kernel), "stride": 1, "padding": 0},
            values={
                "output": _r(out),
                "output_shape": [3, 3],
                "top_left_products": _r(products),
                "top_left_sum": _r(float(products.sum())),
            },
            code=(
                "import torch, torch.nn.functional as F\n"
                "img = torch.tensor([[0., 0, 1, 1, 1]] * 5)\n"
                f"k = torch.tensor({list(k)}).reshape(3, 3)\n"
                "print(F.conv2d(img[None, None], k[None, None])[0, 0])"
            ),
            notes=[
                _t(
                    "Each output number is the sum of the 9 products of the kernel with the 3x3 patch under it "
                    "(top_left_products sums to output[0][0]). Output size = 5 - 3 + 1 = 3 without padding.",
                    "每个输出数字是卷积核与其覆盖的 3x3 小块逐元素相乘再求和（top_left_products 的和就是 output[0][0]）。"
                    "不加 padding 时输出大小 = 5 - 3 + 1 = 3。",
                ),
                _t(
                    "The default kernel is a Sobel edge detector: the output is large in magnitude where brightness "
                    "changes from left to right (-4 here: dark left, bright right), 0 on flat areas. PyTorch does not flip the kernel (cross-correlation).",
                    "默认卷积核是 Sobel 边缘检测器：亮度从左到右变化的地方输出的绝对值很大（这里是 -4：左暗右亮），平坦区域输出为 0。"
                    "PyTorch 不翻转卷积核（严格说是互相关）。",
                ),
            ],
            has_plot=png is not None,
        ),
        png,
    )


def _dropout_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    xs = p.demo_input if p.demo_input is not None else [1.0] * 10
    x = torch.tensor(xs, dtype=torch.float64)
    keep = 1 - p.dropout_p
    # what F.dropout(training=True) computes, with our own generator: the global RNG is shared by concurrent calls
    g = torch.Generator().manual_seed(p.seed)
    mask = torch.bernoulli(torch.full_like(x, keep), generator=g)
    train_out = x * mask / keep
    big = torch.bernoulli(torch.full((100_000,), keep, dtype=torch.float64), generator=g) / keep
    eval_out = F.dropout(x, p.dropout_p, training=False)
    return (
        DemoResult(
            name="dropout",
            title=_t("dropout in training mode vs evaluation mode", "训练模式与评估模式下的 dropout"),
            parameters={"demo_input": _r(xs), "dropout_p": p.dropout_p, "seed": p.seed},
            values={
                "train_mode_output": _r(train_out),
                "kept_mask": [int(m) for m in mask.tolist()],
                "zeroed": int((mask == 0).sum()),
                "scale_of_kept_values": _r(1 / (1 - p.dropout_p)),
                "eval_mode_output": _r(eval_out),
                "mean_over_100000_ones_in_training": _r(float(big.mean())),
            },
            code=(
                "import torch, torch.nn.functional as F\n"
                f"x = torch.tensor({list(xs)}, dtype=torch.float64)\n"
                f"g = torch.Generator().manual_seed({p.seed})\n"
                f"mask = torch.bernoulli(torch.full_like(x, {keep:.12g}), generator=g)  # 1 = kept\n"
                f"print(x * mask / {keep:.12g})  # training: what F.dropout(x, {p.dropout_p}) does\n"
                f"print(F.dropout(x, {p.dropout_p}, training=False))  # evaluation: unchanged"
            ),
            notes=[
                _t(
                    "In training each value is zeroed with probability p and the survivors are multiplied by "
                    "1/(1-p), so the average stays the same (see the mean over 100000 ones).",
                    "训练时每个值以概率 p 被置 0，留下的值乘以 1/(1-p)，所以平均值保持不变（看 100000 个 1 的平均值）。",
                ),
                _t(
                    "In evaluation dropout does nothing: forget model.eval() and your predictions stay random.",
                    "评估时 dropout 什么也不做：忘了调用 model.eval()，预测结果就会一直带随机性。",
                ),
            ],
        ),
        None,
    )


def _norm_compare_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    if p.demo_input is not None:
        if len(p.demo_input) != 12:
            raise InvalidArgument(
                "demo_input",
                p.demo_input,
                "batch vs layer norm takes 12 numbers: 4 samples x 3 features, row by row",
            )
        x = torch.tensor(p.demo_input, dtype=torch.float64).reshape(4, 3)
    else:  # features on very different scales, as raw inputs often are
        g = torch.Generator().manual_seed(p.seed)
        x = torch.randn(4, 3, generator=g, dtype=torch.float64) * torch.tensor(
            [1.0, 100.0, 0.1]
        ) + torch.tensor([0.0, 50.0, 1.0])
    bn = F.batch_norm(x, None, None, training=True, eps=1e-5)  # per feature (column), across the batch
    ln = F.layer_norm(x, (3,), eps=1e-5)  # per sample (row), across its features
    png = None
    if p.plot:
        fig, axes = _fig(1, 3, figsize=(8, 3))
        for ax, a, title in zip(
            axes,
            (x, bn, ln),
            (
                _lab(p, "input (4 samples x 3 features)", "输入（4 个样本 x 3 个特征）"),
                _lab(p, "batch norm: columns", "批归一化：按列"),
                _lab(p, "layer norm: rows", "层归一化：按行"),
            ),
            strict=True,
        ):
            _heatmap(ax, a.numpy(), title)
        png = _png(fig)
    return (
        DemoResult(
            name="norm_compare",
            title=_t(
                "batch norm vs layer norm on a batch of 4 samples x 3 features",
                "在 4 个样本 x 3 个特征的批次上比较批归一化与层归一化",
            ),
            parameters={"input": _r(x), "seed": p.seed, "eps": 1e-5},
            values={
                "batch_norm_output": _r(bn),
                "batch_norm_column_means": _r(bn.mean(0)),
                "batch_norm_column_stds": _r(bn.std(0, unbiased=False)),
                "layer_norm_output": _r(ln),
                "layer_norm_row_means": _r(ln.mean(1)),
                "layer_norm_row_stds": _r(ln.std(1, unbiased=False)),
            },
            code=(
                "import torch, torch.nn.functional as F\n"
                "x = torch.randn(4, 3) * torch.tensor([1., 100., .1])\n"
                "bn = F.batch_norm(x, None, None, training=True)  # each column: mean 0, std 1\n"
                "ln = F.layer_norm(x, (3,))                        # each row: mean 0, std 1\n"
                "print(bn.mean(0), ln.mean(1))"
            ),
            notes=[
                _t(
                    "Batch norm normalizes each feature across the samples of the batch (columns); its result for one "
                    "sample depends on the other samples, and it needs running averages at inference.",
                    "批归一化对每个特征、跨批次里的样本做归一化（按列）；一个样本的结果依赖同批的其他样本，推理时要用滑动平均。",
                ),
                _t(
                    "Layer norm normalizes each sample across its own features (rows): independent of batch size, "
                    "the same in training and inference, which is why Transformers use it.",
                    "层归一化对每个样本在它自己的特征上做归一化（按行）：与批大小无关，训练和推理一样，所以 Transformer 用它。",
                ),
            ],
            has_plot=png is not None,
        ),
        png,
    )


# --- deep stacks ------------------------------------------------------------------------------------


def _input_grad_norm(
    act: Callable, depth: int, residual: bool, seed: int, width: int = 16, kaiming: bool = False
) -> float:
    """|dL/dx| at the input of `depth` layers h <- act(W h) (or h + act(W h)). W in nn.Linear's default range
    U(+-1/sqrt(fan_in)), or with kaiming=True He's N(0, 2 / fan_in) (torch.nn.init.kaiming_normal_)."""

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, width, generator=g, dtype=torch.float64, requires_grad=True)
    h = x
    for _ in range(depth):
        if kaiming:
            w = torch.randn(width, width, generator=g, dtype=torch.float64) * (2.0 / width) ** 0.5
        else:
            w = (torch.rand(width, width, generator=g, dtype=torch.float64) * 2 - 1) / width**0.5
        f = act(h @ w.T)
        h = h + f if residual else f
    (grad,) = torch.autograd.grad(h.sum(), x)
    return grad.norm().item()


def _depth_gradient_demo(p: DemoParams) -> tuple[DemoResult, bytes | None]:
    depths = p.demo_input if p.demo_input is not None else [1, 2, 5, 10, 20, 50]
    if len(depths) > 12 or any(d != int(d) or not 1 <= d <= 100 for d in depths):
        raise InvalidArgument(
            "demo_input", depths, "the depth demo takes up to 12 whole depths from 1 to 100"
        )
    depths = sorted({int(d) for d in depths})
    kinds = ["sigmoid", "tanh", "relu"]
    norms = {
        mode: {
            k: [_input_grad_norm(_act_fn(k), d, mode == "residual", p.seed) for d in depths] for k in kinds
        }
        for mode in ("plain", "residual")
    }
    # the remedy for plain ReLU: He (Kaiming) initialisation keeps the gradient's size from layer to layer
    norms["plain"]["relu_kaiming"] = [
        _input_grad_norm(_act_fn("relu"), d, False, p.seed, kaiming=True) for d in depths
    ]
    png = None
    if p.plot:
        fig, axes = _fig(1, 2, figsize=(8, 3.2), sharey=True)
        for ax, mode in zip(axes, ("plain", "residual"), strict=True):
            for k in norms[mode]:
                label = _lab(p, "relu, Kaiming init", "relu，Kaiming 初始化") if k == "relu_kaiming" else k
                ax.semilogy(depths, [max(v, 1e-300) for v in norms[mode][k]], "o-", ms=3, label=label)
            plain = _lab(p, "h = f(Wh)", "h = f(Wh)（普通堆叠）")
            ax.set_title(
                plain if mode == "plain" else _lab(p, "h = h + f(Wh)  (residual)", "h = h + f(Wh)（残差）"),
                fontsize=10,
            )
            ax.set_xlabel(_lab(p, "layers", "层数"))
            ax.legend(fontsize=8)
        axes[0].set_ylabel(_lab(p, "|dL/dx| at the input", "输入处的 |dL/dx|"))
        png = _png(fig)
    return (
        DemoResult(
            name="depth_gradient",
            title=_t(
                "gradient reaching the input through deeper and deeper stacks, plain vs residual",
                "梯度穿过越来越深的层堆叠后到达输入时的大小：普通堆叠 vs 残差连接",
            ),
            parameters={
                "depths": depths,
                "width": 16,
                "seed": p.seed,
                "init": "nn.Linear default U(+-1/sqrt(16)); relu_kaiming: N(0, 2/16)",
            },
            values={
                "input_gradient_norm_plain": {
                    k: [float(f"{v:.4g}") for v in vs] for k, vs in norms["plain"].items()
                },
                "input_gradient_norm_residual": {
                    k: [float(f"{v:.4g}") for v in vs] for k, vs in norms["residual"].items()
                },
            },
            code=(
                "import torch\n"
                "x = torch.randn(8, 16, requires_grad=True); h = x\n"
                "for _ in range(20):\n"
                "    f = torch.sigmoid(h @ ((torch.rand(16, 16) * 2 - 1) / 4).T)\n"
                "    h = f            # plain; try h = h + f (residual)\n"
                "h.sum().backward(); print(x.grad.norm())"
            ),
            notes=[
                _t(
                    "Plain stacks: the gradient at the input shrinks geometrically with depth (vanishing), fastest "
                    "with sigmoid, whose derivative is at most 0.25.",
                    "普通堆叠：输入处的梯度随深度按几何级数缩小（梯度消失），sigmoid 缩得最快，因为它的导数最大只有 0.25。",
                ),
                _t(
                    "Plain ReLU vanishes too with PyTorch's default init: U(+-1/sqrt(fan_in)) has variance "
                    "1/(3 fan_in), and ReLU passes half of the signal, so each layer multiplies the gradient's size "
                    "by about sqrt(fan_in x 1/(3 fan_in) x 1/2) = sqrt(1/6) = 0.41. ReLU is a remedy only with "
                    "Kaiming (He) initialisation, N(0, 2/fan_in), whose factor is about 1 on average (relu_kaiming): "
                    "at 50 layers the gradient is down by a factor of 10 to 1000 only (with 16 units per layer it "
                    "wanders from seed to seed), against 1e-18 with the default init. Residual connections are the "
                    "other remedy.",
                    "用 PyTorch 默认初始化时，普通 ReLU 堆叠的梯度也会消失：U(±1/√fan_in) 的方差是 1/(3·fan_in)，ReLU 只让一半"
                    "信号通过，所以每层把梯度大小乘以约 √(fan_in × 1/(3·fan_in) × 1/2) = √(1/6) ≈ 0.41。只有配合 Kaiming（He）"
                    "初始化 N(0, 2/fan_in)，每层的倍数平均才约为 1（relu_kaiming）：50 层时梯度只缩小 10 到 1000 倍（每层只有 16 个单元，"
                    "不同种子会有起伏），而默认初始化下只剩 1e-18。残差连接是另一种解法。",
                ),
                _t(
                    "With residual connections the identity path carries the gradient straight back, so it no "
                    "longer vanishes; without normalization it can instead grow with depth (relu here): exploding "
                    "gradients, which is why deep ResNets and Transformers also normalize.",
                    "有了残差连接，恒等通路把梯度直接传回去，梯度不再消失；但没有归一化时它反而可能随深度变大（这里的 relu）："
                    "这就是梯度爆炸，所以深层 ResNet 和 Transformer 还要配合归一化。",
                ),
            ],
            has_plot=png is not None,
        ),
        png,
    )


DEMOS: dict[str, Callable[[DemoParams], tuple[DemoResult, bytes | None]]] = {
    "relu": lambda p: _activation_demo(["relu"], p),
    "sigmoid": lambda p: _activation_demo(["sigmoid"], p),
    "tanh": lambda p: _activation_demo(["tanh"], p),
    "gelu": lambda p: _activation_demo(["gelu"], p),
    "activations": lambda p: _activation_demo(["relu", "sigmoid", "tanh", "gelu"], p),
    "softmax": _softmax_demo,
    "mse": _mse_demo,
    "cross_entropy": _cross_entropy_demo,
    "gradient_descent": _gradient_descent_demo,
    "chain_rule": _chain_rule_demo,
    "normalization": _normalization_demo,
    "convolution": _convolution_demo,
    "dropout": _dropout_demo,
    "norm_compare": _norm_compare_demo,
    "depth_gradient": _depth_gradient_demo,
}


def run_demo(name: str, params: DemoParams) -> tuple[DemoResult, bytes | None]:
    """Run the named demo; raises InvalidArgument for demo parameters it cannot use."""
    if name not in DEMOS:
        raise KeyError(f"unknown demo {name!r}; known: {sorted(DEMOS)}")
    return DEMOS[name](params)

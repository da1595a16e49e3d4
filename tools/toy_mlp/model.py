"""A small MLP with a hand-written forward and backward pass, and optimizers over one flat parameter tensor.

Why not `nn.Sequential` + autograd + `torch.optim`: for a playground-sized network (a few hundred weights,
mini-batches of 10) the arithmetic is nothing and the cost is per-op overhead. Here every parameter is a
view into one flat tensor and every gradient a view into another, so a training step is about twenty
plain tensor ops (no graph, no hooks, no per-parameter optimizer loop). Layers keep `nn.Linear`'s layout,
weight (out, in) and bias (out,), so the numbers match the textbook loop and the weights load into it.
The test suite checks every gradient against `torch.autograd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

LEAKY_SLOPE = 0.01
# predict() works in row blocks small enough that no op goes multi-threaded (see there)
BLOCK_MACS = 2**16  # rows x fan_in x fan_out per matrix product
BLOCK_ELEMENTS = (
    2048  # rows x width per elementwise op (ATen's VML ops such as tanh and erf thread above this)
)


_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _normal_cdf(z: torch.Tensor) -> torch.Tensor:
    """Phi(z), for the exact (erf) GELU. Written out because F.gelu and its backward kernel took 0.2 ms a call
    on a 10 x 8 tensor on the busy 2-core machine (every other activation: 1 to 8 us)."""
    return z.mul(_INV_SQRT_2).erf_().add_(1.0).mul_(0.5)


def _act_forward(name: str, z: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return z.relu()
    if name == "tanh":
        return z.tanh()
    if name == "sigmoid":
        return z.sigmoid()
    if name == "linear":
        return z
    if name == "gelu":
        return z * _normal_cdf(z)

    if name == "silu":
        return F.silu(z)
    return F.leaky_relu(z, LEAKY_SLOPE)


def _act_backward(name: str, grad: torch.Tensor, z: torch.Tensor, h: torch.Tensor, aten) -> torch.Tensor:
    """d loss / d z from d loss / d h, where h = act(z): the same aten kernels autograd uses."""
    if name == "relu":
        return aten.threshold_backward.default(grad, h, 0)
    if name == "tanh":
        return aten.tanh_backward.default(grad, h)
    if name == "sigmoid":
        return aten.sigmoid_backward.default(grad, h)
    if name == "gelu":  # d/dz z Phi(z) = Phi(z) + z phi(z)
        return z.square().mul_(-0.5).exp_().mul_(z).mul_(_INV_SQRT_2PI).add_(_normal_cdf(z)).mul_(grad)
    if name == "silu":
        return aten.silu_backward.default(grad, z)
    if name == "leaky_relu":
        return aten.leaky_relu_backward.default(grad, z, LEAKY_SLOPE, False)
    return grad  # linear


@dataclass
class Cache:
    """What the backward pass needs from one forward pass."""

    inputs: list[torch.Tensor] = field(default_factory=list)  # input of each linear layer
    pre: list[torch.Tensor] = field(default_factory=list)  # z of each hidden layer
    post: list[torch.Tensor] = field(default_factory=list)  # act(z) of each hidden layer
    masks: list[torch.Tensor | None] = field(default_factory=list)  # dropout masks (already scaled)


class MLP:
    """features -> hidden layers (activation, optional residual and dropout) -> one output unit.

    `residual`: hidden layer k >= 1 adds its input to its output (all hidden widths are equal).
    The output unit is a logit for classification, the prediction for regression.
    """

    def __init__(
        self, n_in: int, hidden: list[int], activation: str, residual: bool = False, dropout: float = 0.0
    ):
        self.sizes = [n_in, *hidden, 1]
        self.activation = activation
        self.residual = residual
        self.dropout = dropout
        n_params = sum(o * i + o for i, o in zip(self.sizes[:-1], self.sizes[1:], strict=True))
        self.params = torch.zeros(n_params)
        self.grads = torch.zeros(n_params)
        # 1 over weights, 0 over biases: regularization skips biases, as in the playground
        self.decay_mask = torch.zeros(n_params)
        self.W: list[torch.Tensor] = []  # (fan_out, fan_in) views into params
        self.b: list[torch.Tensor] = []
        self.gW: list[torch.Tensor] = []  # the same views into grads
        self.gb: list[torch.Tensor] = []
        at = 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            for store, grads, shape in ((self.W, self.gW, (fan_out, fan_in)), (self.b, self.gb, (fan_out,))):
                size = math.prod(shape)
                store.append(self.params[at : at + size].view(shape))
                grads.append(self.grads[at : at + size].view(shape))
                if len(shape) == 2:
                    self.decay_mask[at : at + size] = 1.0
                at += size
        self.Wt = [W.t() for W in self.W]  # transposed views, made once: they follow in-place updates

    @property
    def n_layers(self) -> int:
        return len(self.W)

    def layer_names(self) -> list[str]:
        kinds = [f"hidden {k + 1}" for k in range(self.n_layers - 1)] + ["output"]
        return [
            f"{kind} ({i}->{o})" for kind, i, o in zip(kinds, self.sizes[:-1], self.sizes[1:], strict=True)
        ]

    def init(self, scheme: str, std: float, generator: torch.Generator) -> None:
        """default: nn.Linear's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases;
        zeros; normal(0, std); uniform with the same std (U(-sqrt(3) std, sqrt(3) std)). Biases 0 unless default."""
        for W, b in zip(self.W, self.b, strict=True):
            if scheme == "default":
                bound = 1.0 / math.sqrt(W.shape[1])
                W.uniform_(-bound, bound, generator=generator)
                b.uniform_(-bound, bound, generator=generator)
                continue
            b.zero_()
            if scheme == "zeros":
                W.zero_()
            elif scheme == "normal":
                W.normal_(0.0, std, generator=generator)
            else:
                a = math.sqrt(3.0) * std
                W.uniform_(-a, a, generator=generator)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Cache]:
        """Output (B,) and the cache. Dropout is applied only when a generator is given (training)."""

        cache = Cache()
        a = x
        for k in range(self.n_layers - 1):
            cache.inputs.append(a)
            z = torch.addmm(self.b[k], a, self.Wt[k])  # (B, width)
            h = _act_forward(self.activation, z)
            cache.pre.append(z)
            cache.post.append(h)
            mask = None
            if generator is not None and self.dropout > 0:
                keep = torch.rand(h.shape, generator=generator) >= self.dropout
                mask = keep.to(h.dtype).mul_(1.0 / (1.0 - self.dropout))
                h = h * mask
            cache.masks.append(mask)
            a = h + a if self.residual and k > 0 else h
        cache.inputs.append(a)
        out = torch.addmm(self.b[-1], a, self.Wt[-1])  # (B, 1)
        return out.view(-1), cache

    def backward(self, cache: Cache, d_out: torch.Tensor) -> None:
        """Fill `self.grads` with d loss / d params, given d loss / d output (B,)."""

        dz = d_out.view(-1, 1)  # d loss / d z of layer k, (B, fan_out)
        g_out = dz  # d loss / d output of layer k
        for k in range(self.n_layers - 1, -1, -1):
            torch.mm(dz.t(), cache.inputs[k], out=self.gW[k])
            torch.sum(dz, 0, out=self.gb[k])
            if k == 0:
                break
            if self.residual and 1 <= k < self.n_layers - 1:
                g_in = torch.addmm(g_out, dz, self.W[k])  # output = act(z) + input: the skip passes g_out on
            else:
                g_in = torch.mm(dz, self.W[k])
            j = k - 1  # the hidden layer whose output is layer k's input
            mask = cache.masks[j]
            dh = g_in if mask is None else g_in * mask
            dz = _act_backward(self.activation, dh, cache.pre[j], cache.post[j], torch.ops.aten)
            g_out = g_in

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Output (B,) without dropout, in row blocks (rows are independent: blocks change only the speed).

        Above about 10^5 multiply-adds a matrix product goes multi-threaded, and above 2048 elements so do
        tanh, erf and exp. On a busy machine the threads took milliseconds to gather for what one thread does
        in microseconds (measured on the shared 2-core box: tanh of 250 x 16 values, median 3 us, mean 0.5 ms).
        """

        macs = max(i * o for i, o in zip(self.sizes[:-1], self.sizes[1:], strict=True))
        rows = max(8, min(BLOCK_MACS // macs, BLOCK_ELEMENTS // max(self.sizes)))
        if x.shape[0] <= rows:
            return self.forward(x)[0]
        return torch.cat([self.forward(block)[0] for block in torch.split(x, rows)])


# ---- losses: classification outputs are logits; "mse" on classification compares sigmoid(logit) with 0/1


def prediction(out: torch.Tensor, task: str) -> torch.Tensor:
    """P(class 1) for classification, the value for regression."""
    return out.sigmoid() if task == "classification" else out


def loss_value(out: torch.Tensor, y: torch.Tensor, task: str, loss: str) -> torch.Tensor:
    if loss == "bce":
        # softplus(z) - y z is BCE on the logit z, computed stably; F.binary_cross_entropy_with_logits gives
        # the same value but took milliseconds per call on a busy 2-core machine (its kernel uses threads)

        return (F.softplus(out) - out * y).mean()
    return ((prediction(out, task) - y) ** 2).mean()


def loss_grad(out: torch.Tensor, y: torch.Tensor, task: str, loss: str) -> torch.Tensor:
    """d mean-loss / d out, (B,)."""
    scale = 1.0 / out.shape[0]
    if loss == "bce":
        return out.sigmoid().sub_(y).mul_(scale)
    if task == "classification":
        p = out.sigmoid()
        return torch.ops.aten.sigmoid_backward.default((p - y).mul_(2.0 * scale), p)
    return (out - y).mul_(2.0 * scale)

"""The hand-written MLP, losses and optimizers against torch.autograd, torch.optim and a by-hand case."""

from __future__ import annotations

import math

import pytest
import torch

from tools.common import NullReporter
from tools.toy_mlp.model import MLP, loss_grad, loss_value
from tools.toy_mlp.train import Optimizer, Pacer, Split, Stream, fit, generator

F = torch.nn.functional
ACTS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "silu": F.silu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
    "linear": lambda z: z,
}


def autograd_loss(net: MLP, flat: torch.Tensor, x, y, task, loss, masks=None) -> torch.Tensor:
    """The same network written the textbook way, on a copy of the flat parameters that requires grad."""
    at, a = 0, x
    for k, (i, o) in enumerate(zip(net.sizes[:-1], net.sizes[1:], strict=True)):
        W = flat[at : at + o * i].view(o, i)
        b = flat[at + o * i : at + o * i + o]
        at += o * i + o
        z = F.linear(a, W, b)
        if k == net.n_layers - 1:
            a = z
            break
        h = ACTS[net.activation](z)
        if masks is not None and masks[k] is not None:
            h = h * masks[k]
        a = h + a if net.residual and k > 0 else h
    out = a.squeeze(1)
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(out, y)
    pred = torch.sigmoid(out) if task == "classification" else out
    return F.mse_loss(pred, y)


def manual_grads(net, x, y, task, loss, dropout_gen=None):
    with torch.inference_mode():
        out, cache = net.forward(x, dropout_gen)
        net.backward(cache, loss_grad(out, y, task, loss))
        grads = net.grads.clone()
    return grads, [None if m is None else m.clone() for m in cache.masks]  # clones usable by autograd


@pytest.mark.parametrize("activation", sorted(ACTS))
@pytest.mark.parametrize("residual", [False, True])
def test_manual_gradients_match_autograd_for_every_activation(activation, residual):
    torch.manual_seed(0)
    net = MLP(3, [5, 5, 5], activation, residual=residual)
    net.init("normal", 0.7, generator(1, Stream.INIT))
    x, y = torch.randn(9, 3), (torch.rand(9) > 0.5).float()
    got, _ = manual_grads(net, x, y, "classification", "bce")
    flat = net.params.clone().requires_grad_(True)
    autograd_loss(net, flat, x, y, "classification", "bce").backward()
    torch.testing.assert_close(got, flat.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("task", "loss"), [("classification", "mse"), ("regression", "mse")])
def test_manual_gradients_match_autograd_for_mse_losses(task, loss):
    torch.manual_seed(1)
    net = MLP(2, [6, 4], "tanh")
    net.init("default", 0.0, generator(2, Stream.INIT))
    x = torch.randn(11, 2)
    y = (torch.rand(11) > 0.5).float() if task == "classification" else torch.randn(11)
    got, _ = manual_grads(net, x, y, task, loss)
    flat = net.params.clone().requires_grad_(True)
    autograd_loss(net, flat, x, y, task, loss).backward()
    torch.testing.assert_close(got, flat.grad, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        mine = float(loss_value(net.predict(x), y, task, loss))
    assert mine == pytest.approx(float(autograd_loss(net, flat.detach(), x, y, task, loss)), rel=1e-5)


def test_manual_gradients_match_autograd_with_dropout_masks():
    torch.manual_seed(2)
    net = MLP(2, [7, 7], "relu", residual=True, dropout=0.4)
    net.init("default", 0.0, generator(3, Stream.INIT))
    x, y = torch.randn(8, 2), (torch.rand(8) > 0.5).float()
    got, masks = manual_grads(net, x, y, "classification", "bce", dropout_gen=generator(3, 3))
    assert masks[0] is not None and all(
        v == 0 or v == pytest.approx(1 / 0.6) for v in masks[0].unique().tolist()
    )
    flat = net.params.clone().requires_grad_(True)
    autograd_loss(net, flat, x, y, "classification", "bce", masks=masks).backward()
    torch.testing.assert_close(got, flat.grad, rtol=1e-5, atol=1e-6)


def test_gradient_of_a_single_logistic_unit_matches_the_hand_computation():
    # z = w x + b = 0.5 * 2 + 0 = 1; d bce / d z = sigmoid(1) - y = 0.7310586 - 1; d/dw = that * x, d/db = that
    net = MLP(1, [], "linear")
    net.W[0].fill_(0.5)
    net.b[0].fill_(0.0)
    got, _ = manual_grads(net, torch.tensor([[2.0]]), torch.tensor([1.0]), "classification", "bce")
    dz = 1 / (1 + math.exp(-1)) - 1
    assert got.tolist() == pytest.approx([dz * 2, dz], abs=1e-7)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("regularization", ["none", "l2"])
def test_optimizer_steps_match_torch_optim(kind, regularization):
    torch.manual_seed(3)
    net = MLP(2, [4], "tanh")
    net.init("default", 0.0, generator(4, 4))
    ref = [net.W[0].clone(), net.b[0].clone(), net.W[1].clone(), net.b[1].clone()]
    ref = [t.requires_grad_(True) for t in ref]
    rate = 0.1 if regularization == "l2" else 0.0
    opt = Optimizer(net, kind, 0.05, regularization, rate)
    if kind == "adam":
        topt = torch.optim.Adam(ref, lr=0.05)
    else:
        topt = torch.optim.SGD(ref, lr=0.05, momentum=0.9 if kind == "momentum" else 0.0)
    for _ in range(4):
        grads = [torch.randn_like(t) for t in ref]
        with torch.inference_mode():
            for g_view, g in zip((net.gW[0], net.gb[0], net.gW[1], net.gb[1]), grads, strict=True):
                g_view.copy_(g)
            opt.step()
        for t, g in zip(ref, grads, strict=True):
            # playground-style L2: rate * w on the weights only, never the biases
            t.grad = g + rate * t.detach() if t.dim() == 2 else g.clone()
        topt.step()
    for mine, theirs in zip((net.W[0], net.b[0], net.W[1], net.b[1]), ref, strict=True):
        torch.testing.assert_close(mine, theirs.detach(), rtol=1e-6, atol=1e-7)


def test_training_matches_the_textbook_torch_loop_with_the_same_init_and_batches():
    torch.manual_seed(4)
    x, y = torch.randn(40, 2), (torch.rand(40) > 0.5).float()
    split = Split(x, y, x[:10], y[:10], "classification")
    net = MLP(2, [6, 6], "tanh")
    net.init("default", 0.0, generator(5, 4))
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 6), torch.nn.Tanh(), torch.nn.Linear(6, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)
    )
    with torch.no_grad():
        for lin, W, b in zip(model[::2], net.W, net.b, strict=True):
            lin.weight.copy_(W)
            lin.bias.copy_(b)
    with torch.inference_mode():
        fit(net, Optimizer(net, "sgd", 0.1), split, loss="bce", epochs=5, batch_size=8, seed=7,
            deadline=math.inf, pacer=Pacer(NullReporter(), 5))  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    shuffle = generator(7, 2)
    for _ in range(5):
        perm = torch.randperm(40, generator=shuffle)
        for s in range(0, 40, 8):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(
                model(x[perm[s : s + 8]]).squeeze(1), y[perm[s : s + 8]]
            ).backward()
            opt.step()
    theirs = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(net.params, theirs, rtol=1e-5, atol=1e-6)


def test_zero_init_leaves_hidden_units_identical():
    # the symmetry problem, as a number: with zeros every hidden unit gets the same gradient forever
    net = MLP(2, [4], "tanh")
    net.init("zeros", 0.0, generator(0, 4))
    assert float(net.params.abs().sum()) == 0.0


def test_layer_names_and_parameter_count_follow_the_shape():
    net = MLP(3, [8, 4], "relu")
    assert net.layer_names() == ["hidden 1 (3->8)", "hidden 2 (8->4)", "output (4->1)"]
    assert net.params.numel() == (3 * 8 + 8) + (8 * 4 + 4) + (4 + 1)


def test_predict_in_row_blocks_equals_one_forward_pass():
    torch.manual_seed(5)
    net = MLP(2, [64, 64], "gelu", residual=True)
    net.init("default", 0.0, generator(6, 4))
    x = torch.randn(300, 2)  # blocks of 2048 / 64 = 32 rows
    with torch.inference_mode():
        torch.testing.assert_close(net.predict(x), net.forward(x)[0], rtol=1e-6, atol=1e-6)

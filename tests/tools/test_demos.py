"""The live demos of explain_concept, each checked against a by-hand computation (math / numpy / loops)."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from tools.common import InvalidArgument
from tools.explain.demos import DEMOS, DemoParams, run_demo


def demo(name, **kwargs):
    result, png = run_demo(name, DemoParams(plot=False, **kwargs))
    assert png is None
    return result


def _phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


REFERENCE = {
    "relu": (lambda x: max(0.0, x), lambda x: 1.0 if x > 0 else 0.0),
    "sigmoid": (lambda x: 1 / (1 + math.exp(-x)), lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2),
    "tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "gelu": (lambda x: x * _phi(x), lambda x: _phi(x) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
}


@pytest.mark.parametrize("kind", sorted(REFERENCE))
def test_activation_values_and_autograd_derivatives_match_closed_forms(kind):
    xs = [-4.0, -1.3, -0.2, 0.7, 2.5]
    r = demo(kind, demo_input=xs)
    f, df = REFERENCE[kind]
    assert r.values[kind]["value"] == pytest.approx([f(x) for x in xs], abs=1e-6)
    assert r.values[kind]["derivative"] == pytest.approx([df(x) for x in xs], abs=1e-6)


def test_sigmoid_derivative_peaks_at_a_quarter_at_zero():
    r = demo("sigmoid")
    assert r.values["sigmoid"]["max_derivative_on_-5..5"] == pytest.approx(0.25)
    assert r.values["sigmoid"]["at_x"] == pytest.approx(0.0)


def test_activations_demo_compares_all_four_in_one_plot():
    result, png = run_demo("activations", DemoParams())
    assert set(result.values) == {"x", "relu", "sigmoid", "tanh", "gelu"}
    assert result.has_plot and png[:4] == b"\x89PNG" and len(png) < 200_000


@pytest.mark.parametrize("temperature", [0.25, 1.0, 3.0])
def test_softmax_equals_exp_over_sum_at_any_temperature(temperature):
    z = [3.0, 1.0, -0.5, 0.2]
    r = demo("softmax", demo_input=z, temperature=temperature)
    e = [math.exp(v / temperature) for v in z]
    assert r.values["probabilities"] == pytest.approx([v / sum(e) for v in e], abs=1e-6)
    assert r.values["sum"] == pytest.approx(1.0)
    assert str(temperature) in r.values["by_temperature"]


def test_softmax_lower_temperature_is_sharper():
    r = demo("softmax")
    by_t = r.values["by_temperature"]
    assert by_t["0.5"][0] > by_t["1.0"][0] > by_t["2.0"][0]


def test_mse_and_its_gradient_match_by_hand():
    p, t = [1.0, 2.0, 3.0, -1.0], [1.5, 2.0, 0.0, 1.0]
    r = demo("mse", demo_input=p, demo_target=t)
    n = len(p)
    assert r.values["mse"] == pytest.approx(sum((a - b) ** 2 for a, b in zip(p, t, strict=True)) / n)
    assert r.values["gradient_wrt_predictions"] == pytest.approx(
        [2 * (a - b) / n for a, b in zip(p, t, strict=True)]
    )


@pytest.mark.parametrize("target", [0, 1, 2])
def test_cross_entropy_is_logsumexp_minus_the_true_logit_and_grad_is_p_minus_onehot(target):
    z = [2.0, 1.0, 0.1]
    r = demo("cross_entropy", demo_input=z, target_class=target)
    lse = math.log(sum(math.exp(v) for v in z))
    assert r.values["loss"] == pytest.approx(lse - z[target], abs=1e-6)
    p = [math.exp(v - lse) for v in z]
    assert r.values["gradient_wrt_logits"] == pytest.approx(
        [pk - (1.0 if k == target else 0.0) for k, pk in enumerate(p)], abs=1e-6
    )


@pytest.mark.parametrize(
    ("lr", "status"),
    [
        (0.3, "converged"),
        (0.05, "converging slowly"),
        (0.9, "oscillating, slowly converging"),
        (1.05, "diverged"),
    ],
)
def test_gradient_descent_on_x_squared_follows_the_closed_form(lr, status):
    r = demo("gradient_descent", learning_rate=lr, steps=30, start_x=4.0)
    run = r.values["runs"][0]
    assert run["status"] == status
    assert run["final_x"] == pytest.approx(4.0 * (1 - 2 * lr) ** 30, rel=1e-6, abs=1e-6)
    assert run["x_first_steps"] == pytest.approx([4.0 * (1 - 2 * lr) ** k for k in range(8)], abs=1e-6)


def test_gradient_descent_default_compares_slow_fast_oscillating_and_diverging_rates():
    r = demo("gradient_descent")
    assert [run["learning_rate"] for run in r.values["runs"]] == [0.05, 0.4, 0.9, 1.05]
    assert [run["status"] for run in r.values["runs"]] == [
        "converging slowly",
        "converged",
        "oscillating, slowly converging",
        "diverged",
    ]


def test_gradient_descent_stops_early_on_explosion_without_overflow():
    r = demo("gradient_descent", learning_rate=10.0, steps=200, start_x=100.0)
    run = r.values["runs"][0]
    assert run["status"] == "diverged" and run["steps_run"] < 200 and math.isfinite(run["final_x"])


def test_chain_rule_autograd_equals_the_hand_derivation():
    x, y, w, b = 1.5, -2.0, 0.7, 0.3
    r = demo("chain_rule", demo_input=[x, y, w, b], learning_rate=0.05)
    e = w * x + b - y
    assert r.values["autograd"]["dL/dw"] == pytest.approx(2 * e * x)
    assert r.values["autograd"]["dL/db"] == pytest.approx(2 * e)
    assert r.values["after_one_step"]["loss"] < r.values["forward"]["loss"]


def test_normalization_matches_numpy():
    px = [0.0, 10.0, 200.0, 255.0]
    r = demo("normalization", demo_input=px)
    a = np.array(px)
    v = r.values
    assert v["unit_0_1 (x/255, as ToTensor)"] == pytest.approx(a / 255, abs=1e-6)
    assert v["minus_one_one (x/127.5 - 1, diffusion VAE)"] == pytest.approx(a / 127.5 - 1, abs=1e-6)
    assert v["imagenet_red_channel ((x/255 - 0.485) / 0.229)"] == pytest.approx(
        (a / 255 - 0.485) / 0.229, abs=1e-5
    )
    assert v["standardized ((x - mean) / std)"] == pytest.approx((a - a.mean()) / a.std(), abs=1e-5)


def _conv_by_hand(image, kernel):
    h, w, k = len(image), len(image[0]), len(kernel)
    return [
        [
            sum(image[i + a][j + c] * kernel[a][c] for a in range(k) for c in range(k))
            for j in range(w - k + 1)
        ]
        for i in range(h - k + 1)
    ]


@pytest.mark.parametrize(
    "kernel", [None, [0.0, 1, 0, 1, -4, 1, 0, 1, 0], [1 / 9] * 9, [1.0, 2, 3, 4, 5, 6, 7, 8, 9]]
)
def test_convolution_equals_the_sum_of_products_computed_by_hand(kernel):
    r = demo("convolution", demo_input=kernel)
    image = [[0.0, 0, 1, 1, 1]] * 5  # the demo's vertical edge
    k = np.array(kernel if kernel is not None else [1.0, 0, -1, 2, 0, -2, 1, 0, -1]).reshape(3, 3).tolist()
    assert r.parameters["image"] == image
    assert np.allclose(r.values["output"], _conv_by_hand(image, k), atol=1e-6)
    assert r.values["top_left_sum"] == pytest.approx(r.values["output"][0][0])


def test_convolution_default_kernel_responds_to_the_edge_only():
    out = demo("convolution").values["output"]
    assert all(row[2] == 0 for row in out) and all(row[0] == -4 for row in out)


def test_dropout_zeroes_or_rescales_and_eval_is_identity():
    xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    r = demo("dropout", demo_input=xs, dropout_p=0.25, seed=3)
    for x, y in zip(xs, r.values["train_mode_output"], strict=True):
        assert y == 0 or y == pytest.approx(x / 0.75)
    assert r.values["eval_mode_output"] == xs
    assert r.values["mean_over_100000_ones_in_training"] == pytest.approx(1.0, abs=0.02)


def test_dropout_code_reproduces_the_numbers():
    r = demo("dropout", demo_input=[2.0, -1.0, 0.5, 4.0], dropout_p=0.7, seed=9)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(r.code.replace("print(", "results.append("), {"results": (results := [])})
    assert results[0].tolist() == pytest.approx(r.values["train_mode_output"], abs=1e-6)
    assert results[1].tolist() == r.values["eval_mode_output"]
    assert "0.3" in r.code and "0.30000000000000004" not in r.code


def test_dropout_is_reproducible_by_seed_and_leaves_the_global_rng_alone():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = demo("dropout", seed=5).values["train_mode_output"]
    after = torch.rand(3)
    assert torch.equal(expected, after)
    assert demo("dropout", seed=5).values["train_mode_output"] == a
    assert any(demo("dropout", seed=s).values["train_mode_output"] != a for s in range(6, 12))


def test_batch_norm_standardizes_columns_and_layer_norm_rows_like_numpy():
    vals = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 100.0, 200.0, 300.0, -1.0, 0.0, 1.0]
    r = demo("norm_compare", demo_input=vals)
    x = np.array(vals).reshape(4, 3)
    bn = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    ln = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    assert np.allclose(r.values["batch_norm_output"], bn, atol=1e-5)
    assert np.allclose(r.values["layer_norm_output"], ln, atol=1e-5)
    assert r.values["batch_norm_column_means"] == pytest.approx([0, 0, 0], abs=1e-6)
    assert r.values["layer_norm_row_means"] == pytest.approx([0, 0, 0, 0], abs=1e-6)


def _input_grad_by_hand(kind, depth, residual, seed, width=16):
    """The same stack as the demo (same generator draws), backpropagated by hand with numpy."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, width, generator=g, dtype=torch.float64).numpy()
    ws = [((torch.rand(width, width, generator=g, dtype=torch.float64) * 2 - 1) / width**0.5).numpy()
          for _ in range(depth)]  # fmt: skip
    f = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}[kind]
    df = {
        "sigmoid": lambda z: f(z) * (1 - f(z)),
        "tanh": lambda z: 1 - np.tanh(z) ** 2,
        "relu": lambda z: (z > 0).astype(float),
    }[kind]
    h, zs = x, []
    for w in ws:
        z = h @ w.T
        zs.append(z)
        h = h + f(z) if residual else f(z)
    grad = np.ones_like(h)
    for w, z in zip(reversed(ws), reversed(zs), strict=True):
        local = (grad * df(z)) @ w
        grad = grad + local if residual else local
    return float(np.linalg.norm(grad))


@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "relu"])
def test_depth_gradient_matches_backprop_by_hand(kind):
    r = demo("depth_gradient", demo_input=[1, 3, 10], seed=2)
    assert r.parameters["depths"] == [1, 3, 10]
    for mode in ("plain", "residual"):
        got = r.values[f"input_gradient_norm_{mode}"][kind]
        want = [_input_grad_by_hand(kind, d, mode == "residual", 2) for d in (1, 3, 10)]
        assert got == pytest.approx(want, rel=1e-3)


def test_depth_gradient_shows_vanishing_in_plain_stacks_and_not_with_residuals():
    v = demo("depth_gradient").values
    plain, residual = v["input_gradient_norm_plain"], v["input_gradient_norm_residual"]
    for kind in ("sigmoid", "tanh", "relu"):
        assert plain[kind][-1] < 1e-6 * plain[kind][0]
        assert residual[kind][-1] >= residual[kind][0] * 0.5


@pytest.mark.parametrize(
    ("name", "kwargs", "argument"),
    [
        ("convolution", {"demo_input": [1.0] * 8}, "demo_input"),
        ("softmax", {"demo_input": [1.0]}, "demo_input"),
        ("cross_entropy", {"demo_input": [1.0, 2.0], "target_class": 2}, "target_class"),
        ("mse", {"demo_input": [1.0, 2.0, 3.0], "demo_target": [1.0]}, "demo_target"),
        ("normalization", {"demo_input": [-1.0, 5.0]}, "demo_input"),
        ("norm_compare", {"demo_input": [1.0] * 11}, "demo_input"),
        ("chain_rule", {"demo_input": [1.0, 2.0]}, "demo_input"),
        ("depth_gradient", {"demo_input": [2.5]}, "demo_input"),
        ("depth_gradient", {"demo_input": [101.0]}, "demo_input"),
    ],
)
def test_demo_refuses_unusable_input_naming_the_argument(name, kwargs, argument):
    with pytest.raises(InvalidArgument) as exc:
        demo(name, **kwargs)
    assert exc.value.argument == argument and f"`{argument}`" in str(exc.value)


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_every_demo_runs_with_defaults_and_gives_bilingual_notes_and_code(name):
    result, png = run_demo(name, DemoParams())
    assert result.name == name or name in ("relu", "sigmoid", "tanh", "gelu")
    assert result.title.en and result.title.zh and result.notes
    assert all(n.en and n.zh for n in result.notes)
    assert "torch" in result.code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(result.code, {"__name__": "__main__"})  # the reproducing code runs as shown
    assert out.getvalue().strip()
    result.model_dump_json()
    assert result.has_plot == (png is not None)
    if png is not None:
        assert png[:4] == b"\x89PNG" and len(png) < 200_000


def test_plots_are_drawn_without_pyplot_so_concurrent_calls_are_safe():
    import subprocess
    import sys

    code = (
        "import sys; from tools.explain.demos import run_demo, DemoParams; run_demo('activations', DemoParams()); "
        "sys.exit('matplotlib.pyplot' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_concurrent_demos_give_the_same_numbers_as_serial_ones():
    from concurrent.futures import ThreadPoolExecutor

    names = ["softmax", "dropout", "norm_compare", "convolution", "gradient_descent", "tanh"]
    serial = [run_demo(n, DemoParams(seed=4))[0].values for n in names]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda n: run_demo(n, DemoParams(seed=4))[0].values, names))
    assert parallel == serial

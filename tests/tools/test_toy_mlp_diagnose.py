"""train_toy_mlp diagnoses: each situation is built for real, and the diagnosis must name it from the numbers.

The situations are the ones a learner met (issue 17): circle with SGD at learning_rate=5, spiral with ReLU and
Adam at learning_rate=10, xor without a hidden layer, a diverging run; plus deep sigmoid stacks, a small noisy
set learned by heart, a run stopped too early, and healthy runs that must get no warning.
"""

from __future__ import annotations

import pytest

from tools.common import NullReporter
from tools.config import LabConfig
from tools.toy_mlp import TrainToyMlpInput, run
from tools.toy_mlp.picture import architecture


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out")


def train(cfg, **kw):
    return run(TrainToyMlpInput(**kw), cfg, NullReporter())


def codes(r) -> list[str]:
    return [r.diagnosis.code] + [d.code for d in r.other_findings]


def follow(cfg, kw, r):
    """Run the call again with the diagnosis's suggested arguments."""
    (again,) = train(cfg, **{**kw, **r.diagnosis.next_call}).result.runs
    return again


def test_sgd_at_learning_rate_5_on_circle_is_diagnosed_as_learning_rate_too_high(cfg):
    kw = {"dataset": "circle", "optimizer": "sgd", "learning_rate": 5.0, "epochs": 150}
    out = train(cfg, **kw)
    (r,) = out.result.runs
    d = r.diagnosis
    assert d.code == "learning_rate_too_high" and d.warning and d.concept == "learning_rate"
    ev = d.evidence
    # drawn from the numbers: the loss ends above its start, or swings back above half of it late in training
    assert ev["end_loss"] > ev["start_loss"] or ev["late_high"] >= 0.5 * ev["start_loss"]
    assert r.history.train_loss[0] == pytest.approx(ev["start_loss"])
    assert d.next_call == {"learning_rate": 0.5}
    assert out.summary.startswith("Diagnosis [learning_rate_too_high]")
    assert "learning_rate=0.5" in out.summary.splitlines()[0]
    assert follow(cfg, kw, r).diagnosis.code == "healthy"  # the advice works


def test_relu_with_adam_at_learning_rate_10_is_diagnosed_as_dead_relus(cfg):
    (r,) = train(cfg, dataset="spiral", activation="relu", learning_rate=10.0, epochs=100).result.runs
    d = r.diagnosis
    assert d.code == "dead_relu" and d.concept == "relu"
    assert d.evidence["first_layer_gradient_end"] == 0.0 == r.gradient_norms[0].end
    assert max(d.evidence["class1_share"], 1 - d.evidence["class1_share"]) >= 0.98  # one class predicted
    assert d.evidence["dead_units"] >= 8  # at least one whole layer of 8
    assert "predicts class" in d.message and "gradient is exactly 0" in d.message


def test_xor_without_a_hidden_layer_is_diagnosed_as_not_linearly_separable(cfg):
    kw = {"dataset": "xor", "hidden_layers": [], "epochs": 60}
    out = train(cfg, **kw)
    (r,) = out.result.runs
    assert r.diagnosis.code == "not_linearly_separable" and r.diagnosis.concept == "activation_function"
    assert r.diagnosis.evidence["train_accuracy"] == r.train_accuracy < 0.7
    assert "straight line" in r.diagnosis.message
    assert r.name.startswith("linear (no hidden layer)")  # not "tanh []": no activation is used
    assert follow(cfg, kw, r).train_accuracy >= 0.95


def test_picture_titles_call_a_network_without_hidden_layers_linear():
    assert (
        architecture({"hidden_layers": [], "activation": "tanh", "residual": False})
        == "linear (no hidden layer)"
    )
    assert (
        architecture({"hidden_layers": [8, 8], "activation": "relu", "residual": True})
        == "relu [8, 8] residual"
    )


def test_divergence_is_diagnosed_and_its_steps_up_to_the_nan_are_kept_for_the_plot(cfg):
    (r,) = train(cfg, dataset="circle", activation="linear", optimizer="momentum", learning_rate=10.0,
                 epochs=50).result.runs  # fmt: skip
    assert r.stop_reason == "diverged" and r.diagnosis.code == "diverged"
    assert r.history.epochs == [0]  # the epoch-level curve alone would be one point
    steps, losses = r.history.step_epochs, r.history.step_train_loss
    assert len(steps) == len(losses) >= 3 and steps == sorted(steps) and 0 < steps[0] <= 1
    assert losses[-1] is None and all(v is not None for v in losses[:-1])  # finite up to the NaN
    assert losses[-2] > 100 * r.history.train_loss[0]  # it climbed before it broke
    assert r.diagnosis.evidence["step"] == len(losses)
    assert r.diagnosis.next_call == {"learning_rate": 1.0}


def test_replayed_steps_are_the_steps_the_training_loop_took(cfg):
    # the run diverges in epoch 1, so the k-th replayed loss must be the loss after k plain steps from the
    # initial weights, computed here with the model and optimizer directly
    kw = {"dataset": "circle", "activation": "linear", "optimizer": "momentum", "learning_rate": 10.0}
    (r,) = train(cfg, epochs=50, **kw).result.runs
    assert r.history.epochs == [0]
    n_steps, batch = len(r.history.step_train_loss) - 1, 10
    import torch

    from tools.toy_mlp import data as D
    from tools.toy_mlp.model import MLP, loss_grad, loss_value
    from tools.toy_mlp.train import Optimizer, Stream, generator

    xy, y = D.make_points("circle", 500, 0.0, 0)
    split = D.make_split(*D.split(xy, y, 0.5, 0), ["x1", "x2"], "classification")
    net = MLP(2, [8, 8], "linear")
    net.init("default", 0.5, generator(0, Stream.INIT))
    opt = Optimizer(net, "momentum", 10.0)
    perm = torch.randperm(250, generator=generator(0, Stream.BATCHES))
    xs, ys = split.x_train[perm], split.y_train[perm]
    with torch.inference_mode():
        for i in range(n_steps):
            out, cache = net.forward(xs[i * batch : (i + 1) * batch])
            net.backward(cache, loss_grad(out, ys[i * batch : (i + 1) * batch], "classification", "bce"))
            opt.step()
        expected = float(loss_value(net.predict(split.x_train), split.y_train, "classification", "bce"))
    assert r.history.step_train_loss[n_steps - 1] == pytest.approx(expected, rel=1e-5)


def test_deep_sigmoid_stack_is_diagnosed_as_vanishing_gradients_and_kaiming_relu_fixes_it(cfg):
    kw = {
        "dataset": "circle",
        "activation": "sigmoid",
        "hidden_layers": [8] * 6,
        "epochs": 20,
        "n_samples": 200,
    }
    (r,) = train(cfg, **kw).result.runs
    d = r.diagnosis
    assert d.code == "vanishing_gradient" and d.concept == "vanishing_gradient"
    ratio = r.gradient_norms[0].start / r.gradient_norms[-1].start
    assert d.evidence["first_to_last_gradient_ratio"] == pytest.approx(ratio) and ratio < 1e-2
    assert d.next_call == {"activation": "relu", "init": "normal", "init_std": 0.5}  # Kaiming: sqrt(2 / 8)
    fixed = follow(cfg, kw, r)
    assert "vanishing_gradient" not in codes(fixed)
    assert fixed.gradient_norms[0].start / fixed.gradient_norms[-1].start > 1e-2


def test_a_small_noisy_set_learned_by_heart_is_diagnosed_as_overfitting(cfg):
    (r,) = train(cfg, dataset="circle", noise=0.5, n_samples=40, hidden_layers=[16, 16], learning_rate=0.03,
                 epochs=200).result.runs  # fmt: skip
    d = r.diagnosis
    assert d.code == "overfitting" and d.concept == "overfitting"
    assert r.train_accuracy >= 0.9
    assert d.evidence["gap"] == pytest.approx(r.train_accuracy - r.test_accuracy, abs=1e-4)
    assert d.evidence["gap"] >= 0.15
    assert d.next_call["regularization"] == "l2"


def test_tiny_steps_are_diagnosed_as_underfitting_with_a_larger_learning_rate(cfg):
    (r,) = train(cfg, dataset="circle", learning_rate=0.0003, epochs=20, n_samples=200).result.runs
    d = r.diagnosis
    assert d.code == "underfitting" and d.concept == "underfitting"
    assert r.train_accuracy < 0.9 and d.evidence["recent_loss_drop"] > 0.01
    assert d.evidence["end_loss"] > 0.7 * d.evidence["start_loss"]  # barely moved
    assert d.next_call == {"learning_rate": 0.003}


def test_a_network_too_small_for_the_spiral_is_diagnosed_as_underfitting_with_more_units(cfg):
    (r,) = train(cfg, dataset="spiral", hidden_layers=[2], epochs=150, n_samples=200).result.runs
    d = r.diagnosis
    assert d.code == "underfitting" and r.train_accuracy < 0.9
    assert d.next_call == {"hidden_layers": [4]}


@pytest.mark.parametrize(
    "kw",
    [
        {"dataset": "circle", "hidden_layers": [8], "activation": "relu", "learning_rate": 0.03},
        {"dataset": "gauss", "hidden_layers": [4]},
        {"dataset": "moons", "hidden_layers": [8, 8]},
        {"dataset": "plane", "hidden_layers": []},
        {"dataset": "xor", "hidden_layers": [8], "optimizer": "sgd", "learning_rate": 0.1},
    ],
)
def test_healthy_runs_get_no_warning(cfg, kw):
    out = train(cfg, epochs=60, n_samples=200, noise=0.05, **kw)
    (r,) = out.result.runs
    assert codes(r) == ["healthy"], [d.message for d in [r.diagnosis, *r.other_findings]]
    assert not r.diagnosis.warning and r.diagnosis.next_call == {}
    assert out.summary.startswith("Diagnosis (ok) [healthy]")


def test_every_variant_gets_its_own_diagnosis(cfg):
    out = train(cfg, dataset="xor", epochs=60, n_samples=200, hidden_layers=[8],
                variants=[{"hidden_layers": [], "name": "linear"}, {"name": "hidden"}])  # fmt: skip
    lin, hid = out.result.runs
    assert lin.diagnosis.code == "not_linearly_separable" and hid.diagnosis.code == "healthy"
    first, second = out.summary.splitlines()[:2]
    assert "linear:" in first and "[not_linearly_separable]" in first and "hidden:" in second

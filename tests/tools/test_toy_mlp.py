"""train_toy_mlp end to end (tools layer): learning, reproducibility, refusals, budget, cancellation, files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from tools.common import Cancelled, InvalidArgument, NullReporter
from tools.config import LabConfig, Limits
from tools.toy_mlp import TrainToyMlpInput, run
from tools.toy_mlp import data as D

FAST = {"epochs": 40, "n_samples": 200}


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out")


def train(cfg, **kw):
    return run(TrainToyMlpInput(**kw), cfg, NullReporter())


# ---- learning against independent references


@pytest.mark.parametrize("dataset", ["circle", "xor"])
def test_small_relu_net_reaches_95_percent_test_accuracy(cfg, dataset):
    out = train(
        cfg, dataset=dataset, hidden_layers=[8], activation="relu", learning_rate=0.03, noise=0.05, **FAST
    )
    (r,) = out.result.runs
    assert r.test_accuracy >= 0.95, r
    assert r.stop_reason == "completed" and r.epochs_run == 40 and not r.stopped_early


def test_linear_model_on_xor_stays_near_chance(cfg):
    (r,) = train(cfg, dataset="xor", hidden_layers=[], **FAST).result.runs
    assert 0.3 <= r.test_accuracy <= 0.7
    assert r.parameter_count == 3


def test_linear_model_with_the_product_feature_solves_xor(cfg):
    # x1*x2 makes xor linearly separable: the playground's feature-engineering lesson
    (r,) = train(
        cfg, dataset="xor", hidden_layers=[], features=["x1*x2"], learning_rate=0.05, **FAST
    ).result.runs
    assert r.test_accuracy >= 0.95


def test_linear_regression_fits_the_plane_exactly(cfg):
    (r,) = train(cfg, dataset="plane", hidden_layers=[], **FAST).result.runs
    assert r.loss_function == "mse" and r.test_accuracy is None
    assert r.test_r2 > 0.99


def test_same_seed_gives_identical_histories_and_another_seed_does_not(cfg):
    kw = {"dataset": "spiral", "hidden_layers": [6, 6], "dropout": 0.1, "noise": 0.2, **FAST}
    a, b = train(cfg, seed=3, **kw).result.runs[0], train(cfg, seed=3, **kw).result.runs[0]
    c = train(cfg, seed=4, **kw).result.runs[0]
    assert a.history == b.history and a.test_loss == b.test_loss
    assert a.history.train_loss != c.history.train_loss


def test_history_is_downsampled_to_about_200_points(cfg):
    (r,) = train(cfg, dataset="gauss", hidden_layers=[], epochs=1000, n_samples=40, batch_size=20).result.runs
    assert r.history.epochs[0] == 0 and r.history.epochs[-1] == 1000
    assert len(r.history.epochs) <= 202
    assert len(r.history.train_loss) == len(r.history.test_loss) == len(r.history.epochs)


def test_sigmoid_deep_net_shows_smaller_first_layer_gradients_than_relu(cfg):
    # vanishing gradients as numbers: sigmoid's derivative is at most 1/4 per layer
    out = train(cfg, dataset="circle", hidden_layers=[8] * 6, epochs=2, n_samples=100,
                variants=[{"activation": "sigmoid"}, {"activation": "relu"}])  # fmt: skip
    sig, relu = out.result.runs
    assert sig.gradient_norms[0].start < relu.gradient_norms[0].start / 10
    assert [g.layer for g in sig.gradient_norms][0] == "hidden 1 (2->8)"


def test_variants_share_data_and_seed_and_differ_only_in_their_overrides(cfg):
    out = train(
        cfg, dataset="moons", hidden_layers=[6], variants=[{}, {"name": "same"}, {"optimizer": "sgd"}], **FAST
    )
    base, same, sgd = out.result.runs
    assert (base.name, same.name, sgd.name) == ("base", "same", "optimizer=sgd")
    assert base.history == same.history
    assert sgd.settings["optimizer"] == "sgd" and base.settings["optimizer"] == "adam"
    assert sgd.history.train_loss[0] == base.history.train_loss[0]  # same data, same initial weights
    assert len(out.images) == 1


def test_custom_points_train_a_classifier(cfg):
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(60, 2, generator=g) * 4 - 2
    points = [[float(a), float(b), float(a > 0)] for a, b in xy]
    out = train(cfg, dataset="custom", points=points, hidden_layers=[], epochs=60, learning_rate=0.05)
    assert out.result.task == "classification" and out.result.n_train + out.result.n_test == 60
    assert out.result.runs[0].test_accuracy >= 0.9


def test_datasets_follow_the_playground_definitions():
    xy, y = D.make_points("circle", 400, 0.0, 0)
    r = xy.norm(dim=1)
    assert torch.equal(y, (r < 2.5).double()) and float(r.max()) <= 5.0
    xy, y = D.make_points("xor", 400, 0.0, 0)
    assert torch.equal(y, (xy[:, 0] * xy[:, 1] >= 0).double()) and float(xy.abs().min()) >= 0.3
    for name in D.CLASSIFICATION:
        xy, y = D.make_points(name, 101, 0.0, 1)
        assert xy.shape == (101, 2) and set(y.tolist()) == {0.0, 1.0} and abs(float(y.mean()) - 0.5) < 0.15
        assert not torch.equal(D.make_points(name, 101, 0.3, 1)[0], xy) or name in ("circle", "xor")
    for name in D.REGRESSION:
        xy, y = D.make_points(name, 101, 0.0, 1)
        assert float(xy.abs().max()) <= 6 and float(y.abs().max()) <= 1.2001  # plane: (x1 + x2) / 10


# ---- refusals name the argument


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"hidden_layers": [4, 5], "residual": True}, "hidden_layers"),
        ({"hidden_layers": [4], "residual": True}, "residual"),
        ({"dataset": "custom", "points": [[0, 0, 2]] * 12}, "points[0]"),
        ({"dataset": "custom"}, "points"),
        ({"dataset": "custom", "points": [[0, 0, 1]] * 12, "n_samples": 100}, "n_samples"),
        ({"points": [[0, 0, 1]] * 12}, "points"),
        ({"dataset": "plane", "loss": "bce"}, "loss"),
        ({"dataset": "plane", "task": "classification"}, "task"),
        ({"epochs": 100_000, "n_samples": 1000}, "epochs"),  # 50M epoch-samples, cap 40M
        ({"n_samples": 6000}, "n_samples"),
        ({"time_budget_s": 1000.0}, "time_budget_s"),  # cap 600 s
        ({"variants": [{"dataset": "xor"}]}, "variants[0]"),
        ({"variants": [{"activation": "swish"}]}, "variants[0].activation"),
        ({"variants": [{}, {"hidden_layers": [3, 4], "residual": True}]}, "variants[1].hidden_layers"),
        ({"variants": [{}] * 7}, "variants"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(cfg, kwargs, argument):
    with pytest.raises(InvalidArgument) as exc:
        train(cfg, **kwargs)
    assert exc.value.argument == argument
    assert f"`{argument}`" in str(exc.value)


def test_a_batch_larger_than_the_training_set_is_full_batch_gradient_descent(cfg):
    full = train(cfg, dataset="gauss", hidden_layers=[3], batch_size=5000, **FAST).result.runs[0]
    exact = train(cfg, dataset="gauss", hidden_layers=[3], batch_size=100, **FAST).result.runs[0]
    assert full.history == exact.history  # 200 points, train_ratio 0.5: one batch of all 100 either way


def test_epochs_cap_counts_every_variant(cfg):
    small = LabConfig.create(cfg.output_dir, limits=Limits(max_train_work=30_000))
    train(small, epochs=100, n_samples=200, hidden_layers=[2])  # 100 x 100 = 10 000
    with pytest.raises(InvalidArgument, match="over the cap 30000"):
        train(small, epochs=100, n_samples=200, hidden_layers=[2], variants=[{}, {}, {}, {}])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dataset": "circles"}, "dataset"),
        ({"activation": "swish"}, "activation"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"noise": float("inf")}, "noise"),
        ({"dataset": "custom", "points": [[0, float("nan"), 1]] * 12}, "points"),
        ({"hidden_layers": [65]}, "hidden_layers"),
        ({"hidden_layers": [2] * 9}, "hidden_layers"),
        ({"features": ["x1", "x1"]}, "features"),
    ],
)
def test_out_of_range_values_fail_validation_naming_the_field(kwargs, field):
    with pytest.raises(ValidationError) as exc:
        TrainToyMlpInput(**kwargs)
    assert exc.value.errors()[0]["loc"][0] == field


# ---- long work: divergence, time budget, cancellation, progress


def test_divergence_stops_training_and_says_why(cfg):
    (r,) = train(cfg, dataset="plane", hidden_layers=[16, 16], activation="relu", optimizer="sgd",
                 learning_rate=10.0, init="normal", init_std=3.0, **FAST).result.runs  # fmt: skip
    assert r.stop_reason == "diverged" and r.stopped_early
    assert "learning_rate" in r.stop_detail
    json.dumps(r.model_dump(mode="json"), allow_nan=False)  # nulls, never NaN, in the result


def test_time_budget_stops_training_and_says_so(cfg):
    t = time.perf_counter()
    out = train(cfg, dataset="spiral", epochs=4000, n_samples=500, batch_size=1, time_budget_s=0.3)
    (r,) = out.result.runs
    assert time.perf_counter() - t < 5
    assert r.stop_reason == "time_budget" and r.stopped_early and r.epochs_run < 4000
    assert r.history.epochs[-1] == r.epochs_run
    assert out.result.time_budget_s == 0.3


class CancelAfter:
    """A reporter whose client cancels `after_s` seconds after the first check; records progress."""

    def __init__(self, after_s: float = 1e9):
        self.after_s, self.start, self.cancelled_at = after_s, None, None
        self.messages: list[tuple[float, float, float | None, str | None]] = []

    def progress(self, done, total=None, message=None):
        self.messages.append((time.perf_counter(), done, total, message))

    def check_cancelled(self):
        now = time.perf_counter()
        self.start = self.start or now
        if now - self.start >= self.after_s:
            self.cancelled_at = self.cancelled_at or now
            raise Cancelled()


def test_cancellation_is_honoured_within_a_tenth_of_a_second(cfg):
    rep = CancelAfter(after_s=0.3)
    t = time.perf_counter()
    with pytest.raises(Cancelled):
        run(TrainToyMlpInput(epochs=2000, n_samples=1000, hidden_layers=[32, 32], time_budget_s=30), cfg, rep)
    # the first check after the client's cancel raises; checks come at least every 50 ms of training
    assert rep.cancelled_at is not None and time.perf_counter() - t < 3


def test_progress_is_throttled_and_names_the_epoch_and_loss(cfg):
    rep = CancelAfter()
    run(TrainToyMlpInput(epochs=300, n_samples=400, variants=[{}, {"activation": "relu"}]), cfg, rep)
    times = [m[0] for m in rep.messages]
    span = times[-1] - times[0]
    assert len(rep.messages) <= 5 * span + 3
    assert any(
        "epoch" in (m[3] or "") and "loss" in (m[3] or "") and "relu" in (m[3] or "") for m in rep.messages
    )
    assert rep.messages[-1][1] == rep.messages[-1][2] == 600


# ---- the saved run and the picture


def test_run_is_saved_as_metrics_picture_and_loadable_weights(cfg):
    from safetensors.torch import load_file

    out = train(cfg, dataset="circle", hidden_layers=[5, 3], variants=[{}, {"activation": "relu"}], **FAST)
    res = out.result
    for key in ("picture", "metrics", "weights"):
        assert getattr(res, f"{key}_uri") == f"mllab://outputs/runs/{res.run_id}" + {
            "picture": ".png", "metrics": ".json", "weights": ".safetensors"
        }[key]  # fmt: skip
    doc = json.loads(Path(res.metrics_path).read_text())
    assert doc["result"]["runs"][1]["name"] == "activation=relu" and doc["arguments"]["dataset"] == "circle"
    tensors = load_file(res.weights_path)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)
    )
    model.load_state_dict(
        {f"{2 * i}.{p}": tensors[f"run1.fc{i}.{p}"] for i in range(3) for p in ("weight", "bias")}
    )
    xy, y = D.make_points("circle", 200, 0.0, 0)
    xy_tr, y_tr, _, _ = D.split(xy, y, 0.5, 0)
    with torch.no_grad():
        acc = float(((model(xy_tr.float()).squeeze(1) > 0) == (y_tr > 0.5)).float().mean())
    assert acc == pytest.approx(res.runs[1].train_accuracy)


def test_picture_is_a_compact_png_with_one_panel_column_per_variant(cfg):
    one = train(cfg, hidden_layers=[4], **FAST)
    three = train(
        cfg, hidden_layers=[4], variants=[{}, {"activation": "relu"}, {"activation": "sigmoid"}], **FAST
    )
    w1, h1 = Image.open(io.BytesIO(one.images[0].png)).size
    w3, h3 = Image.open(io.BytesIO(three.images[0].png)).size
    assert max(w3, h3) <= 1024 and len(three.images[0].png) < 600_000
    assert w3 > 2 * w1 and abs(h3 - h1) < 20


def test_importing_the_tool_loads_neither_torch_nor_matplotlib():
    code = "import sys, tools.toy_mlp; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_l1_and_l2_regularization_shrink_the_weights_and_still_learn(cfg):
    from safetensors.torch import load_file

    out = train(cfg, dataset="gauss", hidden_layers=[6], variants=[{}, {"regularization": "l2", "regularization_rate": 0.1},
                {"regularization": "l1", "regularization_rate": 0.1}], **FAST)  # fmt: skip
    t = load_file(out.result.weights_path)
    norm = [float(t[f"run{k}.fc0.weight"].norm()) for k in range(3)]
    assert norm[1] < 0.5 * norm[0] and norm[2] < 0.5 * norm[0]
    assert all(r.test_accuracy >= 0.9 for r in out.result.runs)


def test_zero_init_keeps_every_hidden_unit_identical_after_training(cfg):
    # the symmetry problem: identical units get identical gradients, so the layer acts like one unit
    from safetensors.torch import load_file

    out = train(cfg, dataset="circle", hidden_layers=[5], init="zeros", **FAST)
    w = load_file(out.result.weights_path)["run0.fc1.weight"]  # (1, 5)
    assert torch.allclose(w, w[0, 0].expand_as(w))


def test_mse_on_classification_trains_through_the_sigmoid(cfg):
    (r,) = train(cfg, dataset="gauss", hidden_layers=[], loss="mse", learning_rate=0.05, **FAST).result.runs
    assert r.loss_function == "mse" and r.test_accuracy >= 0.95 and r.test_loss < 0.1


class PartialRecorder(CancelAfter):
    def __init__(self):
        super().__init__()
        self.partials: list[dict] = []

    def partial(self, result):
        self.partials.append(json.loads(json.dumps(result)))


def test_partial_results_are_the_loss_curves_so_far_and_agree_with_the_final_result(cfg, monkeypatch):
    import tools.toy_mlp.train as loop

    # Poll and report at every epoch: the count of partials then does not depend on the machine's speed.
    monkeypatch.setattr(loop, "POLL_S", 0.0)
    monkeypatch.setattr(loop, "PROGRESS_S", 0.0)
    rep = PartialRecorder()
    args = TrainToyMlpInput(
        epochs=40,
        n_samples=200,
        hidden_layers=[16, 16],
        variants=[{"name": "a"}, {"name": "b", "activation": "relu"}],
    )
    out = run(args, cfg, rep)
    assert len(rep.partials) >= 2, "a training sends partial results as it goes"
    final = {r.name: r for r in out.result.runs}
    for p in rep.partials:
        cur = p["current_run"]
        ref = final[cur["name"].split("'")[1]].history if "'" in cur["name"] else out.result.runs[0].history
        n = len(cur["history"]["epochs"])
        # the curve so far is exactly the start of the final curve: the same epochs, the same losses
        assert cur["history"]["epochs"] == ref.epochs[:n]
        assert cur["history"]["train_loss"] == pytest.approx(ref.train_loss[:n])
        for done in p["finished_runs"]:
            assert done["test_loss"] == pytest.approx(final[done["name"]].test_loss)
    assert any(p["finished_runs"] for p in rep.partials) or len(out.result.runs) == 1

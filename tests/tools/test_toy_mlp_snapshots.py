"""train_toy_mlp's boundary snapshots (what the Playground view animates) against the saved weights in plain torch."""

from __future__ import annotations

import base64

import pytest
import torch

from tools.common import NullReporter
from tools.config import LabConfig
from tools.toy_mlp import TrainToyMlpInput, run
from tools.toy_mlp import data as D


@pytest.fixture
def cfg(tmp_path):
    return LabConfig.create(tmp_path / "out")


def _decode(snap, view) -> torch.Tensor:
    raw = torch.frombuffer(bytearray(base64.b64decode(snap.values_b64)), dtype=torch.uint8)
    return view.v_min + (view.v_max - view.v_min) * raw.double().view(view.grid, view.grid) / 255


def test_last_snapshot_is_the_trained_networks_probability_on_the_grid(cfg):
    from safetensors.torch import load_file

    res = run(
        TrainToyMlpInput(dataset="xor", hidden_layers=[6], activation="relu", epochs=40, n_samples=200),
        cfg,
        NullReporter(),
    ).result
    view, snaps = res.view, res.runs[0].boundary
    assert [s.epoch for s in snaps] == [0, 10, 20, 30, 40]
    # the reference: nn.Linear layers loaded from the weights file, evaluated on the same grid in float64
    t = load_file(res.weights_path)
    model = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1)).double()
    model.load_state_dict(
        {f"{2 * i}.{p}": t[f"run0.fc{i}.{p}"].double() for i in range(2) for p in ("weight", "bias")}
    )
    x0, x1, y0, y1 = view.extent
    gx, gy = torch.meshgrid(
        torch.linspace(x0, x1, view.grid, dtype=torch.float64),
        torch.linspace(y0, y1, view.grid, dtype=torch.float64),
        indexing="xy",
    )
    with torch.no_grad():
        expected = (
            model(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).sigmoid().view(view.grid, view.grid)
        )
    assert (_decode(snaps[-1], view) - expected).abs().max() <= 0.5 / 255 + 1e-9
    # training moved the boundary: the first snapshot is another picture
    assert (_decode(snaps[0], view) - expected).abs().max() > 0.1


def test_points_sample_is_the_split_data_train_first_then_test(cfg):
    res = run(TrainToyMlpInput(dataset="circle", epochs=2, n_samples=100), cfg, NullReporter()).result
    xy, y = D.make_points("circle", 100, 0.0, 0)
    xy_tr, y_tr, xy_te, _ = D.split(xy, y, 0.5, 0)
    pts = res.view.points
    assert len(pts) == 100 and [p[3] for p in pts] == [0.0] * 50 + [1.0] * 50
    assert pts[0][:3] == [round(float(xy_tr[0, 0]), 2), round(float(xy_tr[0, 1]), 2), float(y_tr[0])]
    assert pts[50][0] == round(float(xy_te[0, 0]), 2)


def test_large_datasets_send_at_most_200_points_and_regression_uses_a_symmetric_scale(cfg):
    res = run(TrainToyMlpInput(dataset="plane", epochs=1, n_samples=1000), cfg, NullReporter()).result
    assert 150 <= len(res.view.points) <= 200
    assert res.view.v_min == -res.view.v_max and res.view.v_max >= max(abs(p[2]) for p in res.view.points)


def test_time_budget_stop_keeps_a_snapshot_of_where_training_ended(cfg):
    res = run(
        TrainToyMlpInput(dataset="spiral", epochs=4000, n_samples=500, batch_size=1, time_budget_s=0.3),
        cfg,
        NullReporter(),
    ).result
    r = res.runs[0]
    assert (
        r.stop_reason == "time_budget" and r.boundary[0].epoch == 0 and r.boundary[-1].epoch == r.epochs_run
    )

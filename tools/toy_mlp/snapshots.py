"""Boundary snapshots for the interactive view: the network's output on a coarse grid at a few epochs.

Each snapshot is GRID x GRID bytes (base64), so five snapshots of a run add about 4 kB to the result, small
enough for the text copy of the result that the assistant reads as well. The view only decodes and paints them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import torch

from tools.toy_mlp import data
from tools.toy_mlp.model import MLP, prediction
from tools.toy_mlp.schema import BoundarySnapshot, ViewGrid

GRID = 24  # grid points per side: 576 bytes a snapshot
SNAPSHOTS = 5  # epoch 0, a quarter, half, three quarters, the end
MAX_POINTS = 200  # data points sent to the view (train first, then test)


def snapshot_epochs(epochs: int) -> set[int]:
    return {round(epochs * i / (SNAPSHOTS - 1)) for i in range(SNAPSHOTS)}


def value_range(task: str, y: torch.Tensor) -> tuple[float, float]:
    """Classification: P(class 1) in [0, 1]; regression: symmetric around 0, as the picture's colour scale."""
    if task == "classification":
        return 0.0, 1.0
    m = float(y.abs().max()) or 1.0
    return -m, m


def view_grid(
    extent: tuple[float, float, float, float], v_range: tuple[float, float], xy_tr, y_tr, xy_te, y_te
) -> ViewGrid:
    """The grid description and an evenly strided sample of the points (train and test in proportion)."""
    n = xy_tr.shape[0] + xy_te.shape[0]
    stride = max(1, -(-n // MAX_POINTS))  # ceil(n / MAX_POINTS)
    points = []
    for xy, y, is_test in ((xy_tr, y_tr, 0.0), (xy_te, y_te, 1.0)):
        for (x1, x2), t in zip(xy[::stride].tolist(), y[::stride].tolist(), strict=True):
            points.append([round(x1, 2), round(x2, 2), round(t, 3), is_test])
    return ViewGrid(
        extent=[round(v, 4) for v in extent], grid=GRID, v_min=v_range[0], v_max=v_range[1], points=points
    )


class Recorder:
    """Takes a snapshot of `net` at snapshot_epochs(epochs); `on_epoch` is fit()'s hook."""

    def __init__(
        self,
        net: MLP,
        features: Sequence[str],
        task: str,
        extent: tuple[float, float, float, float],
        v_range: tuple[float, float],
        epochs: int,
    ):
        x0, x1, y0, y1 = extent
        gx, gy = torch.meshgrid(
            torch.linspace(x0, x1, GRID, dtype=torch.float64),
            torch.linspace(y0, y1, GRID, dtype=torch.float64),
            indexing="xy",
        )  # (GRID, GRID) each; row i is y = y0 + i * step
        self.inputs = data.featurize(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), features)  # (GRID², F)
        self.net, self.task, self.v_range = net, task, v_range
        self.when = snapshot_epochs(epochs)
        self.snapshots: list[BoundarySnapshot] = []

    def on_epoch(self, epoch: int) -> None:
        if epoch in self.when:
            self.take(epoch)

    def finish(self, epoch: int) -> None:
        """Training stopped early at `epoch`: make sure the last snapshot shows where it ended."""
        if not self.snapshots or self.snapshots[-1].epoch != epoch:
            self.take(epoch)

    def take(self, epoch: int) -> None:
        lo, hi = self.v_range
        out = prediction(self.net.predict(self.inputs), self.task)  # (GRID²,)
        out = torch.nan_to_num(out, nan=(lo + hi) / 2).clamp(lo, hi)
        q = ((out - lo) / (hi - lo) * 255).round().to(torch.uint8)
        self.snapshots.append(
            BoundarySnapshot(epoch=epoch, values_b64=base64.b64encode(q.numpy().tobytes()).decode("ascii"))
        )

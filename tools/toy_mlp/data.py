"""Toy 2-D datasets (after TensorFlow Playground's src/dataset.ts), input features and the train/test split.

Coordinates span about [-6, 6] as in the playground. Classification labels are 0/1 (the playground's
-1/+1); regression targets lie in about [-1, 1]. `noise` (0 to 0.5) has the playground's meaning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tools.toy_mlp.schema import Task
from tools.toy_mlp.train import Split, Stream, generator

CLASSIFICATION = ("circle", "xor", "gauss", "spiral", "moons")
REGRESSION = ("plane", "gauss_bump", "sine")
EXTENT = 6.0  # built-in data lives in [-EXTENT, EXTENT]^2

FEATURES = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1^2": lambda x1, x2: x1 * x1,
    "x2^2": lambda x1, x2: x2 * x2,
    "x1*x2": lambda x1, x2: x1 * x2,
    "sin x1": lambda x1, x2: x1.sin(),
    "sin x2": lambda x1, x2: x2.sin(),
}


def _uniform(n: int, a: float, b: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (b - a) + a


def _circle(n, noise, g):
    radius = 5.0
    halves = []
    for r_lo, r_hi in ((0.0, radius * 0.5), (radius * 0.7, radius)):
        m = n // 2 if not halves else n - n // 2
        r, angle = _uniform(m, r_lo, r_hi, g), _uniform(m, 0, 2 * math.pi, g)
        halves.append(torch.stack([r * torch.sin(angle), r * torch.cos(angle)], 1))
    xy = torch.cat(halves)
    shifted = xy + _uniform(2 * n, -radius, radius, g).view(n, 2) * noise
    return xy, (shifted.norm(dim=1) < radius * 0.5).double()


def _xor(n, noise, g):
    xy = _uniform(2 * n, -5, 5, g).view(n, 2)
    xy = xy + torch.where(xy > 0, 0.3, -0.3)  # padding keeps the quadrants apart
    shifted = xy + _uniform(2 * n, -5, 5, g).view(n, 2) * noise
    return xy, (shifted[:, 0] * shifted[:, 1] >= 0).double()


def _gauss(n, noise, g):
    std = math.sqrt(0.5 + noise * 7.0)  # variance 0.5 .. 4 as noise goes 0 .. 0.5
    m = n // 2
    pos = torch.randn(m, 2, generator=g, dtype=torch.float64) * std + 2
    neg = torch.randn(n - m, 2, generator=g, dtype=torch.float64) * std - 2
    return torch.cat([pos, neg]), torch.cat([torch.ones(m), torch.zeros(n - m)]).double()


def _spiral(n, noise, g):
    parts = []
    for delta, m in ((0.0, n // 2), (math.pi, n - n // 2)):
        i = torch.arange(m, dtype=torch.float64)
        r = i / m * 5
        t = 1.75 * i / m * 2 * math.pi + delta
        parts.append(
            torch.stack([r * torch.sin(t), r * torch.cos(t)], 1)
            + _uniform(2 * m, -1, 1, g).view(m, 2) * noise
        )
    m = n // 2
    return torch.cat(parts), torch.cat([torch.ones(m), torch.zeros(n - m)]).double()


def _moons(n, noise, g):
    m = n // 2
    t_top, t_bottom = _uniform(m, 0, math.pi, g), _uniform(n - m, 0, math.pi, g)
    top = torch.stack([torch.cos(t_top), torch.sin(t_top)], 1)
    bottom = torch.stack([1 - torch.cos(t_bottom), 0.5 - torch.sin(t_bottom)], 1)
    centre = torch.tensor([0.5, 0.25], dtype=torch.float64)
    xy = (torch.cat([top, bottom]) - centre) * 3.3  # into about [-5, 5]
    xy = xy + torch.randn(n, 2, generator=g, dtype=torch.float64) * (2.0 * noise)
    return xy, torch.cat([torch.zeros(m), torch.ones(n - m)]).double()


def _regression_inputs(n, noise, g):
    xy = _uniform(2 * n, -EXTENT, EXTENT, g).view(n, 2)
    return xy, xy + _uniform(2 * n, -EXTENT, EXTENT, g).view(n, 2) * noise


def _plane(n, noise, g):
    xy, s = _regression_inputs(n, noise, g)
    return xy, (s[:, 0] + s[:, 1]) / 10


_BUMPS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))


def _gauss_bump(n, noise, g):
    """The playground's multi-Gaussian: six bumps of alternating sign; the strongest one sets the target."""

    xy, s = _regression_inputs(n, noise, g)
    best = torch.zeros(n, dtype=torch.float64)
    for cx, cy, sign in _BUMPS:
        d = torch.hypot(s[:, 0] - cx, s[:, 1] - cy)
        value = sign * (1 - d / 2).clamp(0, 1)
        best = torch.where(value.abs() > best.abs(), value, best)
    return xy, best


def _sine(n, noise, g):
    xy, s = _regression_inputs(n, noise, g)
    return xy, torch.sin(s[:, 0])


_GENERATORS = {
    "circle": _circle,
    "xor": _xor,
    "gauss": _gauss,
    "spiral": _spiral,
    "moons": _moons,
    "plane": _plane,
    "gauss_bump": _gauss_bump,
    "sine": _sine,
}


def task_of(dataset: str) -> Task:
    return "classification" if dataset in CLASSIFICATION else "regression"


def make_points(dataset: str, n: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 2) coordinates and (n,) labels/targets, float64, in generation order."""
    return _GENERATORS[dataset](n, noise, generator(seed, Stream.DATA))


def featurize(xy: torch.Tensor, features: Sequence[str]) -> torch.Tensor:
    """(N, 2) coordinates -> (N, F) float32 network inputs."""

    x1, x2 = xy[:, 0], xy[:, 1]
    return torch.stack([FEATURES[f](x1, x2) for f in features], 1).float()


def split(xy: torch.Tensor, y: torch.Tensor, train_ratio: float, seed: int) -> tuple[torch.Tensor, ...]:
    """Shuffle with the seed and cut: (xy_train, y_train, xy_test, y_test)."""

    n = xy.shape[0]
    perm = torch.randperm(n, generator=generator(seed, Stream.SPLIT))
    n_train = min(n - 1, max(1, round(n * train_ratio)))
    tr, te = perm[:n_train], perm[n_train:]
    return xy[tr], y[tr], xy[te], y[te]


def make_split(xy_train, y_train, xy_test, y_test, features: Sequence[str], task: str) -> Split:
    return Split(
        featurize(xy_train, features), y_train.float(), featurize(xy_test, features), y_test.float(), task
    )

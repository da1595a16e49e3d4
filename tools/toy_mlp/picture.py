"""The picture: per run, the decision boundary (or regression surface) with the points, and the loss curves."""

from __future__ import annotations

import io
import math

import torch
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from tools.toy_mlp import data
from tools.toy_mlp.model import prediction

GRID = 80  # heatmap resolution per side
# The playground's colours: orange for class 0 / negative, blue for class 1 / positive.
ORANGE, BLUE = "#f59322", "#0877bd"


def _colormap():
    return LinearSegmentedColormap.from_list("playground", [ORANGE, "#e8eaeb", BLUE])


def extent(xy, custom: bool) -> tuple[float, float, float, float]:
    if not custom:
        return (-data.EXTENT, data.EXTENT, -data.EXTENT, data.EXTENT)
    lo, hi = xy.min(0).values, xy.max(0).values
    pad = (hi - lo).clamp_min(1e-3) * 0.1
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def draw(runs: list, xy_tr, y_tr, xy_te, y_te, task: str, custom: bool = False) -> bytes:
    """runs: [(name, features, net, RunResult)]. Returns PNG bytes (about 340 x 500 px per run, 3 runs a row)."""

    n = len(runs)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.4 * ncols, 4.9 * nrows))
    axes = fig.subplots(
        2 * nrows, ncols, squeeze=False,
        gridspec_kw={"height_ratios": [3.2, 1.5] * nrows, "hspace": 0.42, "wspace": 0.32},
    )  # fmt: skip
    x0, x1, y0, y1 = ext = extent(torch.cat([xy_tr, xy_te]), custom)
    gx, gy = torch.meshgrid(
        torch.linspace(x0, x1, GRID, dtype=torch.float64),
        torch.linspace(y0, y1, GRID, dtype=torch.float64),
        indexing="xy",
    )
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    cmap = _colormap()
    if task == "classification":
        vmin, vmax = 0.0, 1.0
    else:
        m = float(torch.cat([y_tr, y_te]).abs().max()) or 1.0
        vmin, vmax = -m, m
    finite_losses = [
        v
        for *_, res in runs
        for v in res.history.train_loss + res.history.test_loss + res.history.step_train_loss
        if v is not None
    ]
    log_y = bool(finite_losses) and min(finite_losses) > 0
    if log_y:  # labels at 1-2-5 steps over a short range, at powers of ten over a long one
        subs = (1.0, 2.0, 5.0) if max(finite_losses) / min(finite_losses) < 100 else (1.0,)
    for i, (name, features, net, res) in enumerate(runs):
        row, col = 2 * (i // ncols), i % ncols
        ax, lax = axes[row][col], axes[row + 1][col]
        surface = prediction(net.predict(data.featurize(grid, features)), task).view(GRID, GRID)
        surface = torch.nan_to_num(surface.float(), nan=(vmin + vmax) / 2, posinf=vmax, neginf=vmin)
        ax.imshow(
            surface.numpy(),
            origin="lower",
            extent=ext,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            aspect="auto",
            alpha=0.85,
        )
        for xy, y, edge in ((xy_tr, y_tr, "white"), (xy_te, y_te, "black")):
            ax.scatter(
                xy[:, 0],
                xy[:, 1],
                c=y.numpy(),
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                s=9,
                edgecolors=edge,
                linewidths=0.4,
            )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.tick_params(labelsize=7)
        if res.test_accuracy is not None:
            metric = f"test acc {res.test_accuracy:.1%}"
        else:
            metric = "test R² n/a" if res.test_r2 is None else f"test R² {res.test_r2:.3f}"
        stop = "" if res.stop_reason == "completed" else f" [{res.stop_reason}]"
        arch = architecture(res.settings)
        title = name if arch in name else f"{name}\n{arch}"
        ax.set_title(f"{title}\n{metric}{stop}", fontsize=8)
        h = res.history
        lax.plot(
            h.epochs,
            [math.nan if v is None else v for v in h.train_loss],
            color="#333333",
            lw=1.2,
            label="train",
        )
        lax.plot(
            h.epochs,
            [math.nan if v is None else v for v in h.test_loss],
            color="#d62728",
            lw=1.0,
            ls="--",
            label="test",
        )
        if h.step_epochs:  # diverged: the steps of the last epoch, up to the first non-finite loss
            finite = [(e, v) for e, v in zip(h.step_epochs, h.step_train_loss, strict=True) if v is not None]
            prev = [(e, v) for e, v in zip(h.epochs, h.train_loss, strict=True) if v is not None][-1:]
            pts = prev + finite
            lax.plot([e for e, _ in pts], [v for _, v in pts], color="#333333", lw=1.0, marker=".", ms=3)
            nan_at = next(
                (e for e, v in zip(h.step_epochs, h.step_train_loss, strict=True) if v is None), None
            )
            if nan_at is not None:
                lax.axvline(nan_at, color="#d62728", lw=0.8, ls=":")
                lax.annotate("NaN", (nan_at, 1.0), xycoords=("data", "axes fraction"), color="#d62728",
                             fontsize=7, ha="right", va="top")  # fmt: skip
            lax.set_xlim(0, max([e for e, _ in pts] + [nan_at or 0.0]) * 1.1)
        d = res.diagnosis
        lax.set_title(
            f"{'!' if d.warning else 'ok'}: {d.code.replace('_', ' ')}",
            fontsize=7, color="#b22222" if d.warning else "#2e7d32", pad=2,
        )  # fmt: skip
        if log_y:
            lax.set_yscale("log")
            lax.yaxis.set_major_locator(LogLocator(subs=subs, numticks=6))
            lax.yaxis.set_major_formatter(
                FormatStrFormatter("%g")
            )  # plain labels: mathtext ones cost 100s of ms
            lax.yaxis.set_minor_formatter(NullFormatter())
        lax.tick_params(labelsize=7)
        lax.set_xlabel("epoch", fontsize=7, labelpad=1)
        lax.set_ylabel(res.loss_function, fontsize=7)
        if i == 0:
            lax.legend(fontsize=6, frameon=False)
    loss_axes = [axes[2 * (i // ncols) + 1][i % ncols] for i in range(n)]
    if finite_losses:
        lo, hi = min(finite_losses), max(finite_losses)
        for lax in loss_axes:
            lax.set_ylim(
                lo * 0.8 if log_y else lo - 0.05 * (hi - lo),
                hi * 1.25 if log_y else hi + 0.05 * (hi - lo) + 1e-9,
            )
    fig.legend(
        handles=_legend_handles(task), loc="lower center", ncol=4 if ncols > 1 else 2, fontsize=7, frameon=False,
        bbox_to_anchor=(0.5, 0.0), handletextpad=0.2, columnspacing=1.0,
    )  # fmt: skip
    for i in range(n, nrows * ncols):  # empty cells of the last row
        axes[2 * (i // ncols)][i % ncols].axis("off")
        axes[2 * (i // ncols) + 1][i % ncols].axis("off")
    fig.subplots_adjust(
        left=0.17 / ncols,
        right=1 - 0.03 / ncols,
        top=1 - 0.1 / nrows,
        bottom=(0.115 if ncols > 1 else 0.15) / nrows,
    )
    return _png(fig)


def architecture(settings: dict) -> str:
    """'tanh [8, 8]', 'relu [8, 8] residual' or 'linear (no hidden layer)' (no activation is used then)."""
    if not settings["hidden_layers"]:
        return "linear (no hidden layer)"
    return f"{settings['activation']} {settings['hidden_layers']}" + (
        " residual" if settings["residual"] else ""
    )


def _legend_handles(task: str) -> list:
    def dot(face: str, edge: str, label: str) -> Line2D:
        return Line2D(
            [], [], ls="", marker="o", ms=5, markerfacecolor=face, markeredgecolor=edge, label=label
        )

    points = [
        dot("#bbbbbb", "white", "train point (white edge)"),
        dot("#bbbbbb", "black", "test point (black edge)"),
    ]
    if task == "classification":
        return [dot(ORANGE, ORANGE, "class 0"), dot(BLUE, BLUE, "class 1"), *points]
    return [dot(ORANGE, ORANGE, "negative target"), dot(BLUE, BLUE, "positive target"), *points]


def _png(fig) -> bytes:
    """Agg rendering without bbox_inches="tight" (that costs a second full draw); the margins are set above."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()

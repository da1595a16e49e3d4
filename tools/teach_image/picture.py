"""teach_image_model pictures: the before/after grid, and the loss curve beside the adapter's size per rank."""

from __future__ import annotations

from tools.images import new_figure

CELL = 128  # each 64 px image shown at 2x (nearest neighbour), so the shape's edges stay visible
FONT_PX = 12


def grid(rows: list[list], columns: list[str], prompts: list[str]):
    """rows[i][j]: PIL image of prompt i in column j; column titles on top, each prompt under its row."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=FONT_PX)
    pad, head, band = 4, FONT_PX + 8, FONT_PX + 6
    width = len(columns) * (CELL + pad) + pad
    out = Image.new("RGB", (width, head + len(rows) * (CELL + band + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for j, title in enumerate(columns):
        draw.text((pad + j * (CELL + pad) + 2, 3), title, fill=(0, 0, 0), font=font)
    for i, row in enumerate(rows):
        y = head + i * (CELL + band + pad)
        for j, im in enumerate(row):
            out.paste(im.resize((CELL, CELL), Image.Resampling.NEAREST), (pad + j * (CELL + pad), y))
        draw.text((pad + 2, y + CELL + 2), prompts[i], fill=(60, 60, 60), font=font)
    return out


def curves(
    steps: list[int], loss: list[float], prior: list[float], ranks: list[int], params: list[int], rank: int
):
    """Left: loss per step (taught images, old-world scenes, each with a 10-step mean). Right: LoRA parameters
    against rank, the trained rank marked."""
    import numpy as np

    fig, (ax, bx) = new_figure(1, 2, figsize=(9, 3.4), layout="constrained")
    k = min(10, len(loss))
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    ax.plot(steps, loss, color="tab:blue", alpha=0.3, lw=0.8)
    ax.plot(steps[k - 1 :], smooth, color="tab:blue", label="taught images (10-step mean)")
    if any(prior):
        ax.plot(steps[k - 1 :], np.convolve(prior, np.ones(k) / k, mode="valid"), color="tab:gray",
                label="old scenes vs the base model (prior preservation)")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("v-prediction MSE")
    ax.set_title("training loss")
    ax.legend(fontsize=8)
    bx.plot(ranks, [p / 1000 for p in params], "o-", color="tab:green")
    bx.plot(
        [rank], [params[ranks.index(rank)] / 1000], "o", color="tab:red", ms=9, label=f"trained: r={rank}"
    )
    bx.set_xscale("log", base=2)
    bx.set_xlabel("LoRA rank r")
    bx.set_ylabel("parameters (thousands)")
    bx.set_title("adapter size = r x sum(in + out)")
    bx.legend(fontsize=8)
    return fig

"""Pictures of a run: loss curves against the baselines (with samples beside them), and attention heatmaps."""

from __future__ import annotations

import io
import math

from matplotlib.figure import Figure

from tools.fonts import plot_char, use_cjk_in_matplotlib
from tools.tiny_gpt.schema import Baselines, Sample


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def draw_training(log, baselines: Baselines, samples: list[Sample], title: str) -> bytes:
    use_cjk_in_matplotlib()  # Chinese samples

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax, txt = fig.subplots(1, 2, width_ratios=[1.1, 1])
    ax.plot(log.step, log.train_loss, label="train", color="#0877bd")
    ax.plot(log.step, log.val_loss, label="val", color="#f59322")
    ax.axhline(baselines.uniform_loss, ls=":", color="gray", label=f"uniform ({baselines.uniform_loss:.2f})")
    ax.axhline(baselines.bigram_loss, ls="--", color="black", label=f"bigram ({baselines.bigram_loss:.2f})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / token)")
    ax.set_title(title[:70], fontsize=9)
    ax.legend(fontsize=8)
    right = ax.secondary_yaxis("right", functions=(_exp, _log))
    right.set_ylabel("perplexity")
    txt.axis("off")
    lines = ["Samples (same prompt and seed):"]
    for s in samples[-8:]:
        shown = s.text.replace("\n", "↵")[:60]
        lines.append(f"{s.step:>5}: {shown}")
    txt.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8)
    return _png(fig)


def _exp(x):
    import numpy as np

    return np.exp(np.clip(x, -50, 50))


def _log(x):
    import numpy as np

    return np.log(np.clip(x, 1e-12, None))


def draw_attention(att, tokens: list[str]) -> bytes:
    """att: (L, nh, T, T). One heatmap per layer (row) and head (column)."""

    use_cjk_in_matplotlib()  # tokens in Chinese

    L, H, T, _ = att.shape
    labels = [_label(t) for t in tokens]
    size = 2.4 if T <= 16 else 3.0
    fig = Figure(figsize=(min(size * H, 10), min(size * L, 9.5) + 0.4), layout="constrained")  # <= 1000 px
    axes = fig.subplots(L, H, squeeze=False)
    for i in range(L):
        for j in range(H):
            ax = axes[i][j]
            ax.imshow(att[i, j].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {i} head {j}", fontsize=8)
            step = max(1, math.ceil(T / 16))
            ticks = list(range(0, T, step))
            ax.set_xticks(ticks, [labels[t] for t in ticks], fontsize=6, rotation=90)
            ax.set_yticks(ticks, [labels[t] for t in ticks], fontsize=6)
    fig.suptitle("attention: row = query token, column = key token it looks at (causal: nothing above the diagonal)",
                 fontsize=9)  # fmt: skip
    return _png(fig)


def _label(t: str) -> str:
    t = t.replace("\n", "↵").replace(" ", "␣")
    return "".join(plot_char(ch) for ch in t)[:8]

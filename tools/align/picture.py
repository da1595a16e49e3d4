"""Pictures: a stage's training curves with before/after bars, and the stages compared side by side."""

from __future__ import annotations

from tools.align.schema import EvalMetrics, Sample, StageRow, StepRecord
from tools.images import figure_to_png, new_figure

COLORS = {"base": "#9e9e9e", "sft": "#0877bd", "dpo": "#f59322", "grpo": "#2e7d32"}


def _bars(ax, labels: list[str], series: dict[str, list[float]], colors: list[str]) -> None:
    """Grouped bars: one group per metric (series key), one bar per label."""
    n = len(labels)
    width = 0.8 / n
    for k, (label, color) in enumerate(zip(labels, colors, strict=True)):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(series))]
        vals = [v[k] for v in series.values()]
        bars = ax.bar(xs, vals, width, label=label, color=color)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], fontsize=7)
    ax.set_xticks(range(len(series)), list(series))
    top = max([v for vals in series.values() for v in vals] + [1.0])
    ax.set_ylim(0, top * 1.3)  # room for the legend above the bars
    ax.legend(fontsize=7, ncols=min(n, 4), loc="upper center")


def _metric_series(ms: list[EvalMetrics]) -> dict[str, list[float]]:
    out = {
        "accuracy": [m.accuracy or 0.0 for m in ms],
        "mean reward": [m.mean_reward for m in ms],
        "format": [m.format_rate for m in ms],
    }
    if all(m.preference_accuracy is not None for m in ms):
        out["pref. acc."] = [m.preference_accuracy or 0.0 for m in ms]
    return out


def draw_finetune(
    method: str, history: list[StepRecord], before: EvalMetrics, after: EvalMetrics, samples: list[Sample]
) -> bytes:
    fig, axes = new_figure(1, 3, figsize=(13, 3.6), layout="constrained")
    steps = [h.step for h in history]
    ax = axes[0]
    if method == "grpo":
        ax.plot(steps, [h.reward_mean for h in history], label="mean reward", color=COLORS["grpo"])
        ax.plot(steps, [h.reward_max for h in history], label="max reward", color=COLORS["grpo"], alpha=0.4)
        ax.set_title("GRPO: reward of the sampled groups")
    else:
        ax.plot(steps, [h.loss for h in history], color=COLORS[method])
        ax.set_title(f"{method.upper()} training loss")
    ax.set_xlabel("step")
    ax.legend(fontsize=8) if method == "grpo" else None
    ax = axes[1]
    if method == "grpo":
        ax.plot(steps, [h.kl for h in history], label="KL to reference", color="#c62828")
        ax2 = ax.twinx()
        ax2.plot(
            steps, [h.completion_length for h in history], label="length (tokens)", color="#555", alpha=0.6
        )
        ax2.plot(
            steps, [h.signal_share for h in history], label="groups with signal", color="#7b1fa2", alpha=0.6
        )
        ax2.legend(fontsize=7, loc="upper right")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title("KL, completion length, signal")
    elif method == "dpo":
        ax.plot(steps, [h.margin for h in history], label="implicit reward margin", color=COLORS["dpo"])
        ax.plot(steps, [h.reward_accuracy for h in history], label="reward accuracy", color="#555", alpha=0.6)
        ax.legend(fontsize=8)
        ax.set_title("DPO: chosen minus rejected")
    else:
        ax.axis("off")
        rows = [[s.prompt, s.answer or "", s.before, s.after] for s in samples]
        if rows:
            t = ax.table(cellText=rows, colLabels=["prompt", "answer", "before", "after"], loc="center")
            t.auto_set_font_size(False)
            t.set_fontsize(8)
        ax.set_title("held-out prompts, greedy")
    ax.set_xlabel("step") if method != "sft" else None
    _bars(axes[2], ["before", "after"], _metric_series([before, after]), [COLORS["base"], COLORS[method]])
    axes[2].set_title("eval set: before vs after")
    return figure_to_png(fig, tight=False)


def draw_compare(rows: list[StageRow], examples: list[dict[str, str | None]]) -> bytes:
    fig, axes = new_figure(
        1, 2, figsize=(14, 4.2), layout="constrained", gridspec_kw={"width_ratios": [1, 1.5]}
    )
    labels = [f"{r.method}\n{r.run[-12:]}" if r.method != "base" else "base" for r in rows]
    colors = [COLORS.get(r.method, "#444") for r in rows]
    _bars(
        axes[0], [lbl.replace("\n", " ") for lbl in labels], _metric_series([r.metrics for r in rows]), colors
    )
    axes[0].set_title("same held-out prompts, each stage (greedy)")
    ax = axes[1]
    ax.axis("off")
    cols = ["prompt", "answer", *[r.method for r in rows]]
    cells = [
        [str(e.get(c) or "") for c in ["prompt", "answer", *[f"s{i}" for i in range(len(rows))]]]
        for e in examples
    ]
    if cells:
        t = ax.table(cellText=cells, colLabels=cols, loc="center")
        t.auto_set_font_size(False)
        t.set_fontsize(8)
        t.scale(1, 1.3)
    ax.set_title("answers side by side")
    return figure_to_png(fig, tight=False)

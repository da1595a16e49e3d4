"""Soak: a bounded loop of mixed calls (valid and refused, every tool) on one stdio server; RSS stays flat after
the warm-up rounds: no leak per call.

The first WARMUP_ROUNDS rounds are the baseline: they load the models and fill the bounded stores (job records,
the 4 job outputs held in memory, matplotlib's caches). What is measured after them is the SLOPE of RSS over the
calls: the mean RSS of each round (sampled after every call, so a transient peak weighs 1/30 of a round), fitted
against the call count by Theil-Sen (the median of the pairwise slopes). RSS right after one call swings by
several MB (a job's garbage lives until a collection, tools/jobs/runner.py), so "last minus first" over a few
hundred calls read anywhere from -100 to +300 KB per call. Every figure is reported, including the plain
last-minus-warm growth.
"""

from __future__ import annotations

import statistics
import time

import pytest
from rel_harness import STATS, base_args, check_result, make_cfg
from rel_process import rss_mb, stdio_client

# Issue 15: growth after warm-up bounded at 30 KB per call (a kept image or tensor is 100 KB to MBs per call).
# History: 120 KB/call before the malloc arena cap (mcp_server/memory.py); 98.6 with the job runner keeping
# every job's output (now 4); this test's old "last minus warm" over 3 warm-up rounds then read 82.5 while the
# 2000-call soak read 9.7: job garbage swinging RSS by 20-50 MB between calls (now collected after jobs).
# The first clean-clone run of the slope over 7 rounds read -23.0 KB/call from round means 569.6, 571.0, 570.6,
# 574.9, 558.6, 573.1, 565.9 MB: a +-30 KB/call spread, too wide for a 30 KB bound. Hence 34 measured rounds
# (40 in all, ~40 s per 13 rounds on a quiet machine) and a slope that one odd round cannot tip.
KB_PER_CALL = 30
WARMUP_ROUNDS = 6
CALLS = 1200


def one_round(client, cfg, k: int, proc=None) -> list[float]:
    """Every tool, valid then refused; the server's RSS (MB) after each call when `proc` is given."""
    tools = client.list_tools()
    samples: list[float] = []
    for tool in sorted(tools):
        args = base_args(tool, tools[tool], cfg)
        if "seed" in tools[tool].get("properties", {}):
            args["seed"] = k % 5  # a few distinct seeds, so caches cannot hide a leak
        check_result(tool, client.call(tool, args))
        if proc is not None:
            samples.append(rss_mb(proc))
        check_result(
            tool, client.call(tool, {**args, "seed": -1} if "seed" in args else {"bogus": [1] * 1000})
        )
        if proc is not None:
            samples.append(rss_mb(proc))
    return samples


def slope(xs: list[float], ys: list[float]) -> float:
    """Theil-Sen slope of ys against xs: the median of the slopes between every two points, so one round that
    caught a job's garbage before its collection cannot tip it (least squares could: see KB_PER_CALL)."""
    return statistics.median(
        (ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs))
    )


def soak(tmp_path, calls_wanted: int) -> dict:
    cfg = make_cfg(tmp_path)
    with stdio_client(cfg, tmp_path) as (client, proc):
        per_round = 2 * len(client.list_tools())
        rounds = max(WARMUP_ROUNDS + 4, calls_wanted // per_round)
        t0 = time.monotonic()
        one_round(client, cfg, 0)
        first = rss_mb(proc)
        for k in range(1, WARMUP_ROUNDS):
            one_round(client, cfg, k)
        warm = rss_mb(proc)
        means = [statistics.fmean(one_round(client, cfg, k, proc)) for k in range(WARMUP_ROUNDS, rounds)]
        last = rss_mb(proc)
        n = len(means)
        calls_at = [(i + 0.5) * per_round for i in range(n)]  # each round's mean sits mid-round
        half = n // 2
        figures = {
            "calls": rounds * per_round,
            "calls_measured": n * per_round,
            "rss_round1_mb": round(first),
            "rss_warm_mb": round(warm),
            "rss_end_mb": round(last),
            "round_means_mb": [round(m, 1) for m in means],
            "kb_per_call": round(slope(calls_at, means) * 1024, 1),
            "least_squares_kb_per_call": round(statistics.linear_regression(calls_at, means).slope * 1024, 1),
            "second_half_kb_per_call": round(slope(calls_at[half:], means[half:]) * 1024, 1),
            "last_minus_warm_kb_per_call": round((last - warm) * 1024 / (n * per_round), 1),
            "growth_since_round1_mb": round(last - first, 1),
            "seconds": round(time.monotonic() - t0, 1),
        }
        assert proc.is_running()
    STATS.soak.update(figures)
    return figures


@pytest.mark.slow
def test_long_soak_of_mixed_calls_keeps_rss_flat(tmp_path):
    f = soak(tmp_path, CALLS)
    assert f["kb_per_call"] < KB_PER_CALL, f

"""The train_toy_mlp call, as numbered steps: check arguments, make data, train each run, draw, save."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import ValidationError

from tools.arguments import allowed_text, argument_path
from tools.common import InlineImage, InvalidArgument, Reporter, ToolOutput
from tools.config import LabConfig
from tools.images import to_inline_png
from tools.toy_mlp import data, diagnose, picture, snapshots, store
from tools.toy_mlp.model import MLP
from tools.toy_mlp.schema import (
    VARIANT_FIELDS,
    BoundarySnapshot,
    History,
    LayerGradient,
    LossName,
    RunResult,
    Task,
    TrainToyMlpInput,
    TrainToyMlpResult,
)
from tools.toy_mlp.train import FitResult, Optimizer, Pacer, Split, Stream, fit, generator

MAX_NAME = 40


@dataclass
class RunPlan:
    name: str
    overrides: dict[str, Any]
    args: TrainToyMlpInput
    loss: LossName


@dataclass
class Plan:
    task: Task
    n_total: int
    n_train: int
    runs: list[RunPlan]
    budget_s: float


def _n_train(n: int, ratio: float) -> int:
    return min(n - 1, max(1, round(n * ratio)))


def _check_data(args: TrainToyMlpInput, cfg: LabConfig) -> tuple[Task, int]:
    cap = cfg.limits.max_samples
    if args.dataset != "custom":
        if args.points is not None:
            raise InvalidArgument(
                "points", f"{len(args.points)} points", "give points only with dataset='custom'"
            )
        task = data.task_of(args.dataset)
        if args.task is not None and args.task != task:
            raise InvalidArgument(
                "task", args.task, f"dataset '{args.dataset}' is a {task} set; leave task out"
            )
        if args.n_samples > cap:
            raise InvalidArgument("n_samples", args.n_samples, f"at most {cap} (the server's max_samples)")
        return task, args.n_samples
    for name in ("n_samples", "noise"):
        if name in args.model_fields_set:
            raise InvalidArgument(
                name,
                getattr(args, name),
                "applies to generated datasets only; leave it out with dataset='custom'",
            )
    points = args.points
    if points is None:
        raise InvalidArgument(
            "points", None, "dataset='custom' needs points: [[x1, x2, label_or_target], ...]"
        )
    if not 10 <= len(points) <= cap:
        raise InvalidArgument(
            "points", f"{len(points)} points", f"give 10 to {cap} points (the server's max_samples)"
        )
    task = args.task or "classification"
    if task == "classification":
        for i, p in enumerate(points):
            if p[2] not in (0.0, 1.0):
                raise InvalidArgument(
                    f"points[{i}]",
                    p,
                    "classification labels are 0 or 1; for real-valued targets set task='regression'",
                )
    elif len({p[2] for p in points}) < 2:
        raise InvalidArgument("points", "all targets equal", "regression needs targets that vary")
    return task, len(points)


def _variant_name(overrides: dict[str, Any]) -> str:
    if "name" in overrides:
        return overrides["name"]
    text = ", ".join(f"{k}={v}" for k, v in overrides.items())
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 3] + "..."


def _parse_variant(i: int, overrides: dict[str, Any], base: TrainToyMlpInput) -> TrainToyMlpInput:
    where = f"variants[{i}]"
    unknown = sorted(set(overrides) - set(VARIANT_FIELDS) - {"name"})
    if unknown:
        raise InvalidArgument(
            where,
            overrides,
            f"unknown key(s) {unknown}; a variant may set {', '.join(VARIANT_FIELDS)} and 'name'",
        )
    name = overrides.get("name")
    if name is not None and not (isinstance(name, str) and 1 <= len(name) <= MAX_NAME):
        raise InvalidArgument(f"{where}.name", name, f"a text of 1 to {MAX_NAME} characters")
    merged = base.model_dump(exclude={"variants"})
    merged.update({k: v for k, v in overrides.items() if k != "name"})
    try:
        return TrainToyMlpInput.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidArgument(
            f"{where}.{argument_path(err['loc'])}", err.get("input"), allowed_text(err)
        ) from None


def _check_run(r: TrainToyMlpInput, where: str, task: Task) -> LossName:
    if r.residual:
        if len(r.hidden_layers) < 2:
            raise InvalidArgument(
                where + "residual",
                True,
                f"needs at least two hidden layers to skip between; hidden_layers is {r.hidden_layers}",
            )
        if len(set(r.hidden_layers)) > 1:
            raise InvalidArgument(
                where + "hidden_layers",
                r.hidden_layers,
                "with residual=true every hidden layer must have the same width (a skip adds a layer's input to its "
                f"output), e.g. [{r.hidden_layers[0]}] * {len(r.hidden_layers)}; or set residual=false",
            )
    if r.loss == "bce" and task == "regression":
        raise InvalidArgument(
            where + "loss", "bce", "binary cross-entropy needs 0/1 labels; this is regression: use 'mse'"
        )
    if r.loss == "auto":
        return "bce" if task == "classification" else "mse"
    return r.loss


def check_arguments(args: TrainToyMlpInput, cfg: LabConfig) -> Plan:
    """Every refusal happens here, before any work, naming the argument."""
    limits = cfg.limits
    task, n_total = _check_data(args, cfg)
    n_train = _n_train(n_total, args.train_ratio)
    if args.variants is None:
        name = f"{picture.architecture(_settings(args))}, {args.optimizer} lr {args.learning_rate:g}"
        runs = [RunPlan(name, {}, args, _check_run(args, "", task))]
    else:
        if not 1 <= len(args.variants) <= limits.max_variants:
            raise InvalidArgument(
                "variants", f"{len(args.variants)} variants", f"give 1 to {limits.max_variants}"
            )
        runs, seen = [], set()
        for i, overrides in enumerate(args.variants):
            r = _parse_variant(i, overrides, args)
            name = _variant_name(overrides) or "base"
            while name in seen:
                name += "'"
            seen.add(name)
            runs.append(RunPlan(name, overrides, r, _check_run(r, f"variants[{i}].", task)))
    work = sum(rp.args.epochs for rp in runs) * n_train
    if work > limits.max_train_work:
        raise InvalidArgument(
            "epochs",
            [rp.args.epochs for rp in runs],
            f"epochs x training points ({n_train}) summed over runs is {work}, over the cap {limits.max_train_work}; "
            "use fewer epochs, fewer points or fewer variants",
        )
    budget = limits.default_time_budget_s if args.time_budget_s is None else args.time_budget_s
    if budget > limits.max_time_budget_s:
        raise InvalidArgument("time_budget_s", budget, f"at most {limits.max_time_budget_s} s")
    return Plan(task, n_total, n_train, runs, budget)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _settings(r: TrainToyMlpInput) -> dict[str, Any]:
    return {k: getattr(r, k) for k in VARIANT_FIELDS}


def _run_result(
    k: int, rp: RunPlan, net: MLP, split: Split, fr: FitResult, boundary: list[BoundarySnapshot]
) -> RunResult:
    epochs = rp.args.epochs
    found = diagnose.diagnose(rp.args, net, split, fr)
    end: list[float | None] = list(fr.grad_end) or [None] * len(fr.grad_start)
    assert fr.train is not None and fr.test is not None  # fit() always evaluates at the end
    return RunResult(
        name=rp.name,
        overrides=rp.overrides,
        settings=_settings(rp.args),
        loss_function=rp.loss,
        train_loss=_finite(fr.train.loss),
        test_loss=_finite(fr.test.loss),
        train_accuracy=fr.train.accuracy,
        test_accuracy=fr.test.accuracy,
        train_r2=_finite(fr.train.r2),
        test_r2=_finite(fr.test.r2),
        history=History(
            epochs=fr.epochs,
            train_loss=[_finite(v) for v in fr.train_loss],
            test_loss=[_finite(v) for v in fr.test_loss],
            step_epochs=[round(e, 4) for e in fr.step_epochs],
            step_train_loss=[_finite(v) for v in fr.step_train_loss],
        ),
        gradient_norms=[
            LayerGradient(layer=name, start=_finite(s), end=_finite(e))
            for name, s, e in zip(net.layer_names(), fr.grad_start, end, strict=True)
        ],
        parameter_count=net.params.numel(),
        epochs_requested=epochs,
        epochs_run=fr.epochs_run,
        wall_time_s=round(fr.wall_time_s, 4),
        epochs_per_s=round(fr.epochs_run / fr.wall_time_s, 1) if fr.wall_time_s > 0 else 0.0,
        stopped_early=fr.epochs_run < epochs,
        stop_reason=fr.stop_reason,
        stop_detail=fr.stop_detail or f"completed {epochs} epochs",
        weights_prefix=f"run{k}.",
        boundary=boundary,
        diagnosis=found[0],
        other_findings=found[1:],
    )


def _best(task: str, runs: list[RunResult]) -> str:
    if task == "classification":
        return max(runs, key=lambda r: (r.test_accuracy or 0.0, -(r.test_loss or math.inf))).name
    return min(runs, key=lambda r: r.test_loss if r.test_loss is not None else math.inf).name


def _num(x: float | None, spec: str = ".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def call_text(next_call: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in next_call.items())


def _diagnosis_lines(res: TrainToyMlpResult) -> list[str]:
    """The teacher's reading first: one line per run (its most serious finding), then the others briefly."""
    lines = []
    for r in res.runs:
        d = r.diagnosis
        who = f"{r.name}: " if len(res.runs) > 1 else ""
        tag = "Diagnosis" if d.warning else "Diagnosis (ok)"
        line = f"{tag} [{d.code}] {who}{d.message}"
        if d.next_call:
            line += f" Try: train_toy_mlp with {call_text(d.next_call)}."
        line += f" (explain_concept('{d.concept}'))"
        lines.append(line)
        for o in r.other_findings:
            lines.append(f"  also [{o.code}]: {o.message.split(':')[0]}.")
    return lines


def _summary(res: TrainToyMlpResult) -> str:
    lines = _diagnosis_lines(res)
    lines.append(
        f"train_toy_mlp on {res.dataset} ({res.task}, {res.n_train} train / {res.n_test} test points):"
    )
    for r in res.runs:
        if r.test_accuracy is not None:
            metric = f"test accuracy {r.test_accuracy:.1%} (train {r.train_accuracy:.1%})"
        else:
            metric = f"test R^2 {_num(r.test_r2, '.3f')} (train {_num(r.train_r2, '.3f')})"
        stop = "" if r.stop_reason == "completed" else f" [stopped: {r.stop_detail}]"
        lines.append(
            f"- {r.name}: {metric}, test loss {_num(r.test_loss)}, "
            f"{r.epochs_run} epochs in {r.wall_time_s:.2f} s{stop}"
        )
    if len(res.runs) > 1:
        lines.append(f"Best: {res.best_run}.")
    lines.append(f"Saved as {res.run_id} (picture {res.picture_uri}).")
    return "\n".join(lines)


def train_toy_mlp(args: TrainToyMlpInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    # 1. check every argument before any work
    plan = check_arguments(args, cfg)
    reporter.check_cancelled()
    with torch.inference_mode():  # no autograd anywhere: gradients are computed by hand
        # 2. the data, shared by all runs
        if args.dataset == "custom":
            pts = torch.tensor(args.points, dtype=torch.float64)
            xy, y = pts[:, :2], pts[:, 2]
        else:
            xy, y = data.make_points(args.dataset, args.n_samples, args.noise, args.seed)
        xy_tr, y_tr, xy_te, y_te = data.split(xy, y, args.train_ratio, args.seed)
        extent = picture.extent(xy, custom=args.dataset == "custom")
        v_range = snapshots.value_range(plan.task, y)
        # 3. train each run on the same data, with the same seed, sharing the time budget
        pacer = Pacer(reporter, sum(rp.args.epochs for rp in plan.runs))
        deadline = time.perf_counter() + plan.budget_s
        nets, results = [], []
        for k, rp in enumerate(plan.runs):
            r = rp.args
            split = data.make_split(xy_tr, y_tr, xy_te, y_te, r.features, plan.task)
            net = MLP(len(r.features), r.hidden_layers, r.activation, r.residual, r.dropout)
            net.init(r.init, r.init_std, generator(args.seed, Stream.INIT))
            opt = Optimizer(net, r.optimizer, r.learning_rate, r.regularization, r.regularization_rate)
            share = (deadline - time.perf_counter()) / (len(plan.runs) - k)
            label = f"run {k + 1}/{len(plan.runs)} '{rp.name}': " if len(plan.runs) > 1 else ""
            # the boundary at a few epochs, and where training ended (a time budget or divergence stops early)
            boundary = snapshots.Recorder(net, r.features, plan.task, extent, v_range, r.epochs)
            fr = fit(
                net, opt, split, loss=rp.loss, epochs=r.epochs, batch_size=r.batch_size, seed=args.seed,
                deadline=time.perf_counter() + max(share, 0.0), pacer=pacer, label=label, on_epoch=boundary.on_epoch,
            )  # fmt: skip
            if fr.stop_reason == "time_budget":
                boundary.finish(fr.epochs_run)
            nets.append(net)
            results.append(_run_result(k, rp, net, split, fr, boundary.snapshots))
            pacer.finished_runs.append(
                {"name": rp.name, "train_loss": results[-1].train_loss, "test_loss": results[-1].test_loss}
            )
        reporter.progress(pacer.total, pacer.total, "training done; drawing")
        # 4. the picture
        png = picture.draw(
            [(rp.name, rp.args.features, net, res) for rp, net, res in zip(plan.runs, nets, results, strict=True)],
            xy_tr, y_tr, xy_te, y_te, plan.task, custom=args.dataset == "custom",
        )  # fmt: skip
    # 5. save the run: metrics JSON, picture, weights (not if the client gave up while we drew)
    reporter.check_cancelled()
    files = store.save_run(cfg, png, nets, args, plan.runs)
    result = TrainToyMlpResult(
        run_id=files.run_id,
        dataset=args.dataset,
        task=plan.task,
        n_train=int(xy_tr.shape[0]),
        n_test=int(xy_te.shape[0]),
        noise=args.noise,
        seed=args.seed,
        runs=results,
        best_run=_best(plan.task, results),
        time_budget_s=plan.budget_s,
        **files.fields(),
        view=snapshots.view_grid(extent, v_range, xy_tr, y_tr, xy_te, y_te),
    )
    store.write_metrics(files, result, args)
    caption = "Decision boundary" if plan.task == "classification" else "Regression surface"
    return ToolOutput(
        result=result,
        images=[InlineImage(to_inline_png(png), caption=f"{caption} and loss curves per run")],
        summary=_summary(result),
    )

"""Command line: `ml-lab-mcp [--transport stdio|streamable-http] ...`. Logs go to stderr only."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from mcp_server import memory
from tools import __version__
from tools.config import JobSettings, LabConfig, Limits, default_output_dir


def _env_paths(name: str) -> list[str]:
    value = os.environ.get(name, "")
    return [p for p in value.split(os.pathsep) if p]


def parse_limits(items: list[str]) -> Limits:
    """--limit NAME=VALUE, validated by the Limits model (unknown names and bad values are errors)."""
    return _parse_settings(items, Limits, "--limit")


def parse_job_settings(items: list[str], ray_address: str | None = None) -> JobSettings:
    """--jobs NAME=VALUE (and the bare backend names: --jobs local, --jobs ray), validated by JobSettings."""
    items = [f"backend={item}" if item.strip() in ("local", "ray") else item for item in items]
    if ray_address:
        items.append(f"ray_address={ray_address}")
    settings = _parse_settings(items, JobSettings, "--jobs")
    if settings.ray_address and settings.backend != "ray":
        raise SystemExit("ml-lab-mcp: --ray-address needs --jobs ray")
    return settings


def _parse_settings(items: list[str], model, flag: str):
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"ml-lab-mcp: {flag} expects NAME=VALUE, got {item!r}")
        values[name.strip()] = value.strip()
    try:
        return model(**values)
    except Exception as exc:
        names = ", ".join(model.model_fields)
        raise SystemExit(f"ml-lab-mcp: bad {flag}: {exc}\nknown names: {names}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ml-lab-mcp",
        description="ml-lab-mcp: a hands-on deep-learning lab (real PyTorch tools) served over MCP.",
    )
    p.add_argument("--version", action="version", version=f"ml-lab-mcp {__version__}")
    p.add_argument(
        "--transport", choices=["stdio", "streamable-http"], default="stdio", help="default: stdio"
    )
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument(
        "--auth-token",
        action="append",
        default=None,
        help="bearer token required on every HTTP request (env ML_LAB_AUTH_TOKEN); required off loopback. "
        "Repeat it (or comma-separate the env value) to give each client its own token: a client sees only "
        "the jobs its token started",
    )
    p.add_argument(
        "--stateless", action="store_true", help="HTTP: stateless mode, for replicas behind a load balancer"
    )
    p.add_argument(
        "--output-dir",
        default=None,
        help="where tools write files (env ML_LAB_OUTPUT_DIR; default: the per-user data folder)",
    )
    p.add_argument(
        "--allow-dir",
        action="append",
        default=None,
        help=f"folder tools may read images from; repeatable (env ML_LAB_ALLOWED_DIRS, {os.pathsep!r}-separated; "
        "default: the working directory and the output dir)",
    )
    p.add_argument(
        "--model-dir",
        action="append",
        default=None,
        help="a diffusers Stable Diffusion folder for generate_image; repeatable (env ML_LAB_MODEL_DIRS)",
    )
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a cap, e.g. --limit max_pixels=20000000; repeatable. Names: "
        + ", ".join(Limits.model_fields),
    )
    p.add_argument(
        "--jobs",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="job runner: `local` (default: threads of this process) or `ray` (tasks on a Ray cluster, records "
        "on a shared output folder; docs/scale-out.md), and settings, e.g. --jobs max_history=50; repeatable. "
        "Names: " + ", ".join(JobSettings.model_fields),
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="--jobs ray: the Ray head's address (env RAY_ADDRESS); none starts Ray on this machine",
    )
    p.add_argument("--log-level", default=os.environ.get("ML_LAB_LOG_LEVEL", "INFO"), help="stderr log level")
    return p


def auth_tokens(args: argparse.Namespace) -> list[str] | str | None:
    """--auth-token values, else env ML_LAB_AUTH_TOKEN (normalized by mcp_server.http)."""
    return args.auth_token if args.auth_token is not None else os.environ.get("ML_LAB_AUTH_TOKEN")


def config_from_args(args: argparse.Namespace) -> LabConfig:
    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir()
    allowed = (
        args.allow_dir if args.allow_dir is not None else (_env_paths("ML_LAB_ALLOWED_DIRS") or [os.getcwd()])
    )
    models = args.model_dir if args.model_dir is not None else _env_paths("ML_LAB_MODEL_DIRS")
    jobs = parse_job_settings(args.jobs, args.ray_address)
    if jobs.backend == "ray" and not jobs.ray_address and os.environ.get("RAY_ADDRESS"):
        jobs.ray_address = os.environ["RAY_ADDRESS"]
    return LabConfig.create(output_dir, allowed, models, parse_limits(args.limit), jobs)


def _exit_now(code: int) -> None:
    """End the process as soon as the client has gone (stdin closed).

    A normal interpreter exit tears down torch and matplotlib, which takes over a second on a busy machine;
    the client expects a stdio server to be gone within a moment. Tools write their files before they
    return, so nothing is lost by skipping that teardown.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    logging.shutdown()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    memory.limit_malloc_arenas()
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.transport != "stdio":
        from mcp_server.http import check_bind

        args.auth_token = auth_tokens(args)
        problem = check_bind(args.host, args.auth_token)
        if problem:  # refuse before loading anything
            print(problem, file=sys.stderr)
            return 2
    cfg = config_from_args(args)
    from mcp_server.jobs import runner_of
    from mcp_server.server import build_server
    from tools.jobs import BackendUnavailable

    mcp = build_server(cfg)
    try:  # Ray now, not at the first long call: a cluster that cannot run jobs stops the server here
        if cfg.jobs.backend == "ray":
            runner_of(mcp, cfg)
    except BackendUnavailable as exc:
        print(f"ml-lab-mcp: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("ml_lab_mcp").info(
        "ml-lab-mcp %s: transport=%s output=%s allowed=%s",
        __version__,
        args.transport,
        cfg.output_dir,
        [str(p) for p in cfg.allowed_dirs],
    )
    if args.transport == "stdio":
        mcp.run("stdio")
        _exit_now(0)
    from mcp_server.http import run_http

    return run_http(mcp, args)

"""The command line: version, help, folders from flags and env, limits overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.cli import build_parser, config_from_args, parse_limits
from tools import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_version_flag_prints_the_package_version():
    proc = subprocess.run([sys.executable, "-m", "mcp_server", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ml-lab-mcp {__version__}"


def test_help_lists_every_option():
    proc = subprocess.run([sys.executable, "-m", "mcp_server", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in ("--transport", "--host", "--port", "--output-dir", "--allow-dir", "--model-dir", "--limit"):
        assert flag in proc.stdout


def test_folders_default_to_cwd_and_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ML_LAB_ALLOWED_DIRS", raising=False)
    args = build_parser().parse_args(["--output-dir", str(tmp_path / "out")])
    cfg = config_from_args(args)
    assert cfg.output_dir == (tmp_path / "out").resolve()
    assert cfg.output_dir.is_dir()
    assert cfg.allowed_dirs == [tmp_path.resolve(), cfg.output_dir]


def test_env_variables_set_output_allowed_and_model_dirs(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setenv("ML_LAB_OUTPUT_DIR", str(tmp_path / "envout"))
    monkeypatch.setenv("ML_LAB_ALLOWED_DIRS", f"{a}:{b}")
    monkeypatch.setenv("ML_LAB_MODEL_DIRS", str(b))
    cfg = config_from_args(build_parser().parse_args([]))
    assert cfg.output_dir == (tmp_path / "envout").resolve()
    assert cfg.allowed_dirs[:2] == [a.resolve(), b.resolve()]
    assert cfg.model_dirs == [b.resolve()]


def test_flags_override_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ML_LAB_ALLOWED_DIRS", str(tmp_path / "nope"))
    args = build_parser().parse_args(["--allow-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")])
    assert config_from_args(args).allowed_dirs[0] == tmp_path.resolve()


def test_limit_override_sets_the_cap():
    limits = parse_limits(["max_pixels=1000", "max_steps = 7"])
    assert limits.max_pixels == 1000
    assert limits.max_steps == 7


@pytest.mark.parametrize("item", ["max_pixels", "no_such_limit=3", "max_pixels=-5", "max_steps=abc"])
def test_bad_limit_override_exits_with_a_message(item):
    with pytest.raises(SystemExit) as err:
        parse_limits([item])
    assert "limit" in str(err.value)


def test_jobs_backend_is_chosen_by_a_bare_name_and_the_ray_address_by_its_flag(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    base = ["--output-dir", str(tmp_path)]
    assert config_from_args(build_parser().parse_args(base)).jobs.backend == "local"
    cfg = config_from_args(build_parser().parse_args([*base, "--jobs", "ray", "--ray-address", "head:6379"]))
    assert (cfg.jobs.backend, cfg.jobs.ray_address) == ("ray", "head:6379")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert (
        config_from_args(build_parser().parse_args([*base, "--jobs", "ray"])).jobs.ray_address
        == "10.0.0.5:6379"
    )
    with pytest.raises(SystemExit, match="--ray-address needs --jobs ray"):
        config_from_args(build_parser().parse_args([*base, "--ray-address", "head:6379"]))
    with pytest.raises(SystemExit, match="backend"):
        config_from_args(build_parser().parse_args([*base, "--jobs", "backend=dask"]))


def test_without_ray_installed_jobs_ray_says_what_to_install(tmp_path):
    # A `ray` module that fails to import, first on the path, stands in for an environment without Ray.
    fake = tmp_path / "noray"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_server", "--output-dir", str(tmp_path / "o"), "--jobs", "ray"],
        env={**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "ml-lab-mcp[ray]"' in proc.stderr

"""Every registered tool follows the one shape written down in tools/README.md."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from mcp_server.server import _REGISTRARS
from tools.common import ToolInput

ROOT = Path(__file__).resolve().parents[1]
# job_status, cancel_job and list_jobs are the server's own tools: they answer about other calls (the runner
# and the caller's identity), so their inputs live with the adapter's job layer (mcp_server/jobs.py) and their
# core is the shared runner in tools/jobs/, not a tool package.
SERVER_TOOLS = {"mcp_server.tool_jobs"}
PACKAGES = [m.removeprefix("mcp_server.tool_") for m in _REGISTRARS if m not in SERVER_TOOLS]


def test_every_registration_module_is_named_after_its_tool_package():
    modules = [m for m in _REGISTRARS if m not in SERVER_TOOLS]
    for module, package in zip(modules, PACKAGES, strict=True):
        assert (ROOT / "tools" / package / "__init__.py").is_file(), (
            f"{module} has no tools/{package}/ package"
        )


@pytest.mark.parametrize("package", PACKAGES)
def test_tool_package_has_schema_core_and_run(package):
    folder = ROOT / "tools" / package
    files = {p.name for p in folder.glob("*.py")}
    assert {"__init__.py", "schema.py"} <= files
    assert files - {"__init__.py", "schema.py", "picture.py"}, f"tools/{package} has no core module"
    pkg = importlib.import_module(f"tools.{package}")
    params = list(inspect.signature(pkg.run).parameters)
    assert params[:3] == ["args", "cfg", "reporter"]


@pytest.mark.parametrize("package", PACKAGES)
def test_input_models_refuse_unknown_arguments_and_describe_every_field(package):
    schema = importlib.import_module(f"tools.{package}.schema")
    inputs = [
        m
        for m in vars(schema).values()
        if inspect.isclass(m) and issubclass(m, ToolInput) and m is not ToolInput
    ]
    assert inputs, f"tools/{package}/schema.py defines no ToolInput"
    models = inputs + [
        m
        for m in vars(schema).values()
        if inspect.isclass(m) and issubclass(m, BaseModel) and m.__module__ == schema.__name__
    ]
    for model in models:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
    for model in inputs:
        assert model.model_config.get("extra") == "forbid"


def test_schemas_and_package_entry_points_import_no_torch():
    code = (
        "import importlib, json, sys\n"
        f"for p in {PACKAGES!r}:\n"
        "    importlib.import_module(f'tools.{p}')\n"
        "    importlib.import_module(f'tools.{p}.schema')\n"
        "print(json.dumps(sorted(m for m in ('torch', 'diffusers', 'matplotlib') if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []

"""The design card, enforced: tools/ never imports mcp; start-up never imports the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "diffusers", "transformers", "matplotlib")


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# module -> the package of its extra
OPTIONAL_EXTRAS = {"tools.jobs.ray_backend": "ray", "tools.jobs.ray_board": "ray"}


def test_tools_package_imports_no_mcp_module():
    out = _run(
        "import importlib, importlib.util, pkgutil, sys, json, tools\n"
        "names = [m.name for m in pkgutil.walk_packages(tools.__path__, 'tools.')]\n"
        # a module of an optional extra (ray_backend, ray_board: pip install ml-lab-mcp[ray]) is skipped when the extra is absent
        f"optional = {OPTIONAL_EXTRAS!r}\n"
        "for n in names:\n"
        "    if n in optional and importlib.util.find_spec(optional[n]) is None: continue\n"
        "    importlib.import_module(n)\n"
        "print(json.dumps({'modules': names, 'mcp': sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.'))}))"
    )
    data = json.loads(out)
    assert len(data["modules"]) >= 5, data["modules"]
    assert data["mcp"] == []


def test_building_the_server_imports_no_heavy_library(tmp_path):
    out = _run(
        "import sys, json\n"
        "from tools.config import LabConfig\n"
        "from mcp_server.server import build_server\n"
        f"build_server(LabConfig.create({str(tmp_path / 'out')!r}, [{str(tmp_path)!r}]))\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    assert json.loads(out) == []


def test_start_up_surface_imports_no_heavy_library():
    """The lazy boundary: each tool package's __init__ and schema, the shared light modules and every
    mcp_server module load without torch and friends; a tool's compute modules import them at the top."""
    out = _run(
        "import importlib, pkgutil, sys, json, tools, mcp_server\n"
        "pkgs = [m.name for m in pkgutil.iter_modules(tools.__path__, 'tools.') if m.ispkg]\n"
        "schemas = [p + '.schema' for p in pkgs if importlib.util.find_spec(p + '.schema')]\n"
        "light = ['tools.common', 'tools.config', 'tools.paths', 'tools.arguments', 'tools.fonts']\n"
        "server = [m.name for m in pkgutil.iter_modules(mcp_server.__path__, 'mcp_server.') if m.name != 'mcp_server.__main__']\n"
        "for n in pkgs + schemas + light + server: importlib.import_module(n)\n"
        f"print(json.dumps({{'pkgs': pkgs, 'schemas': schemas, 'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))"
    )
    data = json.loads(out)
    assert len(data["pkgs"]) >= 8 and len(data["schemas"]) >= 8, data
    assert data["heavy"] == []
